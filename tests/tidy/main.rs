//! Tidy: ARCHITECTURE.md's `## Rules`, checked against the code (in the spirit of rust-analyzer's `tidy.rs`).
//!
//! The rules live in the one ```` ```text ```` block of that section. This test parses it,
//! reads every `Cargo.toml` of the workspace and every `.rs` file under `src/` and
//! `crates/*/src/`, and fails naming the file and what to do:
//!
//! * crate dependencies: each package's `graced-*` dependencies are exactly those its
//!   `may depend on:` line lists, and none its `must not depend on:` line names;
//! * forbidden uses: the non-test code of a crate mentions nothing its `must not use:` line names;
//! * no import cycle between the files of a crate (`use crate::…`, `super::…`, `self::…`,
//!   child-module paths, inline or in `use`), and no import between files a
//!   `never import each other:` line names;
//! * file size: no file over the `file size limit:` unless a `long file:` line names it with a reason;
//! * module docs: every non-test file starts with a `//!` line.
//!
//! Std only (plus `toml`, already a dependency), no network, a fraction of a second. The
//! Rust reading is a small lexer, not a parser: enough for paths, `use` trees, inline
//! `mod`s and `#[cfg(test)]` items, which is all the rules need.

mod facts;
mod graph;
mod lex;
mod rules;
mod selftest;
mod tree;

use std::collections::BTreeSet;

use crate::facts::forbidden_uses;
use crate::graph::{describe_cycle, strongly_connected, ties_text};
use crate::rules::rules;
use crate::tree::tree;

pub(crate) const RULES_FILE: &str = "ARCHITECTURE.md";

// The checks.

#[test]
fn crate_dependencies_follow_the_rules() {
    let (tree, rules) = (tree(), rules());
    let mut problems = vec![];
    let names: BTreeSet<&str> = tree.packages.iter().map(|p| p.name.as_str()).collect();
    for (kind, lines) in [
        ("may depend on", rules.may_depend.iter().map(|(c, (l, _))| (c, *l)).collect::<Vec<_>>()),
        ("must not depend on", rules.must_not_depend.iter().map(|(c, (l, _))| (c, *l)).collect()),
        ("must not use", rules.must_not_use.iter().map(|(c, (l, _))| (c, *l)).collect()),
    ] {
        for (krate, line) in lines {
            if !names.contains(krate.as_str()) {
                problems.push(format!(
                    "{RULES_FILE}:{line}: `{krate} {kind}:` names no package of the workspace (there are: {}); \
                     fix the name or remove the line",
                    names.iter().copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    for package in &tree.packages {
        let manifest = &package.manifest;
        let Some((line, allowed)) = rules.may_depend.get(&package.name) else {
            problems.push(format!(
                "{manifest}: package {} has no `{} may depend on:` line in {RULES_FILE}'s rules block; add one \
                 naming the graced-* crates it may depend on (or `nothing`)",
                package.name, package.name
            ));
            continue;
        };
        let forbidden = rules.must_not_depend.get(&package.name);
        for (dep, section) in &package.deps {
            if let Some((fline, list)) = forbidden
                && list.contains(dep)
            {
                problems.push(format!(
                    "{manifest}: [{section}] {dep}: {} must not depend on {dep} ({RULES_FILE}:{fline}); remove the \
                     dependency and keep that code in a crate allowed to have it (the binaries' package composes them)",
                    package.name
                ));
                continue;
            }
            if dep.starts_with("graced-") && !allowed.contains(dep) {
                problems.push(format!(
                    "{manifest}: [{section}] {dep}: {} may depend on {} only ({RULES_FILE}:{line}); remove the \
                     dependency (pass what it needs in from the crate that composes both), or change the rule in \
                     {RULES_FILE} with its reason",
                    package.name,
                    list_or_nothing(allowed)
                ));
            }
        }
        for dep in allowed {
            if !package.deps.contains_key(dep) {
                problems.push(format!(
                    "{RULES_FILE}:{line}: `{} may depend on:` lists {dep}, but {manifest} does not depend on it; \
                     remove {dep} from the line so the rules stay the true map",
                    package.name
                ));
            }
        }
    }
    report("crate dependency rule(s) broken", problems);
}

#[test]
fn crates_use_only_what_the_rules_allow() {
    let (tree, rules) = (tree(), rules());
    let mut problems = vec![];
    for package in &tree.packages {
        let Some((rule_line, items)) = rules.must_not_use.get(&package.name) else { continue };
        for file in tree.files.iter().filter(|f| f.path.starts_with(&package.src) && !f.is_test) {
            for (line, item) in forbidden_uses(&file.facts, items) {
                problems.push(format!(
                    "{}:{line}: {} must not use `{item}` ({RULES_FILE}:{rule_line}); move this code to a crate \
                     the rules allow to do it, or have the caller pass in what it needs",
                    file.path, package.name
                ));
            }
        }
    }
    report("forbidden use(s)", problems);
}

#[test]
fn no_import_cycle_between_files() {
    let tree = tree();
    let mut problems = vec![];
    for graph in &tree.graphs {
        for component in strongly_connected(&graph.adjacency()) {
            problems.push(describe_cycle(graph, &component));
        }
    }
    report("import cycle(s) between files", problems);
}

#[test]
fn independent_files_never_import_each_other() {
    let (tree, rules) = (tree(), rules());
    let mut problems = vec![];
    for (rule_line, files) in &rules.independent {
        for file in files {
            if !tree.files.iter().any(|f| &f.path == file) {
                problems.push(format!(
                    "{RULES_FILE}:{rule_line}: `never import each other:` names {file}, which does not exist; \
                     fix the path or remove it from the line"
                ));
            }
        }
        for graph in &tree.graphs {
            for ((from, to), ties) in &graph.edges {
                if files.contains(from) && files.contains(to) {
                    problems.push(format!(
                        "{from} imports {to} ({}), but {RULES_FILE}:{rule_line} says these files never import \
                         each other; move what they share out of the list's files, or let the file composing them \
                         pass it in",
                        ties_text(ties)
                    ));
                }
            }
        }
    }
    report("import(s) between independent files", problems);
}

#[test]
fn no_file_over_the_size_limit() {
    let (tree, rules) = (tree(), rules());
    let Some((limit_line, limit)) = rules.size_limit else {
        panic!("{RULES_FILE}: the rules block has no `file size limit: N lines` line; add it back");
    };
    let mut problems = vec![];
    for file in &tree.files {
        let allowance = rules.long_files.get(&file.path);
        if file.lines > limit && allowance.is_none() {
            problems.push(format!(
                "{}: {} lines, over the {limit}-line limit ({RULES_FILE}:{limit_line}); split it (one file per \
                 concern, tests into a tests.rs beside it), or name it in {RULES_FILE}'s rules block as \
                 `long file: {} — <why it stays long>`",
                file.path, file.lines, file.path
            ));
        }
    }
    for (path, (line, _)) in &rules.long_files {
        match tree.files.iter().find(|f| &f.path == path) {
            None => problems.push(format!(
                "{RULES_FILE}:{line}: `long file: {path}` names no file under src/ or crates/*/src/; remove the line"
            )),
            Some(file) if file.lines <= limit => problems.push(format!(
                "{RULES_FILE}:{line}: {path} has {} lines, within the {limit}-line limit; remove its `long file:` line",
                file.lines
            )),
            Some(_) => {}
        }
    }
    report("file(s) over the size limit", problems);
}

#[test]
fn every_source_file_starts_with_module_docs() {
    let problems: Vec<String> = tree()
        .files
        .iter()
        .filter(|f| !f.is_test && !f.first_line.starts_with("//!"))
        .map(|f| {
            format!(
                "{}:1: does not start with a `//!` line; begin it with `//! <what this module is for>`",
                f.path
            )
        })
        .collect();
    report("file(s) without module docs", problems);
}

fn report(what: &str, problems: Vec<String>) {
    if !problems.is_empty() {
        panic!(
            "{} {what} (rules: {RULES_FILE}, section `## Rules`):\n\n{}\n",
            problems.len(),
            problems.join("\n\n")
        );
    }
}

fn list_or_nothing(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "nothing (no graced-* crate)".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}
