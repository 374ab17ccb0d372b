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
//!
//! Every request checks its file on disk; nothing is trusted for a period of time. A
//! file's *version* — device, inode, size, mtime and ctime ([`Stamp`]) — keys two small
//! per-thread caches, so that serving an unchanged file costs one `statx` and no
//! formatting:
//! * [`FileCache`]: the formatted `ETag` and `Last-Modified` values of a version and, for
//!   files up to [`CACHE_FILE_LIMIT`], its content;
//! * [`PathCache`]: which version a path below a root named when a lookup last opened it
//!   with `openat2`, and for files up to `body::INLINE_LIMIT` that are not kept in memory,
//!   the open descriptor (for `sendfile`). A later request for the path `statx`es it and
//!   is served from these only if it finds exactly that version ([`lookup_known`] says why
//!   that keeps the root's wall); anything else goes through `openat2` again.
//!
//! A changed file has a new size or timestamps (with multigrain timestamps, Linux ≥ 6.13,
//! a change after a `stat` always gets a new ctime) and is opened and read again.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::HeaderValue;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxFlags};

use super::path::SafePath;
use graced_config::{Root, Site};

/// A file ready to be served.
#[derive(Debug)]
pub struct Resource {
    pub len: u64,
    pub modified: Option<SystemTime>,
    /// A strong entity tag, quoted.
    pub etag: HeaderValue,
    /// `modified` formatted, when it is not in the future (then it is formatted per response).
    pub last_modified: Option<HeaderValue>,
    pub content_type: &'static str,
    pub content: Content,
}

impl Resource {
    pub fn etag_str(&self) -> &str {
        self.etag.to_str().unwrap_or("")
    }
}

/// Where a resource's bytes come from.
#[derive(Debug)]
pub enum Content {
    File(File),
    /// A file of at most `body::INLINE_LIMIT` bytes kept open by the path cache.
    Open(Arc<File>),
    /// The whole file, read when its current version was first served.
    Cached(Bytes),
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
    opened: ArcSwapOption<OpenedRoot>,
}

/// An opened document root and what identifies the directory.
struct OpenedRoot {
    fd: OwnedFd,
    at: Instant,
    /// (device, inode) of the directory: keys [`PathCache`].
    id: (u64, u64),
}

impl RootDir {
    pub fn new(root: &Root) -> RootDir {
        let path = match root {
            Root::Dir(path) => Some(path.clone()),
            Root::BuiltinDemo => None,
        };
        RootDir { path, opened: ArcSwapOption::empty() }
    }

    fn get(&self, path: &Path) -> rustix::io::Result<Arc<OpenedRoot>> {
        if let Some(opened) = self.opened.load_full()
            && opened.at.elapsed() < ROOT_REFRESH
        {
            return Ok(opened);
        }
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd)?;
        let opened = Arc::new(OpenedRoot { fd, at: Instant::now(), id: (stat.st_dev, stat.st_ino) });
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
            Content::File(file) if resource.len <= super::body::INLINE_LIMIT => Some(Arc::new(file)),
            other => {
                resource.content = other;
                None
            }
        };
        let known = match &open {
            Some(file) => {
                Some(Known { stamp: Stamp::of(&meta), file: Some(file.clone()), at: Instant::now() })
            }
            None if matches!(resource.content, Content::Cached(_)) => {
                Some(Known { stamp: Stamp::of(&meta), file: None, at: Instant::now() })
            }
            None => None,
        };
        if let Some(file) = open {
            resource.content = Content::Open(file);
        }
        if let Some(known) = known {
            let relative = path.relative.as_os_str().as_encoded_bytes();
            PATH_CACHE.with(|cache| cache.borrow_mut().insert(root_fd.id, relative, known));
        }
    }
    Lookup::Found(resource)
}

/// A file of at most `body::INLINE_LIMIT` bytes this thread served under the same root and
/// path, if a `statx` of the path finds exactly that file version again: then it is
/// served from memory (up to [`CACHE_FILE_LIMIT`]) or from the descriptor kept open, with
/// its cached validators, without opening it again.
///
/// Why this keeps the root's wall: the entry was made by a lookup that opened the file
/// with `openat2(RESOLVE_BENEATH)`. `statx` resolves the path without that restriction,
/// but the answer is used only if it is the same inode (device and inode number) with
/// the same size, mtime and ctime. Renaming or linking a file changes its ctime, so a
/// file moved out of the root, or linked to from outside it, no longer matches and goes
/// through `openat2` again; what can match is the very file that was served from inside
/// the root, unchanged — its content is what this lookup would return anyway.
fn lookup_known(root: &OpenedRoot, path: &SafePath) -> Option<Resource> {
    let relative = path.relative.as_os_str().as_encoded_bytes();
    let known = PATH_CACHE.with(|cache| cache.borrow().get(root.id, relative))?;
    let stat = rustix::fs::statx(&root.fd, &path.relative, AtFlags::empty(), StatxFlags::BASIC_STATS);
    let same = stat.is_ok_and(|stat| {
        known.stamp
            == Stamp {
                dev: libc::makedev(stat.stx_dev_major, stat.stx_dev_minor),
                ino: stat.stx_ino,
                len: stat.stx_size,
                mtime: (stat.stx_mtime.tv_sec, i64::from(stat.stx_mtime.tv_nsec)),
                ctime: (stat.stx_ctime.tv_sec, i64::from(stat.stx_ctime.tv_nsec)),
            }
    });
    let entry = same.then(|| FILE_CACHE.with(|cache| cache.borrow().peek(&known.stamp))).flatten();
    let found = entry.and_then(|entry| match (&entry.content, known.file) {
        (Some(bytes), _) => Some((Content::Cached(bytes.clone()), entry)),
        (None, Some(file)) => Some((Content::Open(file), entry)),
        (None, None) => None,
    });
    let Some((content, entry)) = found else {
        // Changed, gone or forgotten: let go of the entry (and any descriptor it keeps).
        PATH_CACHE.with(|cache| cache.borrow_mut().remove(root.id, relative));
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
            // Give back the descriptors this thread keeps open for the next request.
            PATH_CACHE.with(|cache| cache.borrow_mut().clear());
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
    let entry = FILE_CACHE.with(|cache| cache.borrow_mut().get(&stamp, meta, &file));
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

/// Files up to this size have their content kept in [`FileCache`]; larger ones up to
/// `body::INLINE_LIMIT` are sent with `sendfile`.
pub const CACHE_FILE_LIMIT: u64 = super::body::SENDFILE_MIN;
/// Bytes of content one thread's cache holds at most.
const CACHE_BYTES: usize = 4 << 20;
/// Files one thread's cache knows at most.
const CACHE_ENTRIES: usize = 1024;

/// Paths one thread's [`PathCache`] knows at most.
const PATH_ENTRIES: usize = 1024;
/// Descriptors one thread's [`PathCache`] keeps open at most.
const PATH_OPEN_FILES: usize = 64;
/// How long a path entry is trusted before the file is opened again (so a descriptor of
/// a file deleted and never asked for again is not kept for long).
const PATH_MAX_AGE: Duration = Duration::from_secs(60);

thread_local! {
    static FILE_CACHE: RefCell<FileCache> = RefCell::new(FileCache::default());
    static PATH_CACHE: RefCell<PathCache> = RefCell::new(PathCache::default());
}

/// Which file version a path below a root named when a lookup last opened it, for files
/// of at most `body::INLINE_LIMIT` bytes: see [`lookup_known`]. Bounded in entries and
/// open descriptors (emptied when either is full), and entries expire.
#[derive(Default)]
struct PathCache {
    roots: ByInode<HashMap<Box<[u8]>, Known>>,
    len: usize,
    open_files: usize,
}

/// What a path named: the file version, and the open file if its content is not cached.
#[derive(Clone)]
struct Known {
    stamp: Stamp,
    file: Option<Arc<File>>,
    at: Instant,
}

impl PathCache {
    fn get(&self, root: (u64, u64), relative: &[u8]) -> Option<Known> {
        self.roots.get(&root)?.get(relative).filter(|k| k.at.elapsed() < PATH_MAX_AGE).cloned()
    }

    fn insert(&mut self, root: (u64, u64), relative: &[u8], known: Known) {
        if self.len >= PATH_ENTRIES || (known.file.is_some() && self.open_files >= PATH_OPEN_FILES) {
            self.clear();
        }
        self.open_files += usize::from(known.file.is_some());
        match self.roots.entry(root).or_default().insert(relative.into(), known) {
            Some(old) => self.open_files -= usize::from(old.file.is_some()),
            None => self.len += 1,
        }
    }

    fn remove(&mut self, root: (u64, u64), relative: &[u8]) {
        if let Some(old) = self.roots.get_mut(&root).and_then(|paths| paths.remove(relative)) {
            self.len -= 1;
            self.open_files -= usize::from(old.file.is_some());
        }
    }

    fn clear(&mut self) {
        self.roots.clear();
        self.len = 0;
        self.open_files = 0;
    }
}

/// What identifies one version of a file: if any of it changes, the file is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The formatted validators of one file version, and its content when small.
#[derive(Clone)]
struct CacheEntry {
    stamp: Stamp,
    modified: Option<SystemTime>,
    etag: HeaderValue,
    last_modified: Option<HeaderValue>,
    content: Option<Bytes>,
}

/// A bounded per-thread cache of [`CacheEntry`] by (device, inode); the oldest entries
/// go first. Per thread, so serving never takes a lock.
#[derive(Default)]
struct FileCache {
    entries: ByInode<CacheEntry>,
    order: VecDeque<(u64, u64)>,
    bytes: usize,
}

impl FileCache {
    /// The entry for the file version `stamp` (opened as `file`), made if needed; it has
    /// the content if the file is small enough to keep.
    fn get(&mut self, stamp: &Stamp, meta: &std::fs::Metadata, file: &File) -> CacheEntry {
        let key = (stamp.dev, stamp.ino);
        if let Some(entry) = self.entries.get(&key)
            && entry.stamp == *stamp
        {
            return entry.clone();
        }
        let entry = CacheEntry::new(stamp, meta, file);
        self.insert(key, entry.clone());
        entry
    }

    /// The entry for exactly the file version `stamp`, if known.
    fn peek(&self, stamp: &Stamp) -> Option<CacheEntry> {
        self.entries.get(&(stamp.dev, stamp.ino)).filter(|e| e.stamp == *stamp).cloned()
    }

    fn insert(&mut self, key: (u64, u64), entry: CacheEntry) {
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.content.as_ref().map_or(0, Bytes::len);
            self.order.retain(|k| *k != key);
        }
        let size = entry.content.as_ref().map_or(0, Bytes::len);
        while !self.order.is_empty() && (self.bytes + size > CACHE_BYTES || self.order.len() >= CACHE_ENTRIES)
        {
            let oldest = self.order.pop_front().expect("not empty");
            if let Some(old) = self.entries.remove(&oldest) {
                self.bytes -= old.content.as_ref().map_or(0, Bytes::len);
            }
        }
        self.bytes += size;
        self.order.push_back(key);
        self.entries.insert(key, entry);
    }
}

/// A map by (device, inode).
type ByInode<V> = HashMap<(u64, u64), V, BuildHasherDefault<InodeHasher>>;

/// Hashes the caches' (device, inode) keys: they come from the file system, not from
/// requests, so a plain multiplicative hash is enough.
#[derive(Default)]
struct InodeHasher(u64);

impl Hasher for InodeHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl CacheEntry {
    fn new(stamp: &Stamp, meta: &std::fs::Metadata, file: &File) -> CacheEntry {
        let modified = meta.modified().ok();
        let nanos = stamp.mtime.0 as i128 * 1_000_000_000 + stamp.mtime.1 as i128;
        let etag = format!("\"{:x}-{:x}-{:x}\"", stamp.ino, stamp.len, nanos);
        // Never claim a modification time in the future (RFC 9110 §8.8.2.1): such a time
        // is formatted per response instead, clamped to that moment.
        let last_modified = modified.filter(|m| *m <= SystemTime::now()).map(|m| {
            HeaderValue::try_from(httpdate::fmt_http_date(m)).expect("an HTTP date is a valid header")
        });
        CacheEntry {
            stamp: *stamp,
            modified,
            etag: HeaderValue::try_from(etag).expect("hex digits and quotes are a valid header"),
            last_modified,
            content: read_small(file, stamp),
        }
    }
}

/// The whole content of a file of at most [`CACHE_FILE_LIMIT`] bytes, if it still is the
/// version `stamp` once read (else the file is served from the open file, as a big one).
fn read_small(file: &File, stamp: &Stamp) -> Option<Bytes> {
    use std::os::unix::fs::FileExt;
    if stamp.len > CACHE_FILE_LIMIT {
        return None;
    }
    let mut buf = vec![0; stamp.len as usize];
    file.read_exact_at(&mut buf, 0).ok()?;
    let after = file.metadata().ok()?;
    (Stamp::of(&after) == *stamp).then(|| Bytes::from(buf))
}

/// The Content-Type for a file name, by extension; text gets `charset=utf-8`.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let mut lower = [0u8; 16];
    let ext = if ext.bytes().any(|b| b.is_ascii_uppercase()) && ext.len() <= lower.len() {
        lower[..ext.len()].copy_from_slice(ext.as_bytes());
        lower[..ext.len()].make_ascii_lowercase();
        std::str::from_utf8(&lower[..ext.len()]).unwrap_or("")
    } else if ext.len() > lower.len() {
        // Longer than any extension matched below; mime_guess ignores case itself.
        return mime_guess::from_ext(ext).first_raw().unwrap_or("application/octet-stream");
    } else {
        ext
    };
    match ext {
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
        _ => mime_guess::from_ext(ext).first_raw().unwrap_or("application/octet-stream"),
    }
}

/// The demo site compiled into the binary.
const DEMO: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("../../../demo/index.html")),
    ("style.css", include_bytes!("../../../demo/style.css")),
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
        etag: HeaderValue::try_from(format!("\"builtin-{:x}\"", fnv1a(bytes))).expect("a valid header"),
        last_modified: None,
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
    use crate::path::resolve;
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

    fn content(lookup: Lookup) -> Vec<u8> {
        match lookup {
            Lookup::Found(Resource { content: Content::Cached(bytes), .. }) => bytes.to_vec(),
            Lookup::Found(Resource { content: Content::File(file), .. }) => {
                std::io::read_to_string(file).unwrap().into_bytes()
            }
            Lookup::Found(Resource { content: Content::Open(file), len, .. }) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0; len as usize];
                file.read_exact_at(&mut buf, 0).unwrap();
                buf
            }
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
    fn content_types_ignore_the_extension_case() {
        assert_eq!(content_type("a.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("a.Css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a.png"), "image/png");
        assert_eq!(content_type("a.PNG"), "image/png");
        assert_eq!(content_type("noextension"), "application/octet-stream");
        assert_eq!(content_type("a.averyveryverylongextension"), "application/octet-stream");
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
