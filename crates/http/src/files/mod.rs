//! Finds the file a safe path names: on disk below a document root, or in the built-in demo site.
//!
//! Symlink policy: a relative symlink is followed only while its target stays
//! inside the document root; absolute symlinks are never followed (even ones that
//! point back inside: the kernel resolves them from `/`). Files are opened with
//! `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` relative to the root,
//! so the kernel itself refuses any resolution that would leave it; such a request
//! gets 403. (No crate wraps this better than rustix's `openat2`;
//! tower-http's `ServeDir` follows symlinks anywhere.) The root directory itself is
//! opened at most once per [`ROOT_REFRESH`](beneath::ROOT_REFRESH) per generation
//! ([`RootDir`]), so a deploy that swaps a `current -> release-N` symlink is seen within a
//! second, without a path walk and two extra syscalls on every request.
//!
//! Every request checks its file on disk; nothing is trusted for a period of time. A
//! file's *version* — device, inode, size, mtime and ctime (`cache::Stamp`) — keys two small
//! per-thread caches, so that serving an unchanged file costs one `statx` and no
//! formatting — or, where the path is watched (`watch`: the file and every directory up to
//! the root, by inotify), one `ioctl(FIONREAD)` that finds no change queued:
//! * the file cache: the formatted `ETag` and `Last-Modified` values of a version and, for
//!   [`SizeClass::Small`](crate::size::SizeClass::Small) files, its content;
//! * the path cache: which version a path below a root named when a lookup last opened it
//!   with `openat2`, and for [`SizeClass::Medium`](crate::size::SizeClass::Medium) files
//!   the open descriptor (for `sendfile`). A later request for the path `statx`es it and is
//!   served from these only if it finds exactly that version (`lookup::lookup_known` says
//!   why that keeps the root's wall); anything else goes through `openat2` again.
//!
//! A changed file has a new size or timestamps (with multigrain timestamps, Linux ≥ 6.13,
//! a change after a `stat` always gets a new ctime) and is opened and read again.
//!
//! One job per file, imports in one direction (this file only declares and re-exports):
//! * `lookup` → `beneath`, `cache`, `demo`, `mime`, `resource`, `watch`: the lookup itself;
//! * `beneath` → `cache` (`FileId`): the root's handle, `openat2` and its walking fallback;
//! * `cache`: the two per-thread caches and the file version that keys them;
//! * `watch` → `beneath` (`OpenedRoot`), `cache` (`FileId`, `Stamp`): the inotify watches that let a cached path skip
//!   its `statx` (`watch_tests` tests them);
//! * `demo` → `mime`, `resource`: the built-in demo site;
//! * `dir` → `beneath`: a directory opened below the root, for a listing;
//! * `mime`: `Content-Type` by extension;
//! * `resource`: what a lookup answers;
//! * `sidecar` → `beneath`, `lookup`, `resource`: precompressed `.br`/`.zst`/`.gz` files next
//!   to the one a request resolved to.
//! * `tests`: property tests for both walls (random paths over random trees with symlinks).

mod beneath;
mod cache;
mod demo;
mod dir;
mod lookup;
mod mime;
mod resource;
mod sidecar;
#[cfg(test)]
mod tests;
mod watch;
#[cfg(test)]
mod watch_tests;

pub(crate) use beneath::RootDir;
pub(crate) use dir::open_dir;
pub(crate) use lookup::lookup;
pub(crate) use mime::content_type;
pub(crate) use resource::{Content, Lookup, Resource};
pub(crate) use sidecar::sidecar;
