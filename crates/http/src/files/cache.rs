//! The two per-thread caches keyed by a file's version ([`Stamp`]): formatted validators and
//! small contents ([`FileCache`]), and which version a path named ([`PathCache`]).
//!
//! Per thread, so serving never takes a lock. Both are bounded; what they hold is used only
//! for exactly the file version it was made from (see `lookup::lookup_known`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use rustc_hash::FxBuildHasher;

use crate::size::SizeClass;

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

/// What identifies a file on this machine: its device and inode numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// A map by [`FileId`]. The keys come from the file system, not from requests, so
/// rustc-hash's fast, unkeyed hash fits (no flooding to defend against); the per-root maps of
/// request paths below keep std's keyed SipHash.
type ByFile<V> = HashMap<FileId, V, FxBuildHasher>;

/// A file timestamp, as `statx` and `stat` give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timestamp {
    pub(super) sec: i64,
    pub(super) nsec: i64,
}

impl Timestamp {
    fn nanos(self) -> i128 {
        i128::from(self.sec) * 1_000_000_000 + i128::from(self.nsec)
    }
}

/// What identifies one version of a file: if any of it changes, the file is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) file: FileId,
    pub(super) len: u64,
    pub(super) mtime: Timestamp,
    pub(super) ctime: Timestamp,
}

impl Stamp {
    pub(super) fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            file: FileId { dev: meta.dev(), ino: meta.ino() },
            len: meta.len(),
            mtime: Timestamp { sec: meta.mtime(), nsec: meta.mtime_nsec() },
            ctime: Timestamp { sec: meta.ctime(), nsec: meta.ctime_nsec() },
        }
    }

    pub(super) fn of_statx(stat: &rustix::fs::Statx) -> Stamp {
        Stamp {
            file: FileId { dev: libc::makedev(stat.stx_dev_major, stat.stx_dev_minor), ino: stat.stx_ino },
            len: stat.stx_size,
            mtime: Timestamp { sec: stat.stx_mtime.tv_sec, nsec: i64::from(stat.stx_mtime.tv_nsec) },
            ctime: Timestamp { sec: stat.stx_ctime.tv_sec, nsec: i64::from(stat.stx_ctime.tv_nsec) },
        }
    }
}

/// The formatted validators of one file version, and its content when small.
#[derive(Clone)]
pub(super) struct CacheEntry {
    stamp: Stamp,
    pub(super) modified: Option<SystemTime>,
    pub(super) etag: HeaderValue,
    pub(super) last_modified: Option<HeaderValue>,
    /// The whole content, for a [`SizeClass::Small`] file.
    pub(super) content: Option<Bytes>,
}

impl CacheEntry {
    fn new(stamp: &Stamp, meta: &std::fs::Metadata, file: &File) -> CacheEntry {
        let modified = meta.modified().ok();
        let etag = format!("\"{:x}-{:x}-{:x}\"", stamp.file.ino, stamp.len, stamp.mtime.nanos());
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

/// The whole content of a [`SizeClass::Small`] file, if it still is the version `stamp`
/// once read (else the file is served from the open file, as a bigger one).
fn read_small(file: &File, stamp: &Stamp) -> Option<Bytes> {
    use std::os::unix::fs::FileExt;
    if SizeClass::of(stamp.len) != SizeClass::Small {
        return None;
    }
    let mut buf = vec![0; stamp.len as usize];
    file.read_exact_at(&mut buf, 0).ok()?;
    let after = file.metadata().ok()?;
    (Stamp::of(&after) == *stamp).then(|| Bytes::from(buf))
}

/// The entry for the file version `stamp` (opened as `file`), made if needed: it has the
/// content if the file is small enough to keep.
pub(super) fn entry(stamp: &Stamp, meta: &std::fs::Metadata, file: &File) -> CacheEntry {
    FILE_CACHE.with(|cache| cache.borrow_mut().get(stamp, meta, file))
}

/// The entry for exactly the file version `stamp`, if this thread has it.
pub(super) fn peek(stamp: &Stamp) -> Option<CacheEntry> {
    FILE_CACHE.with(|cache| cache.borrow().peek(stamp))
}

/// A bounded per-thread cache of [`CacheEntry`] by file; the oldest entries go first.
#[derive(Default)]
struct FileCache {
    entries: ByFile<CacheEntry>,
    order: VecDeque<FileId>,
    bytes: usize,
}

impl FileCache {
    fn get(&mut self, stamp: &Stamp, meta: &std::fs::Metadata, file: &File) -> CacheEntry {
        if let Some(entry) = self.entries.get(&stamp.file)
            && entry.stamp == *stamp
        {
            return entry.clone();
        }
        let entry = CacheEntry::new(stamp, meta, file);
        self.insert(stamp.file, entry.clone());
        entry
    }

    fn peek(&self, stamp: &Stamp) -> Option<CacheEntry> {
        self.entries.get(&stamp.file).filter(|e| e.stamp == *stamp).cloned()
    }

    fn insert(&mut self, key: FileId, entry: CacheEntry) {
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

/// What a path named: the file version, and the open file if its content is not cached.
#[derive(Clone)]
pub(super) struct Known {
    pub(super) stamp: Stamp,
    pub(super) file: Option<Arc<File>>,
    pub(super) watch: Watch,
    at: Instant,
}

/// Whether a [`Known`] path is watched (`watch::watch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Watch {
    /// Not yet: a path is watched when it is asked for again, so a path asked for once
    /// (a crawl) never pays for placing watches.
    Untried,
    /// From this epoch on, nothing the path depends on can have changed unseen.
    Since(u64),
    /// It cannot be (a symlink on the way, not a local file system, no inotify).
    Not,
}

impl Known {
    /// The path named the version `stamp`; `file` is kept open if its content is not cached.
    pub(super) fn new(stamp: Stamp, file: Option<Arc<File>>) -> Known {
        Known { stamp, file, watch: Watch::Untried, at: Instant::now() }
    }
}

/// What the path `relative` below the root `root` named when this thread last opened it,
/// unless that is older than [`PATH_MAX_AGE`].
pub(super) fn known(root: FileId, relative: &[u8]) -> Option<Known> {
    PATH_CACHE.with(|cache| cache.borrow().get(root, relative))
}

/// Remembers what the path `relative` below `root` names.
pub(super) fn remember(root: FileId, relative: &[u8], known: Known) {
    PATH_CACHE.with(|cache| cache.borrow_mut().insert(root, relative, known));
}

/// Records whether the path `relative` below `root` is now watched.
pub(super) fn set_watch(root: FileId, relative: &[u8], watch: Watch) {
    PATH_CACHE.with(|cache| {
        if let Some(known) = cache.borrow_mut().roots.get_mut(&root).and_then(|paths| paths.get_mut(relative))
        {
            known.watch = watch;
        }
    });
}

/// Forgets the path `relative` below `root` (and closes any descriptor it kept).
pub(super) fn forget(root: FileId, relative: &[u8]) {
    PATH_CACHE.with(|cache| cache.borrow_mut().remove(root, relative));
}

/// Forgets every path this thread knows, closing the descriptors kept for them.
pub(super) fn forget_all_paths() {
    PATH_CACHE.with(|cache| cache.borrow_mut().clear());
}

/// Which file version a path below a root named when a lookup last opened it, for files
/// that are not [`SizeClass::Large`]. Bounded in entries and open descriptors (emptied when
/// either is full), and entries expire.
#[derive(Default)]
struct PathCache {
    /// Request paths are chosen by clients: std's keyed hasher for them.
    roots: ByFile<HashMap<Box<[u8]>, Known>>,
    len: usize,
    open_files: usize,
}

impl PathCache {
    fn get(&self, root: FileId, relative: &[u8]) -> Option<Known> {
        self.roots.get(&root)?.get(relative).filter(|k| k.at.elapsed() < PATH_MAX_AGE).cloned()
    }

    fn insert(&mut self, root: FileId, relative: &[u8], known: Known) {
        if self.len >= PATH_ENTRIES || (known.file.is_some() && self.open_files >= PATH_OPEN_FILES) {
            self.clear();
        }
        self.open_files += usize::from(known.file.is_some());
        match self.roots.entry(root).or_default().insert(relative.into(), known) {
            Some(old) => self.open_files -= usize::from(old.file.is_some()),
            None => self.len += 1,
        }
    }

    fn remove(&mut self, root: FileId, relative: &[u8]) {
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
