//! Tidy: lexing Rust: identifiers, `::`, punctuation and string contents; comments dropped.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Punct(String),
    /// Numbers, characters, lifetimes.
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: usize,
}

pub(crate) fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

pub(crate) fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(crate) fn lex(src: &str) -> Vec<Token> {
    let b: Vec<char> = src.chars().collect();
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    let (mut i, mut line, mut out) = (0, 1, vec![]);
    // Reads a "…" string whose opening quote is at `i`; returns its contents and the index after it.
    let quoted = |mut i: usize, line: &mut usize| {
        let mut s = String::new();
        i += 1;
        while i < b.len() && b[i] != '"' {
            if b[i] == '\\' {
                s.push(b[i]);
                i += 1;
            }
            if at(i) == '\n' {
                *line += 1;
            }
            if i < b.len() {
                s.push(b[i]);
            }
            i += 1;
        }
        (s, i + 1)
    };
    while i < b.len() {
        let c = b[i];
        let start_line = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 1;
            i += 2;
            while i < b.len() && depth > 0 {
                if b[i] == '\n' {
                    line += 1;
                }
                if b[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < b.len() && is_ident_char(b[i]) {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            let raw_string = matches!(word.as_str(), "r" | "br" | "cr") && {
                let mut j = i;
                while at(j) == '#' {
                    j += 1;
                }
                at(j) == '"'
            };
            if raw_string {
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                i += 1;
                let start = i;
                loop {
                    if i >= b.len() {
                        break;
                    }
                    if b[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                        break;
                    }
                    if b[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Str(b[start..i.min(b.len())].iter().collect()),
                    line: start_line,
                });
                i += 1 + hashes;
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                let (s, next) = quoted(i, &mut line);
                out.push(Token { tok: Tok::Str(s), line: start_line });
                i = next;
            } else if word == "r" && at(i) == '#' && is_ident_start(at(i + 1)) {
                let start = i + 1;
                i += 1;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                out.push(Token { tok: Tok::Ident(b[start..i].iter().collect()), line: start_line });
            } else if word == "b" && at(i) == '\'' {
                i = char_literal_end(&b, i);
                out.push(Token { tok: Tok::Other, line: start_line });
            } else {
                out.push(Token { tok: Tok::Ident(word), line: start_line });
            }
        } else if c == '"' {
            let (s, next) = quoted(i, &mut line);
            out.push(Token { tok: Tok::Str(s), line: start_line });
            i = next;
        } else if c == '\'' {
            if at(i + 1) == '\\' || at(i + 2) == '\'' {
                i = char_literal_end(&b, i);
            } else {
                i += 1;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
            }
            out.push(Token { tok: Tok::Other, line: start_line });
        } else if c.is_ascii_digit() {
            while i < b.len() && is_ident_char(b[i]) {
                i += 1;
            }
            out.push(Token { tok: Tok::Other, line: start_line });
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token { tok: Tok::Punct("::".into()), line: start_line });
            i += 2;
        } else {
            out.push(Token { tok: Tok::Punct(c.to_string()), line: start_line });
            i += 1;
        }
    }
    out
}

/// The index after a character literal whose opening quote is at `i`.
pub(crate) fn char_literal_end(b: &[char], mut i: usize) -> usize {
    i += 1;
    if b.get(i) == Some(&'\\') {
        i += 2;
    } else {
        i += 1;
    }
    while i < b.len() && b[i] != '\'' {
        i += 1;
    }
    i + 1
}

pub(crate) fn is_punct(t: Option<&Token>, p: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Punct(q), .. }) if q == p)
}

pub(crate) fn ident(t: Option<&Token>) -> Option<&str> {
    match t {
        Some(Token { tok: Tok::Ident(w), .. }) => Some(w),
        _ => None,
    }
}

/// The index after the group opened at `open` (`(`, `[` or `{`), or the end.
pub(crate) fn group_end(t: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, token) in t.iter().enumerate().skip(open) {
        if let Tok::Punct(p) = &token.tok {
            match p.as_str() {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => {
                    depth -= 1;
                    if depth == 0 {
                        return k + 1;
                    }
                }
                _ => {}
            }
        }
    }
    t.len()
}

/// Drops every item (or statement, field, arm) under `#[cfg(test)]`, and a whole file under `#![cfg(test)]`.
pub(crate) fn strip_test_code(t: Vec<Token>) -> Vec<Token> {
    let is_cfg_test = |attr: &[Token]| {
        ident(attr.first()) == Some("cfg")
            && attr.iter().any(|x| x.tok == Tok::Ident("test".into()))
            && !attr.iter().any(|x| x.tok == Tok::Ident("not".into()))
    };
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        if is_punct(t.get(i), "#") && is_punct(t.get(i + 1), "!") && is_punct(t.get(i + 2), "[") {
            let end = group_end(&t, i + 2);
            if is_cfg_test(&t[i + 3..end.saturating_sub(1)]) {
                return vec![];
            }
            out.extend_from_slice(&t[i..end]);
            i = end;
            continue;
        }
        if !(is_punct(t.get(i), "#") && is_punct(t.get(i + 1), "[")) {
            out.push(t[i].clone());
            i += 1;
            continue;
        }
        let (first, mut j, mut test) = (i, i, false);
        while is_punct(t.get(j), "#") && is_punct(t.get(j + 1), "[") {
            let end = group_end(&t, j + 1);
            test |= is_cfg_test(&t[j + 2..end.saturating_sub(1)]);
            j = end;
        }
        if !test {
            out.extend_from_slice(&t[first..j]);
            i = j;
            continue;
        }
        // Skip the item: to a `;` or `,` at its own level, or the end of its first `{…}` at that level,
        // or (a field, an arm) to the end of the enclosing group.
        let mut depth = 0usize;
        i = t.len();
        let mut k = j;
        while k < t.len() {
            if let Tok::Punct(p) = &t[k].tok {
                match p.as_str() {
                    "(" | "[" | "{" => depth += 1,
                    ")" | "]" | "}" if depth == 0 => {
                        i = k;
                        break;
                    }
                    "}" if depth == 1 => {
                        i = k + 1;
                        break;
                    }
                    ")" | "]" | "}" => depth -= 1,
                    ";" | "," if depth == 0 => {
                        i = k + 1;
                        break;
                    }
                    _ => {}
                }
            }
            k += 1;
        }
    }
    out
}
