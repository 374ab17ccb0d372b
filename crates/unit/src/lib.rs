//! systemd units generated from graced's own configuration: a typed model, its rendering, and a pure builder.
//!
//! * [`model`]: unit files as typed sections and directives (and, later, the D-Bus files).
//! * [`render`]: `Display` for the model, in systemd's own style and a fixed key order.
//! * [`build()`]: (validated [`Config`](graced_config::Config), systemd version, [`Options`]) →
//!   [`Bundle`]; version-aware reload, socket activation, hardening. No IO.
//! * [`dbus`]: the D-Bus helper's files as pure text: bus policy (and its validator),
//!   activation file, the helper's unit.
//!
//! One listener is one socket unit, because systemd gives every fd of a socket unit the
//! same `FileDescriptorName=`: `NAME.socket` holds the first listener and pulls in
//! `NAME-LISTENER.socket` for each further one.

mod build;
pub mod dbus;
pub mod model;
pub mod render;

use std::path::PathBuf;

pub use build::{
    DEFAULT_BINARY, DEFAULT_NAME, FALLBACK_SYSTEMD, Kind, MIN_SYSTEMD, NOTIFY_RELOAD_SINCE, Options, Origin,
    RESTART_SEC, START_LIMIT_BURST, START_LIMIT_INTERVAL, STOP_MARGIN, build,
};
pub use model::{Artifact, Bundle, File, WantsLink};

/// Why a configuration cannot become units.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target systemd lacks directives the units rely on.
    #[error("systemd {version} is too old: the generated units need systemd {MIN_SYSTEMD} or newer")]
    SystemdTooOld { version: u32 },
    /// `pid_file` must live in the unit's `RuntimeDirectory=`.
    #[error(
        "pid_file {path:?} is not in a directory under /run; the unit keeps it in its RuntimeDirectory= \
         (e.g. /run/graced/graced.pid), or leave pid_file unset for $RUNTIME_DIRECTORY/graced.pid"
    )]
    PidFileOutsideRun { path: PathBuf },
    /// A template's instances each need their own runtime directory.
    #[error(
        "pid_file {path:?} is set, but every instance of a template needs its own; leave pid_file \
         unset so each uses $RUNTIME_DIRECTORY/graced.pid"
    )]
    PidFileInTemplate { path: PathBuf },
    /// A Unix listener would be deleted with the runtime directory.
    #[error(
        "Unix listener {path:?} is inside {dir:?}, which systemd removes whenever the service stops \
         (while the socket unit keeps listening on the deleted path); put it elsewhere, e.g. /run/graced-http.sock"
    )]
    SocketInRuntimeDirectory { path: PathBuf, dir: PathBuf },
    /// The service would see an empty private directory there.
    #[error(
        "{what} {path:?} is under {dir:?}, which the service sees as an empty private directory (PrivateTmp=yes)"
    )]
    HiddenByPrivateTmp { what: &'static str, path: PathBuf, dir: PathBuf },
    /// Writable `/var/log` as a whole is not granted.
    #[error(
        "access_log {path:?} is directly in /var/log; give it a directory of its own, e.g. /var/log/graced/access.log"
    )]
    AccessLogInVarLog { path: PathBuf },
    /// A path that would need quoting (or is not text).
    #[error("{what} {path:?} cannot be written into a unit file: {reason}")]
    UnsupportedPath { what: &'static str, path: PathBuf, reason: &'static str },
    /// Paths in units are absolute.
    #[error("{what} path {path:?} is relative; units need an absolute path")]
    RelativePath { what: &'static str, path: PathBuf },
    /// Listener names become unit names (`NAME-LISTENER.socket`).
    #[error("listener name {name:?} cannot be part of a unit name; use letters, digits, '_', '.' and '-'")]
    ListenerName { name: String },
    /// The unit name stem.
    #[error("unit name {name:?} is not valid: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// An instance name (a configuration file's stem).
    #[error(
        "instance name {name:?} is not valid; use letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    )]
    InvalidInstance { name: String },
}
