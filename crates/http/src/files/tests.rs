//! Property tests for the two walls (`path::resolve`, then the lookup below the root, by
//! `openat2` and by the walking fallback): random request paths over a random tree with
//! symlinks leading in and out of the root, against the model in
//! `graced_testsupport::pathwall`. Whatever is served is a file the model allows, with its
//! exact bytes; nothing panics; and a plainly spelled path to a real file is served.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use graced_config::{Root, Site};
use graced_testsupport::pathwall::{Tree, build, check_served, node, plain_request, request_path};
use proptest::prelude::*;

use super::beneath::{RootDir, open_beneath_by_walking};
use super::lookup::lookup;
use super::resource::{Content, Lookup};
use crate::path::resolve;

fn site(root: &Path, hidden_files: bool) -> Site {
    Site { hidden_files, ..test_site(Root::Dir(root.to_owned())) }
}

/// A default site (index.html, no rules, hidden files refused) with `root`, for the tests here.
pub(super) fn test_site(root: Root) -> Site {
    Site {
        hosts: vec![],
        root,
        index: vec!["index.html".into()],
        hidden_files: false,
        is_default: true,
        tls: None,
        acme: None,
        https_redirect: false,
        hsts: None,
        compression: Default::default(),
        rules: graced_config::SiteRules::default(),
    }
}

/// The bytes of a found file's `content` (`len` of them when read from an open file).
pub(super) fn bytes_of(content: Content, len: u64) -> Vec<u8> {
    match content {
        Content::Cached(bytes) => bytes.to_vec(),
        Content::Static(bytes) => bytes.to_vec(),
        Content::File(mut file) => {
            let mut out = Vec::new();
            file.read_to_end(&mut out).unwrap();
            out
        }
        Content::Open(file) => {
            let mut out = vec![0; len as usize];
            file.read_exact_at(&mut out, 0).unwrap();
            out
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn nothing_outside_the_root_is_ever_served(
        nodes in proptest::collection::vec(node(), 0..24),
        paths in proptest::collection::vec(request_path(), 1..24),
        hidden_files in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let tree: Tree = build(dir.path(), &nodes);
        let site = site(&tree.root, hidden_files);
        let root_dir = RootDir::new(&site.root);
        let root_fd = File::open(&tree.root).unwrap();
        for raw in &paths {
            let Ok(safe) = resolve(raw, hidden_files) else { continue };
            // The kernel's wall (openat2), through the real lookup and its caches: twice, so the
            // second answer may come from the per-thread caches.
            for _ in 0..2 {
                if let Lookup::Found(resource) = lookup(&site, &root_dir, &safe) {
                    let len = resource.len;
                    check_served(&tree, raw, &bytes_of(resource.content, len))?;
                }
            }
            // The user-space wall used where openat2 is refused (systemd's seccomp filters).
            if let Ok(fd) = open_beneath_by_walking(root_fd.as_fd(), safe.as_relative()) {
                let mut file = File::from(fd);
                if file.metadata().unwrap().is_file() {
                    let mut served = Vec::new();
                    file.read_to_end(&mut served).unwrap();
                    check_served(&tree, raw, &served)?;
                }
            }
        }
    }

    #[test]
    fn a_plain_path_to_a_real_file_is_served(nodes in proptest::collection::vec(node(), 1..24)) {
        let dir = tempfile::tempdir().unwrap();
        let tree: Tree = build(dir.path(), &nodes);
        let site = site(&tree.root, true);
        let root_dir = RootDir::new(&site.root);
        for parts in &tree.plain_files {
            let raw = plain_request(parts);
            let safe = resolve(&raw, true).map_err(|e| TestCaseError::fail(format!("{raw}: {e}")))?;
            match lookup(&site, &root_dir, &safe) {
                Lookup::Found(resource) => {
                    let len = resource.len;
                    check_served(&tree, &raw, &bytes_of(resource.content, len))?;
                }
                other => prop_assert!(false, "{raw:?}: {other:?}, expected the file"),
            }
        }
    }
}
