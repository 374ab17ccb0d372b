//! Opens a path below a document root and nowhere else: the root's handle ([`RootDir`]),
//! `openat2(RESOLVE_BENEATH)`, and the same resolution in user space where the kernel refuses
//! `openat2`.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use graced_config::Root;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::cache::FileId;

/// How long an opened document root is reused before its path is resolved again.
pub(crate) const ROOT_REFRESH: Duration = Duration::from_secs(1);

/// A site's document root directory, opened (`O_PATH`) and reused for [`ROOT_REFRESH`].
pub(crate) struct RootDir {
    /// `None` for the built-in demo site.
    path: Option<PathBuf>,
    opened: ArcSwapOption<OpenedRoot>,
}

/// An opened document root and what identifies the directory.
pub(super) struct OpenedRoot {
    pub(super) fd: OwnedFd,
    at: Instant,
    /// The directory's identity: keys the path cache.
    pub(super) id: FileId,
}

impl RootDir {
    pub(crate) fn new(root: &Root) -> RootDir {
        let path = match root {
            Root::Dir(path) => Some(path.clone()),
            Root::BuiltinDemo => None,
        };
        RootDir { path, opened: ArcSwapOption::empty() }
    }

    /// The root's path; `None` for the built-in demo site.
    pub(super) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The root opened at most [`ROOT_REFRESH`] ago (`path` is [`path`](Self::path)).
    pub(super) fn get(&self, path: &Path) -> rustix::io::Result<Arc<OpenedRoot>> {
        if let Some(opened) = self.opened.load_full()
            && opened.at.elapsed() < ROOT_REFRESH
        {
            return Ok(opened);
        }
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd)?;
        let opened = Arc::new(OpenedRoot {
            fd,
            at: Instant::now(),
            id: FileId { dev: stat.st_dev, ino: stat.st_ino },
        });
        self.opened.store(Some(opened.clone()));
        Ok(opened)
    }
}

/// Opens `relative` below `dir`, refusing anything that resolves outside it.
/// `O_NONBLOCK` keeps a FIFO from blocking the open; it has no effect on regular files.
///
/// Uses `openat2(RESOLVE_BENEATH)` where the kernel allows it. systemd's
/// `RestrictSUIDSGID=` seccomp filter answers `openat2` with ENOSYS (it cannot inspect
/// `struct open_how`), as do kernels before 5.6; then [`open_beneath_by_walking`] does
/// the same resolution in user space.
pub(super) fn open_beneath(dir: impl AsFd, relative: &Path) -> io::Result<OwnedFd> {
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
pub(super) fn open_beneath_by_walking(root: BorrowedFd<'_>, relative: &Path) -> io::Result<OwnedFd> {
    let exdev = || io::Error::from_raw_os_error(libc::EXDEV);
    let mut chain: Vec<OwnedFd> = Vec::new();
    let mut pending: VecDeque<OsString> =
        relative.as_os_str().as_bytes().split(|b| *b == b'/').map(|c| OsStr::from_bytes(c).into()).collect();
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
                pending.push_front(OsStr::from_bytes(part).into());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::symlink;

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
}
