//! Tidy: the tree: packages, source files, file graphs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::facts::{Facts, facts};
use crate::graph::{Graph, crate_graphs};
use crate::lex::{lex, strip_test_code};

pub(crate) struct Tree {
    pub(crate) packages: Vec<Package>,
    pub(crate) files: Vec<SourceFile>,
    pub(crate) graphs: Vec<Graph>,
}

pub(crate) struct Package {
    pub(crate) name: String,
    /// `Cargo.toml` or `crates/x/Cargo.toml`.
    pub(crate) manifest: String,
    /// `src/` or `crates/x/src/`.
    pub(crate) src: String,
    /// Non-dev dependencies (by package name) → the table that declares them.
    pub(crate) deps: BTreeMap<String, String>,
}

pub(crate) struct SourceFile {
    /// Relative to the repository, with `/`.
    pub(crate) path: String,
    pub(crate) lines: usize,
    pub(crate) first_line: String,
    /// `tests.rs`, or under a `tests/` module directory.
    pub(crate) is_test: bool,
    pub(crate) facts: Facts,
}

/// The repository: cargo's `CARGO_MANIFEST_DIR` when it runs the test (so the built binary can also
/// check another checkout of the tree), else where this file was compiled.
pub(crate) fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
    })
}

pub(crate) fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(load_tree)
}

pub(crate) fn load_tree() -> Tree {
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

pub(crate) fn dependencies(toml: &toml::Table) -> BTreeMap<String, String> {
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

pub(crate) fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
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

pub(crate) fn source_file(path: String, text: &str) -> SourceFile {
    let is_test = path.ends_with("/tests.rs") || path.contains("/tests/");
    SourceFile {
        lines: text.lines().count(),
        first_line: text.lines().next().unwrap_or("").to_string(),
        facts: if is_test { Facts::default() } else { facts(&strip_test_code(lex(text))) },
        path,
        is_test,
    }
}
