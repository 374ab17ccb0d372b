//! Says when nothing a cached path depends on can have changed, so the path cache serves it
//! without a `statx`: one inotify instance for the process watches each cached file, the
//! directory it is in and every directory above it up to the document root.
//!
//! Without it every request pays a path walk (`statx`, about 1.1 µs here) per file it
//! looks at, two for a precompressed sidecar (the sidecar and its original). With it, a
//! request whose files are watched pays one `ioctl(FIONREAD)` on the inotify descriptor
//! (about 0.27 µs) per file: nothing queued means nothing changed.
//!
//! Why a path known at epoch `E` is exact while the epoch is still `E`:
//! * [`watch`] reads `E` after draining the queue, then places the watches (root, each
//!   directory, then the file by name), then checks — with every watch in place — that
//!   each directory on the path is the one watched and that the path names exactly the
//!   version that was opened. A change before a watch was placed fails that check; a change
//!   after it queues an event (rename, unlink, write, `chmod`, `touch`, a new hard link).
//! * The epoch is bumped before any event is taken off the queue, and every drain — by a
//!   request that found the queue not empty, or by [`watch`] — holds one lock. So while an
//!   event from after `E` exists, either it is still queued (the check sees it and bumps)
//!   or a drain that began after `E` was read has bumped past `E` already.
//!
//! What inotify does not see, and so is not watched: network and FUSE file systems (a
//! change on another machine queues nothing here; only the local file systems in
//! [`LOCAL`] are watched), a path through a symlink, and a mount placed over a directory
//! of the tree. A file written through a shared `mmap` queues nothing until the writer
//! closes it; the path cache's entries expire after a minute, which bounds that case.
//! Anything not watched is checked with `statx`, as before.
//!
//! A path is watched the second time it is asked for (`cache::Watch`), so a crawl of
//! paths asked for once pays nothing for watches. After any event, paths already known are
//! checked with `statx` again until their entry expires and is made again; a tree where
//! something changes all the time (a log written inside it) therefore costs the `statx`
//! as before, plus the `FIONREAD`.
//!
//! Written on rustix's inotify calls (rustix is already a dependency): `notify` delivers
//! events on its own thread, after the fact, which cannot give the ordering above; the
//! `inotify` crate would be a second wrapper of the same three system calls.

use std::collections::HashSet;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};

use super::beneath::OpenedRoot;
use super::cache::{FileId, Stamp};

/// Watches the instance holds at most; past it, every watch is removed and placing starts
/// again (entries made before fall back to `statx` until they are made again).
const MAX_WATCHES: usize = 16_384;

/// What changes what a path names or what it contains. Not `IN_CREATE`: a new name cannot
/// change what an existing one names. Not `IN_ACCESS`, `IN_OPEN`, `IN_CLOSE_NOWRITE`:
/// serving the file would wake the watch itself.
const CHANGES: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);

/// `statfs` types of the local file systems whose every change goes through this kernel:
/// ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS, bcachefs and overlayfs.
const LOCAL: [i64; 8] =
    [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994, 0xF2F5_2010, 0x2FC1_2FC1, 0xCA45_1A4E, 0x794C_7630];

/// Bumped before events are taken off the queue; an entry is trusted while it is unchanged.
static EPOCH: AtomicU64 = AtomicU64::new(0);
static WATCHER: OnceLock<Option<Watcher>> = OnceLock::new();
/// Set when watches cannot be placed at all here (no `/proc`): stop trying.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

struct Watcher {
    fd: OwnedFd,
    /// The watch descriptors in place, held while draining and while placing watches.
    placed: Mutex<HashSet<i32>>,
}

/// Whether nothing watched has changed since `at` (an epoch [`watch`] returned).
pub(super) fn unchanged_since(at: u64) -> bool {
    let Some(Some(watcher)) = WATCHER.get() else { return false };
    if !matches!(rustix::io::ioctl_fionread(&watcher.fd), Ok(0)) {
        watcher.drain(&mut watcher.lock());
    }
    EPOCH.load(Ordering::SeqCst) == at
}

/// Watches what `relative` below `root` depends on and checks it still names `stamp`: the
/// epoch to keep with the entry, or `None` if it is not watched (then `statx` checks it).
pub(super) fn watch(root: &OpenedRoot, relative: &Path, stamp: &Stamp) -> Option<u64> {
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return None;
    }
    let watcher = watcher()?;
    let mut placed = watcher.lock();
    watcher.drain(&mut placed);
    let since = EPOCH.load(Ordering::SeqCst);
    if placed.len() + relative.components().count() + 1 > MAX_WATCHES {
        watcher.remove_all(&mut placed);
        return None;
    }
    match watcher.place(&mut placed, root, relative, stamp) {
        Ok(true) => Some(since),
        Ok(false) => None,
        Err(err) => {
            tracing::debug!(path = %relative.display(), error = %err, "not watched; checked with statx");
            None
        }
    }
}

/// Opens the process's inotify instance if it is not open yet.
pub(super) fn open() {
    watcher();
}

fn watcher() -> Option<&'static Watcher> {
    WATCHER
        .get_or_init(|| match inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK) {
            Ok(fd) => Some(Watcher { fd, placed: Mutex::new(HashSet::new()) }),
            Err(err) => {
                tracing::info!(error = %err, "no inotify instance: every cached file is checked with statx");
                None
            }
        })
        .as_ref()
}

impl Watcher {
    fn lock(&self) -> MutexGuard<'_, HashSet<i32>> {
        self.placed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes every queued event off, bumping the epoch first; forgets removed watches.
    fn drain(&self, placed: &mut HashSet<i32>) {
        if matches!(rustix::io::ioctl_fionread(&self.fd), Ok(0)) {
            return;
        }
        EPOCH.fetch_add(1, Ordering::SeqCst);
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut events = inotify::Reader::new(&self.fd, &mut buf);
        while let Ok(event) = events.next() {
            if event.events().contains(ReadFlags::IGNORED) {
                placed.remove(&event.wd());
            }
        }
    }

    fn remove_all(&self, placed: &mut HashSet<i32>) {
        EPOCH.fetch_add(1, Ordering::SeqCst);
        for wd in placed.drain() {
            let _ = inotify::remove_watch(&self.fd, wd);
        }
    }

    fn add(&self, placed: &mut HashSet<i32>, path: &Path, flags: WatchFlags) -> io::Result<()> {
        placed.insert(inotify::add_watch(&self.fd, path, CHANGES | flags)?);
        Ok(())
    }

    /// Places the watches for `relative` below `root`, then checks what they watch is what
    /// the path names (`Ok(false)` if not, or if the tree is not on a local file system).
    fn place(
        &self,
        placed: &mut HashSet<i32>,
        root: &OpenedRoot,
        relative: &Path,
        stamp: &Stamp,
    ) -> io::Result<bool> {
        let mut names = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => names.push(name),
                _ => return Ok(false),
            }
        }
        let Some(file_name) = names.pop() else { return Ok(false) };
        if !local(root.fd.as_fd())? {
            return Ok(false);
        }
        if let Err(err) = self.add(placed, &magic(root.fd.as_fd()), WatchFlags::empty()) {
            if err.kind() == io::ErrorKind::NotFound {
                tracing::info!("no /proc/self/fd: every cached file is checked with statx");
                UNAVAILABLE.store(true, Ordering::Relaxed);
            }
            return Err(err);
        }
        // Each directory on the way, opened without following a symlink, with its identity.
        let mut dirs: Vec<(OwnedFd, FileId)> = Vec::with_capacity(names.len());
        for name in &names {
            let parent = dirs.last().map_or(root.fd.as_fd(), |(dir, _)| dir.as_fd());
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let dir = rustix::fs::openat(parent, *name, flags, Mode::empty())?;
            if !local(dir.as_fd())? {
                return Ok(false);
            }
            self.add(placed, &magic(dir.as_fd()), WatchFlags::empty())?;
            let id = id_of(dir.as_fd())?;
            dirs.push((dir, id));
        }
        let (parent, parent_id) =
            dirs.last().map_or((root.fd.as_fd(), root.id), |(dir, id)| (dir.as_fd(), *id));
        self.add(placed, &magic(parent).join(file_name), WatchFlags::DONT_FOLLOW)?;
        // Every watch is in place: the path must go through exactly the directories watched
        // to exactly the version opened, on the same file system as its directory.
        let mut prefix = PathBuf::new();
        for (name, (_, id)) in names.iter().zip(&dirs) {
            prefix.push(name);
            if id_at(root.fd.as_fd(), &prefix)? != *id {
                return Ok(false);
            }
        }
        let seen = Stamp::of_statx(&rustix::fs::statx(
            &root.fd,
            relative,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
        )?);
        Ok(seen == *stamp && seen.file.dev == parent_id.dev)
    }
}

/// The `/proc` path that names the file `fd` is open on.
fn magic(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn local(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // `f_type` is an i64 here and a u32 or i32 on other architectures.
    #[allow(clippy::useless_conversion)]
    let kind = i64::from(rustix::fs::fstatfs(fd)?.f_type);
    Ok(LOCAL.contains(&kind))
}

fn id_of(fd: BorrowedFd<'_>) -> io::Result<FileId> {
    let stat = rustix::fs::fstat(fd)?;
    Ok(FileId { dev: stat.st_dev, ino: stat.st_ino })
}

fn id_at(root: BorrowedFd<'_>, path: &Path) -> io::Result<FileId> {
    let stat = rustix::fs::statx(root, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::INO)?;
    Ok(FileId { dev: libc::makedev(stat.stx_dev_major, stat.stx_dev_minor), ino: stat.stx_ino })
}
