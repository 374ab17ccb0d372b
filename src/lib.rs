//! graced: the binaries' shared code — the command line, logging, the `graced unit` command and the supervisor that composes the crates.
//!
//! * [`cli`]: the command line of the `graced` binary.
//! * [`handover`]: the certificate and key files a root `-k graceful` opens for the server.
//! * [`logging`]: diagnostics to the journal (natively, when stderr is the journal) or stderr.
//! * [`supervisor`]: start → serve → reload → stop, composing `graced_lifecycle` and `graced_http`.
//! * [`unit`](mod@unit): `graced unit` — the IO around the pure generator `graced_unit`.
//!
//! The crates it composes: `graced_config` (configuration), `graced_http` (the HTTP server),
//! `graced_lifecycle` (the systemd toolkit), `graced_unit` (unit files), `graced_dbus` (the
//! D-Bus helper).

pub mod cli;
pub mod handover;
pub mod logging;
pub mod supervisor;
pub mod unit;
