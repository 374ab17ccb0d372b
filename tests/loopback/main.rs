//! The loopback test binary: the real binaries run on this machine, no systemd needed.
//!
//! Every test starts what it needs on its own: a graced on a free 127.0.0.1 port (HTTP
//! semantics, limits, the lifecycle under a fake `NOTIFY_SOCKET`, hand-made `LISTEN_FDS`,
//! pid files), a private `dbus-daemon` with a fake systemd (the D-Bus helper), or nothing
//! at all (the unit text against its golden files); and the lifecycle toolkit's example
//! server (`toolkit_example`). Tests run in parallel threads of this
//! one process, so none may change the process's environment or working directory, or
//! depend on a fixed port other than the README's 127.0.0.1:8080 (`http::demo`).
//!
//!     cargo test --test loopback
//!     cargo test --test loopback lifecycle::          # one module
//!     UPDATE_GOLDEN=1 cargo test --test loopback -- unit_golden units_in_sync

mod acme;
mod activation;
mod config_check;
mod dbus;
mod http;
mod http2;
mod https;
mod lifecycle;
mod pidfile;
mod rules;
mod smoke;
mod status;
mod tls;
mod toolkit_example;
mod unit_golden;
mod units_in_sync;

/// The binaries under test, as Cargo built them for this test run.
const GRACED: &str = env!("CARGO_BIN_EXE_graced");
const GENERATOR: &str = env!("CARGO_BIN_EXE_graced-generator");
const HELPER: &str = env!("CARGO_BIN_EXE_graced-dbus");
const GRACECTL: &str = env!("CARGO_BIN_EXE_gracectl");
const GRACED_ACME: &str = env!("CARGO_BIN_EXE_graced-acme");
