//! [`Error`]: why a configuration cannot become units (one variant per rule the builder enforces).

use std::path::PathBuf;

use crate::versions::MIN_SYSTEMD;

/// Why a configuration cannot become units.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target systemd lacks directives the units rely on.
    #[error("systemd {version} is too old: the generated units need systemd {min} or newer", min = MIN_SYSTEMD)]
    SystemdTooOld { version: u32 },
    /// `pid_file` must live in the unit's `RuntimeDirectory=`.
    #[error(
        "pid_file {path:?} is not in a directory under /run; the unit keeps it in its RuntimeDirectory= \
         (e.g. /run/graced/graced.pid), or leave pid_file unset for $RUNTIME_DIRECTORY/graced.pid"
    )]
    PidFileOutsideRun { path: PathBuf },
    /// An `[acme]` directory the generated graced-acme unit cannot own.
    #[error(
        "[acme] {what} {path:?} is not a directory of its own under {under}: graced-acme.service \
         gets it from systemd ({directive}); use e.g. {example}"
    )]
    AcmeDirectory {
        what: &'static str,
        path: PathBuf,
        under: &'static str,
        directive: &'static str,
        example: &'static str,
    },
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
    /// A TLS file whose path makes no credential name.
    #[error(
        "{path:?} cannot be passed as a credential: {reason}; use a shorter path, or `credential:NAME` \
         with your own LoadCredential= drop-in"
    )]
    CredentialPath { path: PathBuf, reason: &'static str },
    /// Two TLS files whose paths make the same credential name.
    #[error(
        "{first:?} and {second:?} would both be passed as credential {name}; rename one of them (a \
         credential name is the path with every '/' and unusual character as '_')"
    )]
    CredentialClash { first: PathBuf, second: PathBuf, name: String },
    /// The unit name stem.
    #[error("unit name {name:?} is not valid: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// An instance name (a configuration file's stem).
    #[error(
        "instance name {name:?} is not valid; use letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    )]
    InvalidInstance { name: String },
}
