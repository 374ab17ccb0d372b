//! Tests for the watched path cache (`watch`): a watched path is served without a `statx`,
//! yet every change to the file, to its directories or through another hard link is seen
//! by the very next lookup, with no pause between; paths inotify cannot cover are not
//! watched and are checked with `statx` as before.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, SystemTime};

use graced_config::{Root, Site};

use super::beneath::RootDir;
use super::cache;
use super::lookup::lookup;
use super::resource::{Content, Lookup};
use super::tests::bytes_of;
use crate::path::resolve;

fn site(root: &Path) -> Site {
    super::tests::test_site(Root::Dir(root.to_owned()))
}

struct Served {
    site: Site,
    root: RootDir,
}

impl Served {
    fn new(www: &Path) -> Served {
        let site = site(www);
        let root = RootDir::new(&site.root);
        Served { site, root }
    }

    fn find(&self, raw: &str) -> Lookup {
        lookup(&self.site, &self.root, &resolve(raw, false).unwrap())
    }

    /// The bytes served for `raw`, looked up twice: the second from the path cache, which
    /// watches a path the second time it is asked for.
    fn body(&self, raw: &str) -> Vec<u8> {
        let _ = self.find(raw);
        match self.find(raw) {
            Lookup::Found(found) => {
                let cached = matches!(found.content, Content::Cached(_) | Content::Open(_));
                assert!(cached, "{raw} was not served from the path cache");
                bytes_of(found.content, found.len)
            }
            other => panic!("{raw}: {other:?}"),
        }
    }

    /// Whether the path cache trusts `raw` without a `statx` (it is watched).
    fn watched(&self, raw: &str) -> bool {
        let dir = self.root.path().unwrap();
        let id = self.root.get(dir).unwrap().id;
        let relative = resolve(raw, false).unwrap().relative;
        let known = cache::known(id, relative.as_os_str().as_encoded_bytes());
        matches!(known.map(|known| known.watch), Some(cache::Watch::Since(_)))
    }
}

/// Writes `content` over `path` in place and gives it back its old mtime: only ctime tells.
fn rewrite_keeping_mtime(path: &Path, content: &[u8]) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::File::options().write(true).open(path).unwrap().set_modified(mtime).unwrap();
}

#[test]
fn a_watched_path_sees_every_change_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("a/b")).unwrap();
    std::fs::create_dir(www.join("other")).unwrap();
    let page = www.join("a/b/page.txt");
    std::fs::write(&page, "version 1").unwrap();
    let served = Served::new(&www);

    assert_eq!(served.body("/a/b/page.txt"), b"version 1");
    assert!(served.watched("/a/b/page.txt"), "a file on a local file system is watched");

    // Rewritten in place, same size, mtime put back.
    rewrite_keeping_mtime(&page, b"version 2");
    assert_eq!(served.body("/a/b/page.txt"), b"version 2");
    assert!(served.watched("/a/b/page.txt"));

    // Replaced by rename (an atomic deploy).
    std::fs::write(www.join("a/b/.page.tmp"), "version 3").unwrap();
    std::fs::rename(www.join("a/b/.page.tmp"), &page).unwrap();
    assert_eq!(served.body("/a/b/page.txt"), b"version 3");

    // Written through a hard link in another directory.
    std::fs::hard_link(&page, www.join("other/link.txt")).unwrap();
    assert_eq!(served.body("/a/b/page.txt"), b"version 3");
    rewrite_keeping_mtime(&www.join("other/link.txt"), b"version 4");
    assert_eq!(served.body("/a/b/page.txt"), b"version 4");

    // A directory on the way swapped for another holding the same name.
    std::fs::create_dir_all(www.join("next/b")).unwrap();
    std::fs::write(www.join("next/b/page.txt"), "version 5").unwrap();
    std::fs::rename(www.join("a"), www.join("old")).unwrap();
    std::fs::rename(www.join("next"), www.join("a")).unwrap();
    assert_eq!(served.body("/a/b/page.txt"), b"version 5");
    assert!(served.watched("/a/b/page.txt"), "watched again once opened again");

    // `touch` with an old time.
    let old = SystemTime::now() - Duration::from_secs(86_400);
    std::fs::File::options().write(true).open(www.join("a/b/page.txt")).unwrap().set_modified(old).unwrap();
    let Lookup::Found(found) = served.find("/a/b/page.txt") else { panic!() };
    assert_eq!(found.modified, Some(old));

    // Removed.
    std::fs::remove_file(www.join("a/b/page.txt")).unwrap();
    assert!(matches!(served.find("/a/b/page.txt"), Lookup::NotFound));
}

#[test]
fn a_small_cached_file_and_an_open_one_are_both_watched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.txt"), "small").unwrap();
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    let served = Served::new(dir.path());
    assert_eq!(served.body("/small.txt"), b"small");
    assert_eq!(served.body("/big.bin"), big);
    assert!(served.watched("/small.txt"));
    assert!(served.watched("/big.bin"));
    let changed: Vec<u8> = big.iter().map(|b| b.wrapping_add(1)).collect();
    rewrite_keeping_mtime(&dir.path().join("big.bin"), &changed);
    assert_eq!(served.body("/big.bin"), changed);
}

#[test]
fn a_path_through_a_symlink_is_not_watched_and_still_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::fs::write(dir.path().join("real/page.txt"), "first").unwrap();
    symlink("real", dir.path().join("alias")).unwrap();
    let served = Served::new(dir.path());
    assert_eq!(served.body("/alias/page.txt"), b"first");
    assert!(!served.watched("/alias/page.txt"));
    assert_eq!(served.body("/real/page.txt"), b"first");
    assert!(served.watched("/real/page.txt"));
    rewrite_keeping_mtime(&dir.path().join("real/page.txt"), b"again");
    assert_eq!(served.body("/alias/page.txt"), b"again");
}
