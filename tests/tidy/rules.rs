//! Tidy: the rules block.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::OnceLock;

use crate::RULES_FILE;
use crate::tree::root;

/// The parsed rules; each entry keeps its line in ARCHITECTURE.md for messages.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    pub(crate) may_depend: BTreeMap<String, (usize, BTreeSet<String>)>,
    pub(crate) must_not_depend: BTreeMap<String, (usize, BTreeSet<String>)>,
    pub(crate) must_not_use: BTreeMap<String, (usize, Vec<String>)>,
    pub(crate) independent: Vec<(usize, BTreeSet<String>)>,
    pub(crate) size_limit: Option<(usize, usize)>,
    pub(crate) long_files: BTreeMap<String, (usize, String)>,
}

pub(crate) fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let text = fs::read_to_string(root().join(RULES_FILE))
            .unwrap_or_else(|e| panic!("{RULES_FILE}: cannot read it: {e}"));
        parse_rules(&text)
            .unwrap_or_else(|errors| panic!("{RULES_FILE}: bad rules block:\n{}", errors.join("\n")))
    })
}

pub(crate) fn parse_rules(markdown: &str) -> Result<Rules, Vec<String>> {
    let lines: Vec<&str> = markdown.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == "## Rules") else {
        return Err(vec![format!(
            "{RULES_FILE}: no `## Rules` section; add it back with its ```text block (tests/tidy.rs reads it)"
        )]);
    };
    let end =
        lines[start + 1..].iter().position(|l| l.starts_with("## ")).map_or(lines.len(), |i| start + 1 + i);
    let mut errors = vec![];
    let mut blocks: Vec<Vec<(usize, &str)>> = vec![];
    let mut i = start + 1;
    while i < end {
        if lines[i].trim_end() == "```text" {
            let open = i + 1;
            let mut body = vec![];
            i += 1;
            while i < end && lines[i].trim_end() != "```" {
                body.push((i + 1, lines[i]));
                i += 1;
            }
            if i == end {
                errors.push(format!("{RULES_FILE}:{open}: the ```text block is not closed; end it with ```"));
            }
            blocks.push(body);
        }
        i += 1;
    }
    if blocks.len() != 1 {
        errors.push(format!(
            "{RULES_FILE}:{}: the `## Rules` section has {} ```text blocks; it needs exactly one, the rules block",
            start + 1,
            blocks.len()
        ));
        return Err(errors);
    }
    let mut rules = Rules::default();
    for &(n, raw) in &blocks[0] {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty() && *w != "nothing")
                .map(String::from)
                .collect()
        };
        if let Some(rest) = line.strip_prefix("long file:") {
            let Some((path, reason)) = rest.split_once('—').or_else(|| rest.split_once(" -- ")) else {
                errors.push(format!(
                    "{RULES_FILE}:{n}: write `long file: PATH — reason` (the reason is required)"
                ));
                continue;
            };
            let (path, reason) = (path.trim(), reason.trim());
            if reason.is_empty() {
                errors.push(format!("{RULES_FILE}:{n}: `long file: {path}` needs a reason after the —"));
            }
            rules.long_files.insert(path.to_string(), (n, reason.to_string()));
        } else if let Some(rest) = line.strip_prefix("file size limit:") {
            match rest.trim().strip_suffix("lines").map(str::trim).and_then(|v| v.parse().ok()) {
                Some(limit) => rules.size_limit = Some((n, limit)),
                None => errors.push(format!("{RULES_FILE}:{n}: write `file size limit: N lines`")),
            }
        } else if let Some(rest) = line.strip_prefix("never import each other:") {
            let files: BTreeSet<String> = list(rest).into_iter().collect();
            if files.len() < 2 {
                errors.push(format!("{RULES_FILE}:{n}: `never import each other:` needs two files or more"));
            }
            rules.independent.push((n, files));
        } else if let Some((krate, rest)) = line.split_once(" may depend on:") {
            if rules.may_depend.insert(krate.trim().into(), (n, list(rest).into_iter().collect())).is_some() {
                errors.push(format!("{RULES_FILE}:{n}: a second `{krate} may depend on:` line; merge them"));
            }
        } else if let Some((krate, rest)) = line.split_once(" must not depend on:") {
            let entry = rules.must_not_depend.entry(krate.trim().into()).or_insert((n, BTreeSet::new()));
            entry.1.extend(list(rest));
        } else if let Some((krate, rest)) = line.split_once(" must not use:") {
            let entry = rules.must_not_use.entry(krate.trim().into()).or_insert((n, vec![]));
            entry.1.extend(list(rest));
        } else {
            errors.push(format!(
                "{RULES_FILE}:{n}: not a rule: {line:?}; the block knows `CRATE may depend on: …`, `CRATE must not \
                 depend on: …`, `CRATE must not use: …`, `never import each other: FILE, …`, `file size limit: N \
                 lines`, `long file: PATH — reason` and `#` comments"
            ));
        }
    }
    if errors.is_empty() { Ok(rules) } else { Err(errors) }
}
