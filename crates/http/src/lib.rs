//! The static-file HTTP server: knows listeners, generations and limits — nothing of systemd or signals.
//!
//! * `server`: accept loops, the current generation, abort / drain controls.
//! * `connection`: one connection under hyper, and when graced may close it.
//! * `handler`: request → response (limits, virtual host, method, path, file).
//! * `path`: request path → a safe relative path (traversal wall one).
//! * `files`: open below the root with `openat2(RESOLVE_BENEATH)` (wall two), or the built-in demo;
//!   per-thread caches of file versions (validators, small contents, open descriptors).
//! * `conditional`: If-Match / If-None-Match / If-Modified-Since / Range (RFC 9110 order).
//! * `body`: in-memory, `sendfile` or streamed file bodies that carry the request's guard.
//! * `generation`: per-request configuration generations and counters.
//! * `access_log`: Apache combined format to the journal, stderr or a file.
//! * `listener`: accepting on a listening socket (TCP or Unix) the caller owns.

pub mod access_log;
mod body;
pub mod conditional;
mod connection;
mod files;
pub mod generation;
mod handler;
pub mod listener;
mod meter;
pub mod path;
mod sendfile;
mod server;
mod shared;
mod size;

pub use connection::DRAIN_IDLE_GRACE;
pub use generation::Generation;
pub use server::{Server, Status};
