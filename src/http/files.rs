//! Finds the file a safe path names: on disk below a document root, or in the built-in demo site.
//!
//! Symlink policy: a relative symlink is followed only while its target stays
//! inside the document root; absolute symlinks are never followed (even ones that
//! point back inside: the kernel resolves them from `/`). Files are opened with
//! `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` relative to the root,
//! so the kernel itself refuses any resolution that would leave it; such a request
//! gets 403. (No crate wraps this better than rustix's `openat2`;
//! tower-http's `ServeDir` follows symlinks anywhere.) The root directory itself is
//! opened at most once per [`ROOT_REFRESH`] per generation ([`RootDir`]), so a deploy
//! that swaps a `current -> release-N` symlink is seen within a second, without a
//! path walk and two extra syscalls on every request.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::path::SafePath;
use crate::config::{Root, Site};

/// A file ready to be served.
#[derive(Debug)]
pub struct Resource {
    pub len: u64,
    pub modified: Option<SystemTime>,
    /// A strong entity tag, quoted.
    pub etag: String,
    pub content_type: &'static str,
    pub content: Content,
}

/// Where a resource's bytes come from.
#[derive(Debug)]
pub enum Content {
    File(File),
    Static(&'static [u8]),
}

/// The result of looking a path up in a site.
#[derive(Debug)]
pub enum Lookup {
    Found(Resource),
    /// A directory named without a trailing slash: redirect to add it.
    AddSlash,
    NotFound,
    /// Outside the root (a symlink leading out), unreadable, or a directory without index.
    Forbidden,
    /// The server is out of file descriptors or memory: try again later (503, never a
    /// cacheable 404).
    Unavailable,
    /// Any other failure to open or inspect the file (500).
    Failed,
}

/// How long an opened document root is reused before its path is resolved again.
pub const ROOT_REFRESH: Duration = Duration::from_secs(1);

/// A site's document root directory, opened (`O_PATH`) and reused for [`ROOT_REFRESH`].
pub struct RootDir {
    path: Option<PathBuf>,
    opened: ArcSwapOption<(OwnedFd, Instant)>,
}

impl RootDir {
    pub fn new(root: &Root) -> RootDir {
        let path = match root {
            Root::Dir(path) => Some(path.clone()),
            Root::BuiltinDemo => None,
        };
        RootDir { path, opened: ArcSwapOption::empty() }
    }

    fn get(&self, path: &Path) -> rustix::io::Result<Arc<(OwnedFd, Instant)>> {
        if let Some(opened) = self.opened.load_full()
            && opened.1.elapsed() < ROOT_REFRESH
        {
            return Ok(opened);
        }
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let opened = Arc::new((fd, Instant::now()));
        self.opened.store(Some(opened.clone()));
        Ok(opened)
    }
}

/// Looks `path` up in `site`, whose root is `root`.
pub fn lookup(site: &Site, root: &RootDir, path: &SafePath) -> Lookup {
    match &root.path {
        Some(dir) => lookup_dir(dir, root, site, path),
        None => lookup_builtin(site, path),
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
    let fd = match open_beneath(&root_fd.0, path.as_relative()) {
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
    Lookup::Found(resource(file, &meta, name))
}

/// Opens `relative` below `dir`, refusing anything that resolves outside it.
/// `O_NONBLOCK` keeps a FIFO from blocking the open; it has no effect on regular files.
///
/// Uses `openat2(RESOLVE_BENEATH)` where the kernel allows it. systemd's
/// `RestrictSUIDSGID=` seccomp filter answers `openat2` with ENOSYS (it cannot inspect
/// `struct open_how`), as do kernels before 5.6; then [`open_beneath_by_walking`] does
/// the same resolution in user space.
fn open_beneath(dir: impl AsFd, relative: &Path) -> io::Result<OwnedFd> {
    static OPENAT2_UNAVAILABLE: AtomicBool = AtomicBool::new(false);
    if !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed) {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&dir, relative, READ_FLAGS, Mode::empty(), resolve) {
            Err(rustix::io::Errno::NOSYS) => {
                tracing::info!(
                    "openat2 is not available (seccomp or an old kernel); resolving paths by walking"
                );
                OPENAT2_UNAVAILABLE.store(true, Ordering::Relaxed);
            }
            result => return Ok(result?),
        }
    }
    open_beneath_by_walking(dir.as_fd(), relative)
}

const READ_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::CLOEXEC).union(OFlags::NONBLOCK).union(OFlags::NOCTTY);

/// `openat2(RESOLVE_BENEATH)` in user space: one component at a time with `O_NOFOLLOW`,
/// keeping the chain of directories from `root`, so `..` can never climb above it.
/// Relative symlinks are expanded in place (at most 40, like the kernel); absolute ones
/// are refused, as `RESOLVE_BENEATH` refuses them. The final open also uses
/// `O_NOFOLLOW`, so a component swapped for a symlink after it was inspected fails
/// (ELOOP → 403) instead of being followed.
fn open_beneath_by_walking(root: BorrowedFd<'_>, relative: &Path) -> io::Result<OwnedFd> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStrExt;
    let exdev = || io::Error::from_raw_os_error(libc::EXDEV);
    let mut chain: Vec<OwnedFd> = Vec::new();
    let mut pending: VecDeque<OsString> = relative
        .as_os_str()
        .as_bytes()
        .split(|b| *b == b'/')
        .map(|c| std::ffi::OsStr::from_bytes(c).into())
        .collect();
    let mut links = 0;
    while let Some(component) = pending.pop_front() {
        let current = chain.last().map_or(root, |fd| fd.as_fd());
        match component.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                chain.pop().ok_or_else(exdev)?;
                continue;
            }
            _ => {}
        }
        let fd = rustix::fs::openat(
            current,
            &component,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let file_type = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode);
        if file_type == rustix::fs::FileType::Symlink {
            links += 1;
            if links > 40 {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = rustix::fs::readlinkat(current, &component, Vec::new())?;
            if target.as_bytes().first() == Some(&b'/') {
                return Err(exdev());
            }
            for part in target.as_bytes().split(|b| *b == b'/').rev() {
                pending.push_front(std::ffi::OsStr::from_bytes(part).into());
            }
            continue;
        }
        if pending.iter().all(|c| c.is_empty() || c == ".") {
            return Ok(rustix::fs::openat(
                current,
                &component,
                READ_FLAGS | OFlags::NOFOLLOW,
                Mode::empty(),
            )?);
        }
        if file_type != rustix::fs::FileType::Directory {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        chain.push(fd);
    }
    // Nothing left but the directory reached (or the root itself).
    let current = chain.last().map_or(root, |fd| fd.as_fd());
    Ok(rustix::fs::openat(current, ".", READ_FLAGS, Mode::empty())?)
}

fn error_lookup(err: io::Error) -> Lookup {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => Lookup::NotFound,
        // EXDEV: resolution would leave the root; ELOOP: too many or forbidden links.
        Some(libc::EXDEV | libc::ELOOP | libc::EACCES | libc::EPERM) => Lookup::Forbidden,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => {
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
    use std::os::unix::fs::MetadataExt;
    let modified = meta.modified().ok();
    let nanos = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    Resource {
        len: meta.len(),
        modified,
        etag: format!("\"{:x}-{:x}-{:x}\"", meta.ino(), meta.len(), nanos),
        content_type: content_type(name),
        content: Content::File(file),
    }
}

/// The Content-Type for a file name, by extension; text gets `charset=utf-8`.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "xml" => "application/xml",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "wasm" => "application/wasm",
        _ => mime_guess::from_ext(&ext).first_raw().unwrap_or("application/octet-stream"),
    }
}

/// The demo site compiled into the binary.
const DEMO: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("../../demo/index.html")),
    ("style.css", include_bytes!("../../demo/style.css")),
];

fn lookup_builtin(site: &Site, path: &SafePath) -> Lookup {
    let relative = path.relative.to_str().unwrap_or("");
    if relative.is_empty() {
        if !path.trailing_slash {
            return Lookup::AddSlash;
        }
        return site.index.iter().find_map(|index| builtin(index)).map_or(Lookup::Forbidden, Lookup::Found);
    }
    match builtin(relative) {
        Some(resource) if !path.trailing_slash => Lookup::Found(resource),
        _ => Lookup::NotFound,
    }
}

fn builtin(name: &str) -> Option<Resource> {
    let (name, bytes) = DEMO.iter().find(|(n, _)| *n == name)?;
    Some(Resource {
        len: bytes.len() as u64,
        modified: None,
        etag: format!("\"builtin-{:x}\"", fnv1a(bytes)),
        content_type: content_type(name),
        content: Content::Static(bytes),
    })
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::path::resolve;
    use std::os::unix::fs::symlink;

    fn site(root: &Path) -> Site {
        Site {
            hosts: vec![],
            root: Root::Dir(root.to_owned()),
            index: vec!["index.html".into()],
            hidden_files: false,
            is_default: true,
        }
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

    #[test]
    fn the_walking_fallback_resolves_like_openat2_beneath() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f.txt"), "x").unwrap();
        std::fs::write(dir.path().join("top.txt"), "t").unwrap();
        symlink("a/b/f.txt", dir.path().join("rel")).unwrap();
        symlink("../../top.txt", dir.path().join("a/b/up2")).unwrap();
        symlink("../../../", dir.path().join("a/b/out")).unwrap();
        symlink("/etc", dir.path().join("abs")).unwrap();
        symlink("loop", dir.path().join("loop")).unwrap();
        let root = File::open(dir.path()).unwrap();
        let walk = |p: &str| open_beneath_by_walking(root.as_fd(), Path::new(p)).map(File::from);
        let read = |p: &str| std::io::read_to_string(walk(p).unwrap()).unwrap();
        let errno = |p: &str| walk(p).unwrap_err().raw_os_error();
        assert_eq!(read("a/b/f.txt"), "x");
        assert_eq!(read("rel"), "x");
        assert_eq!(read("a/b/up2"), "t");
        assert!(walk("a/b").unwrap().metadata().unwrap().is_dir());
        assert!(walk(".").unwrap().metadata().unwrap().is_dir());
        assert_eq!(errno("a/b/out/etc/passwd"), Some(libc::EXDEV));
        assert_eq!(errno("abs/passwd"), Some(libc::EXDEV));
        assert_eq!(errno("loop"), Some(libc::ELOOP));
        assert_eq!(errno("missing"), Some(libc::ENOENT));
        assert_eq!(errno("top.txt/x"), Some(libc::ENOTDIR));
        // The kernel's answers for the same paths agree.
        for p in ["a/b/f.txt", "rel", "a/b/up2"] {
            assert!(open_beneath(&root, Path::new(p)).is_ok(), "{p}");
        }
        for p in ["a/b/out/etc/passwd", "abs/passwd"] {
            assert_eq!(
                open_beneath(&root, Path::new(p)).unwrap_err().raw_os_error(),
                Some(libc::EXDEV),
                "{p}"
            );
        }
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

    #[test]
    fn the_builtin_demo_has_an_index() {
        let demo = Site { root: Root::BuiltinDemo, ..site(Path::new("/")) };
        assert!(matches!(find(&demo, "/"), Lookup::Found(r) if r.len > 100));
        assert!(matches!(find(&demo, "/style.css"), Lookup::Found(_)));
        assert!(matches!(find(&demo, "/nope"), Lookup::NotFound));
        assert!(matches!(find(&demo, "/style.css/"), Lookup::NotFound));
    }
}
