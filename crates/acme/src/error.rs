//! What can go wrong for one site; every variant keeps the serving certificate in place.

use std::path::PathBuf;

/// Why a site's certificate was not issued or renewed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA could not be reached, refused, or rate-limited (the crate's error says which).
    #[error("{site}: the ACME CA at {directory}: {source}")]
    Ca {
        site: String,
        directory: String,
        #[source]
        source: Box<instant_acme::Error>,
    },
    /// The order or an authorization ended in a state other than valid.
    #[error("{site}: the ACME order failed: {detail}")]
    Order { site: String, detail: String },
    /// What the CA sent does not pass graced's own certificate checks: nothing was installed.
    #[error("{site}: the CA's certificate fails graced's checks, nothing was installed: {source}")]
    Check {
        site: String,
        #[source]
        source: Box<graced_tls::TlsError>,
    },
    /// A file of the state or challenge directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A stored file (account, retry state) could not be parsed.
    #[error("{}: {detail}", path.display())]
    State { path: PathBuf, detail: String },
}

impl AcmeError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AcmeError {
        let path = path.into();
        move |source| AcmeError::Io { path, source }
    }
}
