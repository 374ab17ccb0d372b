//! graced's static-file HTTP server: accept loops over listeners the caller owns, HTTP/1.1
//! through hyper, a configuration *generation* per request, files opened below their root with
//! `openat2(RESOLVE_BENEATH)` and sent with `sendfile(2)`.
//!
//! It is driven with plain calls — [`Server::install`] (a reload),
//! [`Server::abort_connections`] (a stop or a hard restart), [`Server::begin_drain`] and
//! [`Server::wait_connections`] (a graceful stop) — and **must not depend on anything of
//! systemd**: no `NOTIFY_SOCKET`, no signals, no pid file, no socket activation, and no
//! `graced_lifecycle`. Its only graced dependency is `graced_config`; the `graced`
//! package's supervisor composes it with the lifecycle.
//!
//! # Modules
//!
//! Each line names a module and what it imports from the crate; imports go one way (the
//! graph is a DAG), and nothing imports the re-exports of this file or of `files/mod.rs`.
//!
//! * `server` → `connection`, `generation`, `listener`, `shared`: the public [`Server`],
//!   accept loops, connection limit, [`Status`].
//! * `connection` → `body`, `generation`, `handler`, `listener`, `meter`, `sendfile`,
//!   `shared`: one connection under hyper, and when graced may close it.
//! * `shared` → `generation`: what the server and every connection share — the current
//!   generation, the counters, the open connections, and the orders (stop, hard restart,
//!   drain) on a watch channel.
//! * `handler` → `access_log`, `body`, `conditional`, `files`, `generation`, `path`:
//!   request → response (limits, virtual host, method, path, file, preconditions).
//! * `body` → `generation`, `meter`, `sendfile`, `size`: in-memory or `sendfile` bodies that
//!   carry the request's guards; large files made resident a window at a time.
//! * `meter` → `listener`, `sendfile`: the connection's traffic (atomics) and the stream
//!   wrapper that feeds them.
//! * `sendfile` → `listener`: placeholder frames, the per-connection queue of files, and the
//!   write that sends them.
//! * `generation` → `access_log`, `files`: per-request configuration generations and counters.
//! * `files` → `path`, `size`: open below the root (traversal wall two) or the built-in demo;
//!   per-thread caches of file versions (its own map is in `files/mod.rs`).
//! * `path`: request path → a safe relative path (traversal wall one).
//! * `conditional`: If-Match / If-None-Match / If-Modified-Since / Range (RFC 9110 order).
//! * `size`: the size classes that decide how a file is kept and sent.
//! * `access_log`: Apache combined format to the journal, stderr or a file.
//! * `listener`: accepting on a listening socket (TCP or Unix) the caller owns.

pub mod access_log;
mod body;
mod conditional;
mod connection;
mod files;
mod generation;
mod handler;
mod listener;
mod meter;
mod path;
mod sendfile;
mod server;
mod shared;
mod size;

pub use connection::DRAIN_IDLE_GRACE;
pub use generation::{Counters, Generation};
pub use server::{Server, Status};
