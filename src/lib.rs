//! graced: a systemd-native static web server that keeps Apache's signal contract.
//!
//! * [`config`]: the typed configuration (TOML), validated once, with `FILE:LINE:COL` errors;
//!   read by the server and by the unit generator.
//! * [`http`]: the static-file HTTP server — listeners, per-request generations, limits.
//!   Knows nothing of systemd or signals.
//! * [`lifecycle`]: signals → commands, sd_notify, socket activation, the pid file, the
//!   control socket; the only place that sequences start → serve → reload → stop.
//! * [`logging`]: diagnostics to the journal (natively, when stderr is the journal) or stderr.
//! * [`unit`]: systemd unit files generated from the configuration (pure; no IO).
//! * [`cli`]: the command line of the `graced` binary.
//! * [`dbus`]: the `graced-dbus` helper (`org.graced.Control1` on the system bus, acting
//!   through systemd's D-Bus API), its bus policy/activation/unit files, and `gracectl`.

pub mod cli;
pub mod config;
pub mod dbus;
pub mod http;
pub mod lifecycle;
pub mod logging;
pub mod unit;
