//! graced's static-file HTTP server: accept loops over listeners the caller owns, HTTP/1.1
//! through hyper, a configuration *generation* per request, files opened below their root with
//! `openat2(RESOLVE_BENEATH)` and sent with `sendfile(2)` — or, on a TLS listener (rustls,
//! with the `ServerConfig` the caller puts in each generation), encrypted a chunk at a time.
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
//! * `server` → `connection`, `generation`, `listener`, `shared`, `status`, `status/report`, `tls`:
//!   the public [`Server`], accept loops, connection limit, [`Status`].
//! * `status/` → `access_log`, `body`, `listener`, `shared`: the status endpoint on `status = true`
//!   listeners — page, JSON, Prometheus `/metrics` — and the per-thread request counters
//!   (`status/tally`) the rest of the crate counts into (see `status/mod.rs`).
//! * `tls` → `connection`, `listener`, `shared`: a connection on a TLS listener — its first
//!   byte (plaintext HTTP gets a 400 page), the handshake under its timeout, then `connection`.
//! * `connection` → `access_log`, `body`, `generation`, `handler`, `limits`, `linger`, `meter`, `park`,
//!   `sendfile`, `shared`: one HTTP/1.1 connection (plain or TLS) under hyper, taken down to be
//!   parked when idle and built again.
//! * `park` → `limits`, `linger`, `meter`, `shared`: an idle connection parked without its HTTP
//!   state until its next request.
//! * `limits` → `meter`, `sendfile`, `shared`: when a connection is closed or parked (its limits,
//!   checked against its meter when its timer fires).
//! * `shared` → `generation`, `status/report`, `status/tally`: what the server and every connection share — the current
//!   generation, the counters, the open connections, and the orders (stop, hard restart,
//!   drain) on a watch channel.
//! * `handler` → `access_log`, `body`, `challenge`, `conditional`, `files`, `generation`, `multipart`,
//!   `path`, `rules`, `scheme`, `variant`: request → response (limits, virtual host, HTTPS
//!   redirect, method, the site's redirects and access rules, path, file, representation,
//!   preconditions, error pages, header rules, HSTS).
//! * `rules` → `files`, `path`: a site's rules around the lookup — redirects, IP allow/deny
//!   and basic auth, clean URLs and the SPA fallback, listings, error pages, headers by path
//!   (its own map is in `rules/mod.rs`).
//! * `variant` → `compress`, `conditional`, `encoding`, `files`, `path`: which representation a request
//!   gets — identity, a precompressed sidecar or an on-the-fly variant — and its `ETag`.
//! * `compress` → `encoding`: on-the-fly gzip/brotli/zstd, once per file version, on the
//!   blocking pool, in a bounded process-wide cache with one compression per variant.
//! * `encoding`: content codings and `Accept-Encoding` q-values.
//! * `multipart` → `body`, `files`: `multipart/byteranges` bodies for several ranges.
//! * `challenge` → `body`: ACME HTTP-01 answers (before redirects and rules) from `[acme] challenge_directory`.
//! * `scheme`: the plaintext → HTTPS redirect (sparing ACME challenges) and HSTS.
//! * `body` → `chunks`, `compress`, `generation`, `meter`, `sendfile`, `size`: in-memory,
//!   `sendfile`, chunked-copy (TLS), deferred (compressing) or multipart bodies that carry the request's guards; large files made resident a
//!   window at a time.
//! * `chunks`: file bodies for connections without `sendfile`, read a chunk at a time, the
//!   disk read on the blocking pool.
//! * `meter` → `listener`, `sendfile`, `status/tally`: the connection's traffic (atomics), the stream
//!   wrapper that feeds them, and the `Transport` (plain socket or TLS stream) it wraps.
//! * `sendfile` → `listener`: placeholder frames, the per-connection queue of files, and the
//!   write that sends them.
//! * `generation` → `access_log`, `files`, `rules`, `status/tally`: per-request configuration
//!   generations and counters; its guard ends a request (histogram, access-log line).
//! * `files` → `path`, `size`: open below the root (traversal wall two) or the built-in demo;
//!   per-thread caches of file versions (its own map is in `files/mod.rs`).
//! * `path`: request path → a safe relative path (traversal wall one).
//! * `conditional`: If-Match / If-None-Match / If-Modified-Since / Range (RFC 9110 order).
//! * `size`: the size classes that decide how a file is kept and sent.
//! * `access_log`: combined or JSON lines to stderr or a file through a bounded queue, written
//!   when the request ends; structured fields to the journal.
//! * `listener`: accepting on a listening socket (TCP or Unix) the caller owns.

pub mod access_log;
mod batch;
mod body;
mod challenge;
mod chunks;
mod compress;
mod conditional;
mod connection;
mod encoding;
mod files;
mod generation;
mod handler;
mod http2;
mod limits;
mod linger;
mod listener;
mod meter;
mod multipart;
mod park;
mod path;
mod rules;
mod scheme;
mod sendfile;
mod server;
mod shared;
mod size;
mod status;
mod stream;
mod tls;
mod variant;

pub use generation::{Counters, Generation};
pub use limits::DRAIN_IDLE_GRACE;
pub use server::{Server, Status};
pub use status::report::{CertificateExpiry, Report};
