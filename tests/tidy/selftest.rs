//! Tidy: the checker's own tests, on synthetic graphs and made-up files.

use std::collections::{BTreeMap, BTreeSet};

use crate::facts::{forbidden_uses, use_tree};
use crate::graph::{Graph, Tie, crate_graphs, shortest_cycle, strongly_connected, ties_text};
use crate::lex::{Tok, ident, lex};
use crate::rules::parse_rules;
use crate::tree::{SourceFile, source_file};

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
