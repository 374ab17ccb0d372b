//! The supervisor's typed errors: why the server could not start, and why a reload was refused.

use std::path::PathBuf;

use graced_config::ConfigError;
use graced_lifecycle::activation::ActivationError;
use graced_lifecycle::inbox::InboxError;
use graced_lifecycle::pidfile::PidFileError;
use graced_tls::TlsErrors;

/// Why the server could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    /// The toolkit's text with graced's words (`[[listen]]`, `graced unit`).
    #[error("{}", activation_text(.0))]
    Activation(ActivationError),
    #[error("cannot listen for {name:?}: {source}")]
    Bind {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the access log: {0}")]
    AccessLog(#[source] std::io::Error),
    #[error("cannot create the control socket {}: {source}", path.display())]
    Control {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("binary upgrade: the hand-shake with the previous process failed: {0}")]
    Predecessor(#[source] std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A certificate or key (every problem, each naming its file).
    #[error(transparent)]
    Tls(TlsErrors),
}

impl From<ActivationError> for LifecycleError {
    fn from(error: ActivationError) -> Self {
        LifecycleError::Activation(error)
    }
}

impl From<InboxError> for LifecycleError {
    fn from(error: InboxError) -> Self {
        match error {
            InboxError::Control { path, source } => LifecycleError::Control { path, source },
            InboxError::Signals(source) => LifecycleError::Runtime(source),
            other => LifecycleError::Runtime(std::io::Error::other(other)),
        }
    }
}

/// graced's wording for the two mismatches between its configuration and the socket unit.
fn activation_text(error: &ActivationError) -> String {
    match error {
        ActivationError::Missing { .. } => format!("{error} (`graced unit` writes it)"),
        ActivationError::Unused { name, address } => format!(
            "systemd passed a socket named {name:?} ({address}) that no [[listen]] uses; add a listener \
             with that name or remove it from the socket unit"
        ),
        other => other.to_string(),
    }
}

/// Why a reload or restart was refused; the running generation keeps serving. Becomes
/// text only in the control socket's reply, the log and the STATUS= line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    AccessLog(std::io::Error),
    #[error(
        "the [[listen]] tables changed, but listeners come from systemd's socket unit: regenerate the units \
         (`graced unit`), then `systemctl daemon-reload` and restart the socket"
    )]
    ListenersFromSystemd,
    #[error("cannot listen for {name:?}: {source}")]
    Bind { name: String, source: std::io::Error },
    /// A certificate or key of the new configuration (each problem names its file).
    #[error(transparent)]
    Tls(TlsErrors),
}
