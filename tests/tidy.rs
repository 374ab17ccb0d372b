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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const RULES_FILE: &str = "ARCHITECTURE.md";

// ------------------------------------------------------------------------------------------
// The checks.
// ------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------
// The rules block.
// ------------------------------------------------------------------------------------------

/// The parsed rules; each entry keeps its line in ARCHITECTURE.md for messages.
#[derive(Debug, Default)]
struct Rules {
    may_depend: BTreeMap<String, (usize, BTreeSet<String>)>,
    must_not_depend: BTreeMap<String, (usize, BTreeSet<String>)>,
    must_not_use: BTreeMap<String, (usize, Vec<String>)>,
    independent: Vec<(usize, BTreeSet<String>)>,
    size_limit: Option<(usize, usize)>,
    long_files: BTreeMap<String, (usize, String)>,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let text = fs::read_to_string(root().join(RULES_FILE))
            .unwrap_or_else(|e| panic!("{RULES_FILE}: cannot read it: {e}"));
        parse_rules(&text)
            .unwrap_or_else(|errors| panic!("{RULES_FILE}: bad rules block:\n{}", errors.join("\n")))
    })
}

fn parse_rules(markdown: &str) -> Result<Rules, Vec<String>> {
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

// ------------------------------------------------------------------------------------------
// The tree: packages, source files, file graphs.
// ------------------------------------------------------------------------------------------

struct Tree {
    packages: Vec<Package>,
    files: Vec<SourceFile>,
    graphs: Vec<Graph>,
}

struct Package {
    name: String,
    /// `Cargo.toml` or `crates/x/Cargo.toml`.
    manifest: String,
    /// `src/` or `crates/x/src/`.
    src: String,
    /// Non-dev dependencies (by package name) → the table that declares them.
    deps: BTreeMap<String, String>,
}

struct SourceFile {
    /// Relative to the repository, with `/`.
    path: String,
    lines: usize,
    first_line: String,
    /// `tests.rs`, or under a `tests/` module directory.
    is_test: bool,
    facts: Facts,
}

/// The repository: cargo's `CARGO_MANIFEST_DIR` when it runs the test (so the built binary can also
/// check another checkout of the tree), else where this file was compiled.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
    })
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(load_tree)
}

fn load_tree() -> Tree {
    let mut manifests = vec![("Cargo.toml".to_string(), "src/".to_string())];
    let mut crate_dirs: Vec<_> = fs::read_dir(root().join("crates"))
        .expect("crates/ is readable")
        .map(|e| e.expect("crates/ entry").file_name().to_string_lossy().into_owned())
        .filter(|d| root().join("crates").join(d).join("Cargo.toml").is_file())
        .collect();
    crate_dirs.sort();
    manifests
        .extend(crate_dirs.iter().map(|d| (format!("crates/{d}/Cargo.toml"), format!("crates/{d}/src/"))));

    let packages: Vec<Package> = manifests
        .into_iter()
        .map(|(manifest, src)| {
            let text =
                fs::read_to_string(root().join(&manifest)).unwrap_or_else(|e| panic!("{manifest}: {e}"));
            let toml: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{manifest}: {e}"));
            let name = toml
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or_else(|| panic!("{manifest}: no [package] name"))
                .to_string();
            Package { name, manifest, src, deps: dependencies(&toml) }
        })
        .collect();

    let mut files = vec![];
    for package in &packages {
        let mut paths = vec![];
        walk(&root().join(&package.src), &mut paths);
        paths.sort();
        for abs in paths {
            let path = abs.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
            let text = fs::read_to_string(&abs).unwrap_or_else(|e| panic!("{path}: {e}"));
            files.push(source_file(path, &text));
        }
    }
    let mut graphs = vec![];
    for package in &packages {
        let members: Vec<&SourceFile> = files.iter().filter(|f| f.path.starts_with(&package.src)).collect();
        graphs.extend(crate_graphs(&package.name, &package.src, &members));
    }
    Tree { packages, files, graphs }
}

fn dependencies(toml: &toml::Table) -> BTreeMap<String, String> {
    let mut tables: Vec<(String, &toml::Table)> = vec![];
    for key in ["dependencies", "build-dependencies"] {
        if let Some(t) = toml.get(key).and_then(|t| t.as_table()) {
            tables.push((key.to_string(), t));
        }
    }
    if let Some(targets) = toml.get("target").and_then(|t| t.as_table()) {
        for (cfg, target) in targets {
            for key in ["dependencies", "build-dependencies"] {
                if let Some(t) = target.get(key).and_then(|t| t.as_table()) {
                    tables.push((format!("target.{cfg}.{key}"), t));
                }
            }
        }
    }
    let mut deps = BTreeMap::new();
    for (section, table) in tables {
        for (key, value) in table {
            let name = value.get("package").and_then(|p| p.as_str()).unwrap_or(key);
            deps.insert(name.to_string(), section.clone());
        }
    }
    deps
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn source_file(path: String, text: &str) -> SourceFile {
    let is_test = path.ends_with("/tests.rs") || path.contains("/tests/");
    SourceFile {
        lines: text.lines().count(),
        first_line: text.lines().next().unwrap_or("").to_string(),
        facts: if is_test { Facts::default() } else { facts(&strip_test_code(lex(text))) },
        path,
        is_test,
    }
}

// ------------------------------------------------------------------------------------------
// Lexing Rust: identifiers, `::`, punctuation and string contents; comments dropped.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(String),
    /// Numbers, characters, lifetimes.
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn lex(src: &str) -> Vec<Token> {
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
fn char_literal_end(b: &[char], mut i: usize) -> usize {
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

fn is_punct(t: Option<&Token>, p: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Punct(q), .. }) if q == p)
}

fn ident(t: Option<&Token>) -> Option<&str> {
    match t {
        Some(Token { tok: Tok::Ident(w), .. }) => Some(w),
        _ => None,
    }
}

/// The index after the group opened at `open` (`(`, `[` or `{`), or the end.
fn group_end(t: &[Token], open: usize) -> usize {
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
fn strip_test_code(t: Vec<Token>) -> Vec<Token> {
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

// ------------------------------------------------------------------------------------------
// What a file mentions: the paths of its `use` declarations and the paths written inline.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Facts {
    paths: Vec<PathRef>,
    idents: Vec<(usize, String)>,
    strings: Vec<(usize, String)>,
}

#[derive(Debug, Clone, PartialEq)]
struct PathRef {
    /// The inline module the path is written in, relative to the file's module (`mod xml { … }` → `["xml"]`).
    inline: Vec<String>,
    /// As written, `self` of a `{self, …}` group dropped; `*` for a glob; a leading `::` dropped.
    segments: Vec<String>,
    /// `use a::b as c;` → `c`.
    alias: Option<String>,
    line: usize,
    is_use: bool,
}

fn facts(t: &[Token]) -> Facts {
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
fn read_path(t: &[Token], i: usize, inline: &[(String, usize)], f: &mut Facts) -> usize {
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
fn use_tree(
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
fn forbidden_uses(facts: &Facts, items: &[String]) -> BTreeSet<(usize, String)> {
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

// ------------------------------------------------------------------------------------------
// The file graph of a crate, and its cycles.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Tie {
    line: usize,
    path: String,
}

#[derive(Debug, Default)]
struct Graph {
    /// `graced-http` or, for a binary, `graced (src/bin/graced.rs)`.
    name: String,
    nodes: BTreeSet<String>,
    edges: BTreeMap<(String, String), Vec<Tie>>,
}

impl Graph {
    fn adjacency(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut adjacency: BTreeMap<String, BTreeSet<String>> =
            self.nodes.iter().map(|n| (n.clone(), BTreeSet::new())).collect();
        for (from, to) in self.edges.keys() {
            adjacency.entry(from.clone()).or_default().insert(to.clone());
        }
        adjacency
    }
}

/// The crates a package's `src/` holds (the library, each binary) and the file graph of each.
fn crate_graphs(package: &str, src: &str, files: &[&SourceFile]) -> Vec<Graph> {
    let rel = |f: &SourceFile| f.path[src.len()..].to_string();
    let mut roots: Vec<(String, String, Vec<&SourceFile>)> = vec![]; // (root file, its directory, members)
    let has_lib = files.iter().any(|f| rel(f) == "lib.rs");
    for f in files {
        let r = rel(f);
        let parts: Vec<&str> = r.split('/').collect();
        match parts.as_slice() {
            ["lib.rs"] => roots.push((
                f.path.clone(),
                src.to_string(),
                files
                    .iter()
                    .filter(|g| !rel(g).starts_with("bin/") && rel(g) != "main.rs")
                    .copied()
                    .collect(),
            )),
            ["main.rs"] if !has_lib => roots.push((
                f.path.clone(),
                src.to_string(),
                files.iter().filter(|g| !rel(g).starts_with("bin/")).copied().collect(),
            )),
            ["main.rs"] | ["bin", _] => roots.push((f.path.clone(), String::new(), vec![*f])),
            ["bin", dir, "main.rs"] => {
                let under = format!("{src}bin/{dir}/");
                roots.push((
                    f.path.clone(),
                    under.clone(),
                    files.iter().filter(|g| g.path.starts_with(&under)).copied().collect(),
                ))
            }
            _ => {}
        }
    }
    roots
        .into_iter()
        .map(|(root_file, dir, members)| {
            let modules: BTreeMap<Vec<String>, String> =
                members.iter().map(|f| (module_path(&f.path, &root_file, &dir), f.path.clone())).collect();
            let name = if root_file.ends_with("/lib.rs") {
                package.to_string()
            } else {
                format!("{package} ({root_file})")
            };
            let sources = members.iter().filter(|f| !f.is_test).map(|f| (f.path.as_str(), &f.facts));
            file_graph(name, &modules, sources)
        })
        .collect()
}

/// `a/b.rs` and `a/b/mod.rs` → `["a", "b"]`; the crate root → `[]`.
fn module_path(path: &str, root_file: &str, dir: &str) -> Vec<String> {
    if path == root_file {
        return vec![];
    }
    let rel = path[dir.len()..].strip_suffix(".rs").unwrap_or(&path[dir.len()..]);
    let rel = rel.strip_suffix("/mod").unwrap_or(rel);
    rel.split('/').map(String::from).collect()
}

/// Resolves `segments`, written in module `current`, to an absolute module path (items included),
/// or `None` when it names another crate.
fn resolve(
    current: &[String],
    segments: &[String],
    is_module: impl Fn(&[String]) -> bool,
) -> Option<Vec<String>> {
    let (mut base, mut rest) = (current.to_vec(), segments);
    match segments.first()?.as_str() {
        "crate" => {
            base.clear();
            rest = &segments[1..];
        }
        "self" => rest = &segments[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        first => {
            let mut child = current.to_vec();
            child.push(first.to_string());
            if !is_module(&child) {
                return None;
            }
        }
    }
    base.extend(rest.iter().filter(|s| *s != "*").cloned());
    Some(base)
}

fn file_graph<'a>(
    name: String,
    modules: &BTreeMap<Vec<String>, String>,
    sources: impl Iterator<Item = (&'a str, &'a Facts)>,
) -> Graph {
    let mut graph = Graph { name, ..Graph::default() };
    let file_module: BTreeMap<&str, &Vec<String>> = modules.iter().map(|(m, f)| (f.as_str(), m)).collect();
    for (path, facts) in sources {
        graph.nodes.insert(path.to_string());
        let Some(module) = file_module.get(path) else { continue };
        for p in &facts.paths {
            let current: Vec<String> = module.iter().chain(&p.inline).cloned().collect();
            let Some(target) = resolve(&current, &p.segments, |m| modules.contains_key(m)) else {
                continue;
            };
            let Some(file) = (0..=target.len()).rev().find_map(|n| modules.get(&target[..n])) else {
                continue;
            };
            if file != path && !file.ends_with("/tests.rs") && !file.contains("/tests/") {
                graph
                    .edges
                    .entry((path.to_string(), file.clone()))
                    .or_default()
                    .push(Tie { line: p.line, path: p.segments.join("::") });
            }
        }
    }
    graph
}

/// The strongly connected components with more than one node (Tarjan), each sorted, in order.
fn strongly_connected(adjacency: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        adjacency: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.adjacency.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[v].min(s.low[w.as_str()]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w.as_str()) {
                let low = s.low[v].min(s.index[w.as_str()]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.components.push(component);
            }
        }
    }
    let mut s = State {
        adjacency,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on_stack: BTreeSet::new(),
        components: vec![],
    };
    for v in adjacency.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.components.sort();
    s.components
}

/// A shortest cycle through `start` inside `component`, as `[start, …, start]`.
fn shortest_cycle(
    adjacency: &BTreeMap<String, BTreeSet<String>>,
    component: &BTreeSet<String>,
    start: &str,
) -> Vec<String> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in adjacency.get(v).into_iter().flatten().filter(|w| component.contains(*w)) {
            if w == start {
                let mut cycle = vec![start.to_string()];
                let mut at = v;
                while at != start {
                    cycle.push(at.to_string());
                    at = came_from[at];
                }
                cycle.push(start.to_string());
                cycle.reverse();
                return cycle;
            }
            if !came_from.contains_key(w.as_str()) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start.to_string()]
}

/// `line 12: super::files::{self, Content}; line 40: …` — each line once, paths sharing a prefix grouped.
fn ties_text(ties: &[Tie]) -> String {
    let mut by_line: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for tie in ties {
        let paths = by_line.entry(tie.line).or_default();
        if !paths.contains(&tie.path.as_str()) {
            paths.push(&tie.path);
        }
    }
    let group = |paths: &[&str]| {
        let split: Vec<Vec<&str>> = paths.iter().map(|p| p.split("::").collect()).collect();
        let mut n = 0;
        while split.iter().all(|s| s.len() > n && s[n] == split[0][n]) {
            n += 1;
        }
        if paths.len() == 1 || n == 0 {
            return paths.join(", ");
        }
        let rest: Vec<String> =
            split.iter().map(|s| if s.len() == n { "self".to_string() } else { s[n..].join("::") }).collect();
        format!("{}::{{{}}}", split[0][..n].join("::"), rest.join(", "))
    };
    by_line
        .iter()
        .map(|(line, paths)| format!("line {line}: {}", group(paths)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_cycle(graph: &Graph, component: &BTreeSet<String>) -> String {
    let adjacency = graph.adjacency();
    let start = component.first().expect("a component has nodes");
    let cycle = shortest_cycle(&adjacency, component, start);
    let mut text = format!(
        "{}: import cycle between {} files: {}\n  {}\n  the imports that tie them:",
        graph.name,
        component.len(),
        component.iter().cloned().collect::<Vec<_>>().join(", "),
        cycle.join(" → ")
    );
    for ((from, to), ties) in &graph.edges {
        if component.contains(from) && component.contains(to) {
            text.push_str(&format!("\n    {from} → {to}: {}", ties_text(ties)));
        }
    }
    text.push_str(
        "\n  break it: move what these files share into a file of its own that imports none of them \
         (e.g. an error type into error.rs), or import an item from the file that defines it rather than \
         through a lib.rs or mod.rs re-export",
    );
    text
}

// ------------------------------------------------------------------------------------------
// The checker's own tests.
// ------------------------------------------------------------------------------------------

fn adjacency(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut adjacency: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in edges {
        adjacency.entry(a.to_string()).or_default().insert(b.to_string());
        adjacency.entry(b.to_string()).or_default();
    }
    adjacency
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn cycle_finder_finds_each_cycle_once_and_ignores_self_loops() {
    let graph = adjacency(&[
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "d"),
        ("d", "e"),
        ("e", "d"),
        ("f", "f"),
        ("g", "a"),
        ("e", "h"),
    ]);
    assert_eq!(strongly_connected(&graph), vec![set(&["a", "b", "c"]), set(&["d", "e"])]);
}

#[test]
fn cycle_finder_sees_no_cycle_in_a_dag() {
    let graph = adjacency(&[("lib", "a"), ("lib", "b"), ("a", "c"), ("b", "c"), ("a", "b")]);
    assert!(strongly_connected(&graph).is_empty());
}

#[test]
fn cycle_finder_reports_the_shortest_way_round() {
    let graph = adjacency(&[("a", "c"), ("c", "d"), ("d", "a"), ("a", "b"), ("b", "a")]);
    let components = strongly_connected(&graph);
    assert_eq!(components, vec![set(&["a", "b", "c", "d"])]);
    assert_eq!(shortest_cycle(&graph, &components[0], "a"), ["a", "b", "a"]);
    assert_eq!(shortest_cycle(&graph, &components[0], "c"), ["c", "d", "a", "c"]);
}

/// A file graph from in-memory files of one library crate under `src/`.
fn graph_of(files: &[(&str, &str)]) -> Graph {
    let files: Vec<SourceFile> =
        files.iter().map(|(p, text)| source_file(format!("src/{p}"), text)).collect();
    let refs: Vec<&SourceFile> = files.iter().collect();
    crate_graphs("demo", "src/", &refs).remove(0)
}

fn edges_of(graph: &Graph) -> Vec<(String, String, String)> {
    graph
        .edges
        .iter()
        .flat_map(|((a, b), ties)| ties.iter().map(move |t| (a.clone(), b.clone(), t.path.clone())))
        .collect()
}

#[test]
fn file_graph_follows_crate_super_self_and_child_paths_to_the_longest_module_file() {
    let graph = graph_of(&[
        ("lib.rs", "//! root\nmod a;\nmod c;\npub use a::Thing;\npub fn f() { c::run(); }\n"),
        ("a.rs", "//! a\nmod b;\npub use b::Inner;\nuse crate::c::deep::Item;\npub struct Thing;\n"),
        ("a/b.rs", "//! b\nuse super::Thing;\nfn g() { let _ = crate::Thing; }\n"),
        ("c/mod.rs", "//! c\npub fn run() { self::helper(); }\nfn helper() {}\n"),
    ]);
    let mut edges = edges_of(&graph);
    edges.sort();
    assert_eq!(
        edges,
        [
            ("src/a.rs", "src/a/b.rs", "b::Inner"),
            ("src/a.rs", "src/c/mod.rs", "crate::c::deep::Item"),
            ("src/a/b.rs", "src/a.rs", "super::Thing"),
            ("src/a/b.rs", "src/lib.rs", "crate::Thing"),
            ("src/lib.rs", "src/a.rs", "a::Thing"),
            ("src/lib.rs", "src/c/mod.rs", "c::run"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );
    // The re-exports in lib.rs and a.rs and b.rs's `crate::Thing` make one cycle: lib.rs → a.rs → a/b.rs → lib.rs.
    assert_eq!(strongly_connected(&graph.adjacency()), vec![set(&["src/a.rs", "src/a/b.rs", "src/lib.rs"])]);
}

#[test]
fn test_code_and_inline_modules_make_no_edges() {
    let graph = graph_of(&[
        ("lib.rs", "//! root\nmod a;\nmod b;\n#[cfg(test)]\nmod tests;\n"),
        (
            "a.rs",
            "//! a\nuse crate::b::Real;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::b::OnlyInTests;\n}\n\
             mod inner {\n    use super::Local;\n}\n#[cfg(test)]\nfn helper() -> [u8; 2] { crate::b::X }\n\
             // use crate::b::InAComment;\nconst S: &str = \"crate::b::InAString\";\n",
        ),
        ("b.rs", "//! b\npub struct Real;\n"),
        ("tests.rs", "use crate::a::*;\nuse crate::b::*;\n"),
    ]);
    assert_eq!(
        edges_of(&graph),
        [("src/a.rs".to_string(), "src/b.rs".to_string(), "crate::b::Real".to_string())]
    );
    assert!(!graph.nodes.contains("src/tests.rs"));
}

#[test]
fn use_trees_expand_to_full_paths_with_their_aliases() {
    let mut out = vec![];
    let t = lex("super::status::{self, ServerStatus}, crate::{a::{b, c as d}, e::*}");
    use_tree(&t, 0, vec![], &mut out);
    let paths: Vec<(String, Option<String>)> = out.into_iter().map(|(p, a)| (p.join("::"), a)).collect();
    let want = [("super::status", Some("status")), ("super::status::ServerStatus", Some("ServerStatus"))];
    assert_eq!(paths, want.map(|(p, a)| (p.to_string(), a.map(String::from))));
    let mut out = vec![];
    use_tree(&lex("::std::{fs, net::TcpStream as T, io::*}"), 0, vec![], &mut out);
    let paths: Vec<String> = out.into_iter().map(|(p, _)| p.join("::")).collect();
    assert_eq!(paths, ["std::fs", "std::net::TcpStream", "std::io::*"]);
}

#[test]
fn forbidden_uses_see_groups_globs_aliases_inline_paths_and_strings() {
    let code = "//! x\nuse std::{fs, io};\nuse std::net::*;\nuse std::os::unix as u;\nfn f() {\n    \
                let _ = fs::read(\"p\");\n    let _ = u::net::UnixStream::connect(\"s\");\n    \
                let _ = ::std::process::id();\n    let _ = std::env::var(\"NOTIFY_SOCKET\");\n    \
                let _: std::net::SocketAddr;\n}\n// sd_notify in a comment is fine\n";
    let file = source_file("src/x.rs".into(), code);
    let items: Vec<String> = [
        "std::fs::read",
        "std::net::TcpStream",
        "std::os::unix::net",
        "std::process",
        "NOTIFY_SOCKET",
        "sd_notify",
        "std::io::Write",
    ]
    .map(String::from)
    .to_vec();
    let found: Vec<(usize, String)> = forbidden_uses(&file.facts, &items).into_iter().collect();
    let want = [
        (3, "std::net::TcpStream"),
        (6, "std::fs::read"),
        (7, "std::os::unix::net"),
        (8, "std::process"),
        (9, "NOTIFY_SOCKET"),
    ];
    assert_eq!(found, want.map(|(l, i)| (l, i.to_string())));
}

#[test]
fn lexer_keeps_strings_and_drops_comments_lifetimes_and_chars() {
    let t =
        lex("/* crate::a /* nested */ */ fn f<'a>(x: &'a str) -> char { let _ = r#\"crate::\"b\"#; 'x' }");
    let idents: Vec<&str> = t.iter().filter_map(|t| ident(Some(t))).collect();
    assert_eq!(idents, ["fn", "f", "x", "str", "char", "let", "_"]);
    assert!(t.iter().any(|t| t.tok == Tok::Str("crate::\"b".into())));
}

#[test]
fn rules_block_parses_every_kind_of_line() {
    let md = "# A\n\n## Rules\n\nProse.\n\n```text\n# comment\nx may depend on: y, z\nw may depend on: nothing\n\
              x must not depend on: hyper\nx must not use: std::fs, FOO\nnever import each other: a.rs, b.rs\n\
              file size limit: 500 lines\nlong file: src/big.rs — a table\n```\n\n## Next\n\n```text\nnot a rule\n```\n";
    let rules = parse_rules(md).expect("parses");
    assert_eq!(rules.may_depend["x"], (9, set(&["y", "z"])));
    assert_eq!(rules.may_depend["w"], (10, set(&[])));
    assert_eq!(rules.must_not_depend["x"].1, set(&["hyper"]));
    assert_eq!(rules.must_not_use["x"].1, ["std::fs", "FOO"]);
    assert_eq!(rules.independent, [(13, set(&["a.rs", "b.rs"]))]);
    assert_eq!(rules.size_limit, Some((14, 500)));
    assert_eq!(rules.long_files["src/big.rs"], (15, "a table".to_string()));
    let broken = parse_rules("## Rules\n```text\nlong file: src/big.rs\nx may depend: y\n```\n").unwrap_err();
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(broken[0].starts_with("ARCHITECTURE.md:3: write `long file: PATH — reason`"), "{broken:?}");
}

#[test]
fn ties_are_grouped_by_line_and_prefix() {
    let tie = |line, path: &str| Tie { line, path: path.into() };
    let ties = [
        tie(22, "super::connection"),
        tie(22, "super::connection::DRAIN"),
        tie(22, "super::connection::Control"),
        tie(40, "super::body::INLINE_LIMIT"),
        tie(40, "super::body::INLINE_LIMIT"),
    ];
    assert_eq!(
        ties_text(&ties),
        "line 22: super::connection::{self, DRAIN, Control}; line 40: super::body::INLINE_LIMIT"
    );
}
