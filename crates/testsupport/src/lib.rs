//! What graced's test binaries (`tests/loopback`, `tests/container`) share, written once.
//!
//! * [`http`] — one [`http::Response`] and one HTTP/1.1 response parser; the clients: the
//!   raw loopback [`http::Client`], exchanges read to end of file, the classified
//!   ([`http::Failure`]) one-shot and [`http::KeepAlive`] clients, their HTTPS twins
//!   ([`http::Tls`], [`http::TlsKeepAlive`]: rustls, a test CA, the served certificate's
//!   serial), slow and small-receive-buffer readers.
//! * [`process`] — the real binary as a child: kill-on-drop ([`process::Reaped`]), a running
//!   server ([`process::Server`]), stderr capture ([`process::StderrLog`]), exit codes, and
//!   what `/proc` says about a process.
//! * [`notify`] — the fake `NOTIFY_SOCKET` collector and the datagram matcher.
//! * [`pathwall`] — the path wall's property-test kit: random trees with symlinks in and out
//!   of a root, random request paths, and the model of what may be served.
//! * [`pattern`] — the one byte pattern of large test files, whole or from an offset.
//! * [`site`] — a temporary document root with its config file, and starting graced on it.
//!
//! The binaries' paths (`env!("CARGO_BIN_EXE_…")`) exist only in the test binaries, so
//! whatever runs a binary takes its path: [`site::Site::new`] is given graced's once.

pub mod http;
pub mod notify;
pub mod pathwall;
pub mod pattern;
pub mod process;
pub mod site;
