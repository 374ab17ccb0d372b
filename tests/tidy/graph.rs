//! Tidy: the file graph of a crate, and its cycles.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::facts::Facts;
use crate::tree::SourceFile;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tie {
    pub(crate) line: usize,
    pub(crate) path: String,
}

#[derive(Debug, Default)]
pub(crate) struct Graph {
    /// `graced-http` or, for a binary, `graced (src/bin/graced.rs)`.
    pub(crate) name: String,
    pub(crate) nodes: BTreeSet<String>,
    pub(crate) edges: BTreeMap<(String, String), Vec<Tie>>,
}

impl Graph {
    pub(crate) fn adjacency(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut adjacency: BTreeMap<String, BTreeSet<String>> =
            self.nodes.iter().map(|n| (n.clone(), BTreeSet::new())).collect();
        for (from, to) in self.edges.keys() {
            adjacency.entry(from.clone()).or_default().insert(to.clone());
        }
        adjacency
    }
}

/// The crates a package's `src/` holds (the library, each binary) and the file graph of each.
pub(crate) fn crate_graphs(package: &str, src: &str, files: &[&SourceFile]) -> Vec<Graph> {
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
pub(crate) fn module_path(path: &str, root_file: &str, dir: &str) -> Vec<String> {
    if path == root_file {
        return vec![];
    }
    let rel = path[dir.len()..].strip_suffix(".rs").unwrap_or(&path[dir.len()..]);
    let rel = rel.strip_suffix("/mod").unwrap_or(rel);
    rel.split('/').map(String::from).collect()
}

/// Resolves `segments`, written in module `current`, to an absolute module path (items included),
/// or `None` when it names another crate.
pub(crate) fn resolve(
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

pub(crate) fn file_graph<'a>(
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
pub(crate) fn strongly_connected(adjacency: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        adjacency: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<BTreeSet<String>>,
    }
    pub(crate) fn visit<'a>(s: &mut State<'a>, v: &'a str) {
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
pub(crate) fn shortest_cycle(
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
pub(crate) fn ties_text(ties: &[Tie]) -> String {
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

pub(crate) fn describe_cycle(graph: &Graph, component: &BTreeSet<String>) -> String {
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
