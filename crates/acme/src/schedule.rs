//! When a certificate is due: the CA's renewal window (ARI, RFC 9773) when it offers one,
//! else two thirds into the certificate's lifetime; and the back-off after failures.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use crate::error::AcmeError;
use crate::store;

/// The serving leaf's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Lifetime {
    /// The leaf of a PEM chain; `None` when it does not parse.
    pub fn of_chain(pem: &[u8]) -> Option<Lifetime> {
        let leaf = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
        let at = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
        Some(Lifetime {
            not_before: at(cert.validity().not_before.timestamp()),
            not_after: at(cert.validity().not_after.timestamp()),
        })
    }

    /// Two thirds into the lifetime (Let's Encrypt's advice without ARI).
    pub fn two_thirds(&self) -> SystemTime {
        let total = self.not_after.duration_since(self.not_before).unwrap_or_default();
        self.not_before + total * 2 / 3
    }
}

/// The first back-off after a failure; each further failure doubles it, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// The longest back-off: one day (the timer fires twice a day).
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// Failures so far for one site (`<state>/<site>/retry.json`); gone after a success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Failures in a row.
    pub failures: u32,
    /// No new attempt before this (seconds since the epoch), unless forced.
    pub not_before: u64,
    /// The last error, for `cat` and the journal.
    pub error: String,
}

impl Retry {
    pub fn load(path: &Path) -> Result<Retry, AcmeError> {
        match store::read_optional(path)? {
            None => Ok(Retry::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| AcmeError::State { path: path.to_owned(), detail: e.to_string() }),
        }
    }

    /// One more failure at `now`: the next attempt waits `FIRST_BACKOFF · 2^(failures-1)`,
    /// at most [`MAX_BACKOFF`] — and never past the point where the serving certificate
    /// (ending at `expires`) would run out before the next try.
    pub fn failed(&self, now: SystemTime, error: &str, expires: Option<SystemTime>) -> Retry {
        let failures = self.failures.saturating_add(1);
        let mut wait = FIRST_BACKOFF.saturating_mul(1 << (failures - 1).min(16)).min(MAX_BACKOFF);
        if let Some(left) = expires.and_then(|e| e.duration_since(now).ok()) {
            wait = wait.min(left / 4).max(Duration::from_secs(60));
        }
        let next = now + wait;
        Retry {
            failures,
            not_before: next.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
            error: error.to_owned(),
        }
    }

    /// When the next attempt may run.
    pub fn next(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.not_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_doubling_up_to_a_day() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut retry = Retry::default();
        let mut waits = Vec::new();
        for _ in 0..10 {
            retry = retry.failed(now, "down", None);
            waits.push(retry.next().duration_since(now).unwrap().as_secs() / 60);
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1280, 1440, 1440]);
        // A certificate with 2 hours left is tried again within half an hour.
        let soon = Retry::default().failed(now, "down", Some(now + Duration::from_secs(7200)));
        assert_eq!(soon.next().duration_since(now).unwrap(), Duration::from_secs(600));
        let sooner = retry.failed(now, "down", Some(now + Duration::from_secs(7200)));
        assert_eq!(sooner.next().duration_since(now).unwrap(), Duration::from_secs(1800));
    }

    #[test]
    fn two_thirds_of_the_lifetime() {
        let start = UNIX_EPOCH + Duration::from_secs(900);
        let life = Lifetime { not_before: start, not_after: start + Duration::from_secs(90) };
        assert_eq!(life.two_thirds(), start + Duration::from_secs(60));
    }
}
