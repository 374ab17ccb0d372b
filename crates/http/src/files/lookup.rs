//! Looks a safe path up below a site's document root: the per-request check of the file on
//! disk, served from the per-thread caches when it is exactly the version they know.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use graced_config::Site;

use super::beneath::{OpenedRoot, RootDir, open_beneath};
use super::cache::{self, Known, Stamp, Watch};
use super::demo;
use super::mime::content_type;
use super::resource::{Content, Lookup, Resource};
use super::watch;
use crate::path::SafePath;
use crate::size::SizeClass;
use rustix::fs::{AtFlags, StatxFlags};

/// Looks `path` up in `site`, whose root is `root`.
pub(crate) fn lookup(site: &Site, root: &RootDir, path: &SafePath) -> Lookup {
    match root.path() {
        Some(dir) => lookup_dir(dir, root, site, path),
        None => demo::lookup(site, path),
    }
}

fn lookup_dir(dir: &Path, root: &RootDir, site: &Site, path: &SafePath) -> Lookup {
    let root_fd = match root.get(dir) {
        Ok(opened) => opened,
        Err(err) if err == rustix::io::Errno::NOENT => {
            tracing::warn!(root = %dir.display(), "the document root does not exist");
            return Lookup::NotFound;
        }
        Err(err) => return error_lookup(err.into()),
    };
    let cacheable = !path.trailing_slash && !path.relative.as_os_str().is_empty();
    if cacheable && let Some(resource) = lookup_known(&root_fd, path) {
        return Lookup::Found(resource);
    }
    let fd = match open_beneath(&root_fd.fd, path.as_relative()) {
        Ok(fd) => fd,
        Err(err) => return error_lookup(err),
    };
    let file = File::from(fd);
    let meta = match file.metadata() {
        Ok(meta) => meta,
        Err(err) => return error_lookup(err),
    };
    if meta.is_dir() {
        if !path.trailing_slash {
            return Lookup::AddSlash;
        }
        for index in &site.index {
            let Ok(fd) = open_beneath(&file, Path::new(index)) else { continue };
            let index_file = File::from(fd);
            if let Ok(index_meta) = index_file.metadata()
                && index_meta.is_file()
            {
                return Lookup::Found(resource(index_file, &index_meta, index));
            }
        }
        return Lookup::Forbidden;
    }
    if !meta.is_file() || path.trailing_slash {
        return Lookup::NotFound;
    }
    let name = path.relative.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut resource = resource(file, &meta, name);
    if cacheable {
        let open = match std::mem::replace(&mut resource.content, Content::Static(b"")) {
            // Small enough to send from the serving thread: keep it open for next time.
            Content::File(file) if SizeClass::of(resource.len) != SizeClass::Large => Some(Arc::new(file)),
            other => {
                resource.content = other;
                None
            }
        };
        let known = match &open {
            Some(file) => Some(Known::new(Stamp::of(&meta), Some(file.clone()))),
            None if matches!(resource.content, Content::Cached(_)) => {
                Some(Known::new(Stamp::of(&meta), None))
            }
            None => None,
        };
        if let Some(file) = open {
            resource.content = Content::Open(file);
        }
        if let Some(known) = known {
            let relative = path.relative.as_os_str().as_encoded_bytes();
            // The process's one inotify descriptor is opened with its first cached path, not
            // when a path is first watched: the descriptors in use stay level from then on.
            watch::open();
            cache::remember(root_fd.id, relative, known);
        }
    }
    Lookup::Found(resource)
}

/// A file (not [`SizeClass::Large`]) this thread served under the same root and path, if
/// its watches say nothing changed since (`watch::unchanged_since`), or else a `statx` of the
/// path finds exactly that file version again: then it is served from memory
/// ([`SizeClass::Small`]) or from the descriptor kept open, with
/// its cached validators, without opening it again.
///
/// Why this keeps the root's wall: the entry was made by a lookup that opened the file
/// with `openat2(RESOLVE_BENEATH)`. `statx` resolves the path without that restriction,
/// but the answer is used only if it is the same inode (device and inode number) with
/// the same size, mtime and ctime. Renaming or linking a file changes its ctime, so a
/// file moved out of the root, or linked to from outside it, no longer matches and goes
/// through `openat2` again; what can match is the very file that was served from inside
/// the root, unchanged — its content is what this lookup would return anyway. A watched
/// path was checked, with its watches in place, to run through no symlink to that very
/// version; every change since to the file or a directory on the way has queued an event.
fn lookup_known(root: &OpenedRoot, path: &SafePath) -> Option<Resource> {
    let relative = path.relative.as_os_str().as_encoded_bytes();
    let known = cache::known(root.id, relative)?;
    let same = matches!(known.watch, Watch::Since(at) if watch::unchanged_since(at)) || {
        let stat = rustix::fs::statx(&root.fd, &path.relative, AtFlags::empty(), StatxFlags::BASIC_STATS);
        let same = stat.is_ok_and(|stat| known.stamp == Stamp::of_statx(&stat));
        if same && known.watch == Watch::Untried {
            let watched = watch::watch(root, &path.relative, &known.stamp);
            cache::set_watch(root.id, relative, watched.map_or(Watch::Not, Watch::Since));
        }
        same
    };
    let entry = same.then(|| cache::peek(&known.stamp)).flatten();
    let found = entry.and_then(|entry| match (&entry.content, known.file) {
        (Some(bytes), _) => Some((Content::Cached(bytes.clone()), entry)),
        (None, Some(file)) => Some((Content::Open(file), entry)),
        (None, None) => None,
    });
    let Some((content, entry)) = found else {
        // Changed, gone or forgotten: let go of the entry (and any descriptor it keeps).
        cache::forget(root.id, relative);
        return None;
    };
    let name = path.relative.file_name().and_then(|n| n.to_str()).unwrap_or("");
    Some(Resource {
        len: known.stamp.len,
        modified: entry.modified,
        etag: entry.etag,
        last_modified: entry.last_modified,
        content_type: content_type(name),
        content,
    })
}

fn error_lookup(err: io::Error) -> Lookup {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => Lookup::NotFound,
        // EXDEV: resolution would leave the root; ELOOP: too many or forbidden links.
        Some(libc::EXDEV | libc::ELOOP | libc::EACCES | libc::EPERM) => Lookup::Forbidden,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => {
            // Give back the descriptors this thread keeps open for the next request.
            cache::forget_all_paths();
            tracing::warn!(error = %err, "cannot open a file right now; answering 503");
            Lookup::Unavailable
        }
        _ => {
            tracing::warn!(error = %err, "file lookup failed");
            Lookup::Failed
        }
    }
}

fn resource(file: File, meta: &std::fs::Metadata, name: &str) -> Resource {
    let stamp = Stamp::of(meta);
    let entry = cache::entry(&stamp, meta, &file);
    Resource {
        len: stamp.len,
        modified: entry.modified,
        etag: entry.etag,
        last_modified: entry.last_modified,
        content_type: content_type(name),
        content: match entry.content {
            Some(bytes) => Content::Cached(bytes),
            None => Content::File(file),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::resolve;
    use graced_config::Root;
    use rustix::fs::Mode;
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    fn site(root: &Path) -> Site {
        super::super::tests::test_site(Root::Dir(root.to_owned()))
    }

    fn find(site: &Site, raw: &str) -> Lookup {
        lookup(site, &RootDir::new(&site.root), &resolve(raw, site.hidden_files).unwrap())
    }

    #[test]
    fn files_directories_and_index() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>hi</p>").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        std::fs::write(dir.path().join("sub/a.css"), "a{}").unwrap();
        let site = site(dir.path());
        match find(&site, "/") {
            Lookup::Found(r) => {
                assert_eq!(r.len, 9);
                assert_eq!(r.content_type, "text/html; charset=utf-8");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(find(&site, "/sub"), Lookup::AddSlash));
        assert!(matches!(find(&site, "/empty/"), Lookup::Forbidden));
        assert!(
            matches!(find(&site, "/sub/a.css"), Lookup::Found(r) if r.content_type.starts_with("text/css"))
        );
        assert!(matches!(find(&site, "/sub/a.css/"), Lookup::NotFound));
        assert!(matches!(find(&site, "/missing"), Lookup::NotFound));
    }

    #[test]
    fn symlinks_inside_the_root_are_followed_and_leaving_it_is_forbidden() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real.txt"), "x").unwrap();
        symlink("real.txt", dir.path().join("inside.txt")).unwrap();
        symlink("/etc", dir.path().join("etc")).unwrap();
        symlink("../", dir.path().join("up")).unwrap();
        symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let site = site(dir.path());
        assert!(matches!(find(&site, "/inside.txt"), Lookup::Found(_)));
        assert!(matches!(find(&site, "/etc/passwd"), Lookup::Forbidden));
        assert!(matches!(find(&site, "/passwd"), Lookup::Forbidden));
        assert!(matches!(find(&site, "/up/"), Lookup::Forbidden));
    }

    fn content(lookup: Lookup) -> Vec<u8> {
        match lookup {
            Lookup::Found(found) => super::super::tests::bytes_of(found.content, found.len),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cached_files_follow_every_change_and_never_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir(&www).unwrap();
        std::fs::write(www.join("a.txt"), "first").unwrap();
        let site = site(&www);
        let root = RootDir::new(&site.root);
        let find = |raw: &str| lookup(&site, &root, &resolve(raw, false).unwrap());
        // The second lookup is served from the cache (statx only), the same bytes.
        assert_eq!(content(find("/a.txt")), b"first");
        assert_eq!(content(find("/a.txt")), b"first");
        let Lookup::Found(first) = find("/a.txt") else { panic!() };
        // Rewritten in place with the same size: new content, new tag. (The pause makes the
        // new mtime differ even on file systems with coarse timestamps.)
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(www.join("a.txt"), "other").unwrap();
        let Lookup::Found(second) = find("/a.txt") else { panic!() };
        assert_ne!(first.etag, second.etag);
        assert_eq!(content(find("/a.txt")), b"other");
        // Moved out of the root, with a symlink left pointing at it: 403, not the cached bytes.
        std::fs::rename(www.join("a.txt"), dir.path().join("a.txt")).unwrap();
        symlink("../a.txt", www.join("a.txt")).unwrap();
        assert!(matches!(find("/a.txt"), Lookup::Forbidden));
        // Removed: 404.
        std::fs::remove_file(www.join("a.txt")).unwrap();
        assert!(matches!(find("/a.txt"), Lookup::NotFound));
        // A directory where the file was: the redirect, as before.
        std::fs::create_dir(www.join("a.txt")).unwrap();
        assert!(matches!(find("/a.txt"), Lookup::AddSlash));

        // The same for a file sent from a descriptor kept open (above the content cache's size).
        let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(www.join("b.bin"), &big).unwrap();
        assert!(matches!(find("/b.bin"), Lookup::Found(Resource { content: Content::Open(_), .. })));
        assert_eq!(content(find("/b.bin")), big);
        std::thread::sleep(Duration::from_millis(20));
        let changed: Vec<u8> = big.iter().map(|b| b.wrapping_add(1)).collect();
        std::fs::write(www.join("b.bin"), &changed).unwrap();
        assert_eq!(content(find("/b.bin")), changed);
        std::fs::rename(www.join("b.bin"), dir.path().join("b.bin")).unwrap();
        symlink("../b.bin", www.join("b.bin")).unwrap();
        assert!(matches!(find("/b.bin"), Lookup::Forbidden));
    }

    #[test]
    fn special_files_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // O_NONBLOCK: the open returns at once instead of waiting for a writer.
        assert!(matches!(find(&site(dir.path()), "/fifo"), Lookup::NotFound));
    }
}
