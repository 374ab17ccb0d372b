//! Tidy: what a file mentions: the paths of its `use` declarations and the paths written inline.

use std::collections::{BTreeMap, BTreeSet};

use crate::lex::{Tok, Token, ident, is_punct};

#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub(crate) paths: Vec<PathRef>,
    pub(crate) idents: Vec<(usize, String)>,
    pub(crate) strings: Vec<(usize, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathRef {
    /// The inline module the path is written in, relative to the file's module (`mod xml { … }` → `["xml"]`).
    pub(crate) inline: Vec<String>,
    /// As written, `self` of a `{self, …}` group dropped; `*` for a glob; a leading `::` dropped.
    pub(crate) segments: Vec<String>,
    /// `use a::b as c;` → `c`.
    pub(crate) alias: Option<String>,
    pub(crate) line: usize,
    pub(crate) is_use: bool,
}

pub(crate) fn facts(t: &[Token]) -> Facts {
    let mut f = Facts::default();
    let mut inline: Vec<(String, usize)> = vec![];
    let mut depth = 0usize;
    let mut i = 0;
    let prev_is = |i: usize, p: &str| i > 0 && is_punct(t.get(i - 1), p);
    while i < t.len() {
        let token = &t[i];
        match &token.tok {
            Tok::Str(s) => f.strings.push((token.line, s.clone())),
            Tok::Punct(p) if p == "{" => depth += 1,
            Tok::Punct(p) if p == "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w) if w == "mod" && ident(t.get(i + 1)).is_some() && is_punct(t.get(i + 2), "{") => {
                inline.push((ident(t.get(i + 1)).unwrap().to_string(), depth));
                i += 2;
                continue;
            }
            Tok::Ident(w) if w == "use" && !is_punct(t.get(i + 1), "<") => {
                let mut trees = vec![];
                let end = use_tree(t, i + 1, vec![], &mut trees);
                let modules: Vec<String> = inline.iter().map(|(m, _)| m.clone()).collect();
                for (segments, alias) in trees {
                    f.idents.extend(segments.iter().map(|s| (token.line, s.clone())));
                    f.paths.push(PathRef {
                        inline: modules.clone(),
                        segments,
                        alias,
                        line: token.line,
                        is_use: true,
                    });
                }
                i = end;
                while i < t.len() && !is_punct(t.get(i), ";") {
                    i += 1;
                }
                continue;
            }
            Tok::Ident(w) => {
                f.idents.push((token.line, w.clone()));
                if is_punct(t.get(i + 1), "::") && !prev_is(i, "::") && !prev_is(i, "$") {
                    i = read_path(t, i, &inline, &mut f);
                    continue;
                }
            }
            // A leading `::` (`::std::fs::read`), not the `::` after a type (`Vec::<u8>::new`).
            Tok::Punct(p)
                if p == "::"
                    && ident(t.get(i + 1)).is_some()
                    && !(i > 0 && matches!(&t[i - 1].tok, Tok::Ident(_)))
                    && !prev_is(i, ">")
                    && !prev_is(i, "$") =>
            {
                i = read_path(t, i + 1, &inline, &mut f);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    f
}

/// Records the inline path whose first identifier is at `i` (two segments or more); returns the index after it.
pub(crate) fn read_path(t: &[Token], i: usize, inline: &[(String, usize)], f: &mut Facts) -> usize {
    let line = t[i].line;
    let mut segments = vec![ident(t.get(i)).expect("a path starts with an identifier").to_string()];
    let mut k = i + 1;
    while is_punct(t.get(k), "::") && ident(t.get(k + 1)).is_some() {
        segments.push(ident(t.get(k + 1)).unwrap().to_string());
        k += 2;
    }
    let first = if is_punct(t.get(i.wrapping_sub(1)), "::") { 0 } else { 1 };
    f.idents.extend(segments[first..].iter().map(|s| (line, s.clone())));
    if segments.len() > 1 {
        let inline = inline.iter().map(|(m, _)| m.clone()).collect();
        f.paths.push(PathRef { inline, segments, alias: None, line, is_use: false });
    }
    k
}

/// Expands the use tree at `i` into full paths (each with its `as` alias); returns the index after it.
pub(crate) fn use_tree(
    t: &[Token],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    if prefix.is_empty() && is_punct(t.get(i), "::") {
        i += 1;
    }
    loop {
        if let Some(w) = ident(t.get(i)) {
            i += 1;
            if w != "self" || prefix.is_empty() {
                prefix.push(w.to_string());
            }
            if is_punct(t.get(i), "::") {
                i += 1;
                continue;
            }
            let mut alias = (w != "self").then(|| w.to_string()).or_else(|| prefix.last().cloned());
            if ident(t.get(i)) == Some("as") {
                alias = ident(t.get(i + 1)).filter(|a| *a != "_").map(String::from);
                i += 2;
            }
            out.push((prefix, alias));
            return i;
        } else if is_punct(t.get(i), "*") {
            prefix.push("*".into());
            out.push((prefix, None));
            return i + 1;
        } else if is_punct(t.get(i), "{") {
            i += 1;
            loop {
                if is_punct(t.get(i), "}") || i >= t.len() {
                    return i + 1;
                }
                let before = i;
                i = use_tree(t, i, prefix.clone(), out);
                // Past the `,`, or past a token no tree starts with.
                if is_punct(t.get(i), ",") || i == before {
                    i += 1;
                }
            }
        } else {
            return i;
        }
    }
}

/// Where `items` of a `must not use:` rule occur in a file: (line, item), each pair once.
pub(crate) fn forbidden_uses(facts: &Facts, items: &[String]) -> BTreeSet<(usize, String)> {
    // `use std::net; … net::TcpStream` — an inline path through a `use`d name is the full path.
    let aliases: BTreeMap<&str, &[String]> = facts
        .paths
        .iter()
        .filter(|p| p.is_use)
        .filter_map(|p| Some((p.alias.as_deref()?, p.segments.as_slice())))
        .collect();
    let full_paths: Vec<(usize, Vec<String>)> = facts
        .paths
        .iter()
        .map(|p| {
            let expanded = match aliases.get(p.segments[0].as_str()) {
                Some(full) if !p.is_use => full.iter().chain(&p.segments[1..]).cloned().collect(),
                _ => p.segments.clone(),
            };
            (p.line, expanded)
        })
        .collect();
    let mut found = BTreeSet::new();
    for item in items {
        if item.contains("::") {
            let want: Vec<&str> = item.split("::").collect();
            for (line, path) in &full_paths {
                let glob_over = path.last().is_some_and(|s| s == "*")
                    && path.len() - 1 <= want.len()
                    && path[..path.len() - 1].iter().zip(&want).all(|(a, b)| a == b);
                let under = path.len() >= want.len() && path.iter().zip(&want).all(|(a, b)| a == b);
                if glob_over || under {
                    found.insert((*line, item.clone()));
                }
            }
        } else {
            for (line, w) in &facts.idents {
                if w == item {
                    found.insert((*line, item.clone()));
                }
            }
            for (line, s) in &facts.strings {
                if s.contains(item.as_str()) {
                    found.insert((*line, item.clone()));
                }
            }
        }
    }
    found
}
