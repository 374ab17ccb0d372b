//! What the caller (the supervisor) tells the status endpoint that the server cannot know:
//! the last failed reload's error and the serving certificates' expiry. A leaf.

use std::time::SystemTime;

/// Set by the caller after each reload; read by the status endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The latest failed reload since the process started: when, and its message.
    pub last_reload_error: Option<(SystemTime, String)>,
    /// The serving generation's certificates (empty without TLS).
    pub certificates: Vec<CertificateExpiry>,
}

/// One certificate in service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// The site's first host name (or `default`).
    pub site: String,
    /// The certificate's subject, or where it was read from.
    pub name: String,
    pub not_after: SystemTime,
}
