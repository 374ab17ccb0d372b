//! When certificates expire: the nearest, and which are within the warning window.

use std::time::{Duration, SystemTime};

/// One site's certificate as the supervisor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The site: its first host, or `default site`.
    pub site: String,
    /// The certificate file as errors name it.
    pub name: String,
    /// The soonest notAfter of the chain (the leaf's, unless an intermediate ends first).
    pub not_after: SystemTime,
}

impl CertificateInfo {
    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }

    /// `example.org expires 2027-01-05T12:00:00Z (in 5d)`.
    pub fn describe(&self, now: SystemTime) -> String {
        let when = humantime::format_rfc3339_seconds(self.not_after);
        let left = self.remaining(now);
        if left.is_zero() {
            format!("{} ({}) expired {when}", self.site, self.name)
        } else {
            format!("{} ({}) expires {when} (in {})", self.site, self.name, short(left))
        }
    }
}

/// Every certificate of a generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiries(pub Vec<CertificateInfo>);

impl Expiries {
    /// The certificate that expires first.
    pub fn nearest(&self) -> Option<&CertificateInfo> {
        self.0.iter().min_by_key(|c| c.not_after)
    }

    /// Certificates that expire within `window` of `now` (or already have).
    pub fn within(&self, window: Duration, now: SystemTime) -> Vec<&CertificateInfo> {
        self.0.iter().filter(|c| c.remaining(now) < window).collect()
    }
}

/// Days when at least a day, else hours, else minutes.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        format!("{}d", s / 86_400)
    } else if s >= 3600 {
        format!("{}h", s / 3600)
    } else {
        format!("{}min", s / 60)
    }
}
