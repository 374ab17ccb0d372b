//! The path wall's property-test kit: random trees with symlinks leading in and out of a
//! document root, random request paths in every encoding, and a model of what may be served.
//!
//! The model is written without graced's code: it splits a path on `/`, percent-decodes each
//! segment, removes dot segments as RFC 3986 §5.2.4 says, joins the result to the root and asks
//! `std::fs::canonicalize` where that leads. Only a regular file whose canonical path lies
//! inside the canonical root (or a directory's `index.html` that does) may be served, and then
//! only with exactly that file's bytes. Every file outside the root starts with `OUTSIDE`, every
//! file inside with `INSIDE`, and each names its own path, so a wrong file cannot pass.
//!
//! The model allows more than graced serves (graced refuses encoded slashes, absolute symlinks,
//! hidden files and an index that is a link leaving its directory), so the properties built on
//! it are one way: whatever is served is allowed and is the right file. Used by graced-http's
//! `files/tests.rs` (the resolver and both walls) and `tests/loopback/http/paths.rs` (the binary).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

/// Names the random tree and the random paths share, so that paths often hit something.
pub const NAMES: &[&str] = &["a", "b", "index.html", ".h", "x y", "é", "..a", "a.."];

/// Where a random symlink points.
#[derive(Debug, Clone)]
pub enum Target {
    /// A relative target, written as is (may climb out with `..`).
    Relative(&'static str),
    /// An absolute path to something inside the root.
    AbsoluteInside(&'static str),
    /// An absolute path to something outside it.
    AbsoluteOutside(&'static str),
}

const RELATIVE_TARGETS: &[&str] = &[
    "a",
    "b/a",
    "index.html",
    ".",
    "..",
    "../a",
    "../../a",
    "../outside",
    "../outside/secret",
    "../../outside/secret",
    "../wwwx/a",
    "../www/a",
    "../www/../outside/secret",
    "b/../../outside",
    "loop",
];

/// One entry of a random tree, by its path below the root.
#[derive(Debug, Clone)]
pub enum Node {
    Dir(Vec<&'static str>),
    File(Vec<&'static str>),
    Link(Vec<&'static str>, Target),
}

fn name() -> impl Strategy<Value = &'static str> + Clone {
    proptest::sample::select(NAMES)
}

/// A random directory, file or symlink.
pub fn node() -> impl Strategy<Value = Node> {
    let place = || proptest::collection::vec(name(), 1..=3);
    let target = prop_oneof![
        4 => proptest::sample::select(RELATIVE_TARGETS).prop_map(Target::Relative),
        1 => proptest::sample::select(&["a", "b", "b/a", "index.html"][..]).prop_map(Target::AbsoluteInside),
        1 => proptest::sample::select(&["", "secret", "index.html"][..]).prop_map(Target::AbsoluteOutside),
    ];
    prop_oneof![
        2 => place().prop_map(Node::Dir),
        3 => place().prop_map(Node::File),
        3 => (place(), target).prop_map(|(p, t)| Node::Link(p, t)),
    ]
}

/// `base` holding `www/` (the document root), `outside/` and `rootx/` (a
/// sibling whose name has the root's as a prefix), built from `nodes` by [`build`].
pub struct Tree {
    pub root: PathBuf,
    pub canonical_root: PathBuf,
    /// Files created inside the root (relative paths, no links on the way), for liveness.
    pub plain_files: BTreeSet<Vec<&'static str>>,
}

pub fn build(base: &Path, nodes: &[Node]) -> Tree {
    // Each tree's files get a length of their own (the tree's number, mod 64, in padding): a
    // tree built right after another one was deleted may reuse its inode numbers within one
    // timestamp tick, and graced's per-thread caches key a file version by device, inode,
    // size and times. Different sizes keep one case's cached bytes from matching the next's.
    static TREES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let pad = "#".repeat(TREES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 64);
    let base = base.to_owned();
    let root = base.join("www");
    for d in ["www", "outside", "outside/sub", "wwwx"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    for f in
        ["outside/secret", "outside/index.html", "outside/a", "outside/sub/a", "wwwx/a", "wwwx/index.html"]
    {
        std::fs::write(base.join(f), format!("OUTSIDE {f}")).unwrap();
    }
    let mut plain_files = BTreeSet::new();
    for node in nodes {
        // Parents first (failing quietly where a file or link is in the way).
        let parts = match node {
            Node::Dir(parts) | Node::File(parts) | Node::Link(parts, _) => parts,
        };
        std::fs::create_dir_all(join(&root, &parts[..parts.len() - 1])).ok();
        let (parts, made) = match node {
            Node::Dir(parts) => (parts, std::fs::create_dir(join(&root, parts)).is_ok()),
            Node::File(parts) => {
                let path = join(&root, parts);
                let made = !path.exists()
                    && path.symlink_metadata().is_err()
                    && std::fs::write(&path, format!("INSIDE {} {pad}", path.display())).is_ok();
                (parts, made)
            }
            Node::Link(parts, target) => {
                let target = match target {
                    Target::Relative(t) => PathBuf::from(t),
                    Target::AbsoluteInside(t) => root.join(t),
                    Target::AbsoluteOutside(t) => base.join("outside").join(t),
                };
                (parts, symlink(target, join(&root, parts)).is_ok())
            }
        };
        // A file is "plain" if every directory on its way is a real directory (not a link).
        if made && matches!(node, Node::File(_)) && no_links_on_the_way(&root, parts) {
            plain_files.insert(parts.clone());
        }
    }
    // Files are written in the order given; a later node may not replace one, so `plain_files`
    // stays true. The directory's index for `/`:
    std::fs::write(root.join("index.html"), format!("INSIDE the root's index {pad}")).ok();
    let canonical_root = std::fs::canonicalize(&root).unwrap();
    Tree { root, canonical_root, plain_files }
}

fn join(root: &Path, parts: &[&str]) -> PathBuf {
    parts.iter().fold(root.to_owned(), |p, s| p.join(s))
}

fn no_links_on_the_way(root: &Path, parts: &[&str]) -> bool {
    (1..=parts.len())
        .all(|n| join(root, &parts[..n]).symlink_metadata().is_ok_and(|m| !m.file_type().is_symlink()))
}

/// One segment of a random request path, already percent-encoded as a client would send it.
fn segment() -> impl Strategy<Value = String> {
    let special = proptest::sample::select(
        &[
            "..",
            ".",
            "",
            "%2e%2e",
            "%2E%2E",
            ".%2e",
            "%2e.",
            "%2e",
            "%2f",
            "..%2f..",
            "a%2f..%2f..",
            "%00",
            "a%00",
            "\\",
            "..\\..",
            "%5c",
            "%5C..",
            "%c0%ae%c0%ae",
            "%c0%af",
            "%e0%80%ae",
            "%c0%2e",
            "%25",
            "%252e%252e",
            "%",
            "%2",
            "%zz",
            "%%",
            "/",
            "//",
            "%2F%2E%2E",
        ][..],
    )
    .prop_map(str::to_owned);
    let encoded_name =
        (name(), proptest::collection::vec(any::<bool>(), 12)).prop_map(|(n, enc)| encode(n, &enc));
    let random_bytes = proptest::collection::vec(any::<u8>(), 1..6)
        .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02x}")).collect::<String>());
    let long = (1usize..5000).prop_map(|n| "a".repeat(n));
    prop_oneof![8 => encoded_name, 4 => special, 2 => random_bytes, 1 => long]
}

/// The request path a client would send for `parts`, with only the bytes that must be encoded.
pub fn plain_request(parts: &[&str]) -> String {
    format!("/{}", parts.iter().map(|p| encode(p, &[])).collect::<Vec<_>>().join("/"))
}

/// `name` with the bytes chosen by `enc` (and every byte that must be) percent-encoded.
pub fn encode(name: &str, enc: &[bool]) -> String {
    let mut out = String::new();
    for (i, b) in name.bytes().enumerate() {
        let must = !(b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if must || enc.get(i).copied().unwrap_or(false) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// A random request path: mostly origin form, sometimes not; segments in every encoding.
pub fn request_path() -> impl Strategy<Value = String> {
    (proptest::collection::vec(segment(), 0..5), any::<bool>(), 0u8..20).prop_map(|(segments, slash, odd)| {
        let joined = segments.join("/");
        let path = match odd {
            // Not origin form, now and then.
            0 => joined,
            1 => format!("*{joined}"),
            _ => format!("/{joined}"),
        };
        if slash { format!("{path}/") } else { path }
    })
}

fn percent_decode(segment: &str) -> Option<Vec<u8>> {
    let bytes = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The model: the file a request may be answered with, if any.
pub fn model_allows(tree: &Tree, raw: &str) -> Option<PathBuf> {
    let rest = raw.strip_prefix('/')?;
    let mut stack: Vec<Vec<u8>> = Vec::new();
    for encoded in rest.split('/') {
        let segment = percent_decode(encoded)?;
        match segment.as_slice() {
            b"" | b"." => {}
            b".." => {
                stack.pop()?;
            }
            s => stack.push(s.to_vec()),
        }
    }
    let mut path = tree.root.clone();
    for s in &stack {
        path.push(OsStr::from_bytes(s));
    }
    let inside = |p: &Path| p.starts_with(&tree.canonical_root);
    let canonical = std::fs::canonicalize(&path).ok()?;
    if !inside(&canonical) {
        return None;
    }
    if canonical.is_file() {
        return Some(canonical);
    }
    let index = std::fs::canonicalize(canonical.join("index.html")).ok()?;
    (canonical.is_dir() && index.is_file() && inside(&index)).then_some(index)
}

/// Fails unless `served` (the body answered for `raw`) is exactly the file the model allows.
pub fn check_served(tree: &Tree, raw: &str, served: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(
        !served.starts_with(b"OUTSIDE"),
        "{raw:?} served a file outside the root: {:?}",
        String::from_utf8_lossy(served)
    );
    let allowed = model_allows(tree, raw);
    prop_assert!(
        allowed.is_some(),
        "{raw:?} served {:?}, the model allows nothing",
        String::from_utf8_lossy(served)
    );
    let expected = std::fs::read(allowed.unwrap()).unwrap();
    prop_assert_eq!(served, expected.as_slice(), "{:?}: not the file the path names", raw);
    Ok(())
}
