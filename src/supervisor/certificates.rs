//! The supervisor's TLS: the process-long [`TlsState`] (resumption across reloads), the
//! credentials directory, each generation's certificates and the expiry warning.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use graced_config::Config;
use graced_http::Generation;
use graced_tls::{Credentials, Expiries, Handed, Serving, Sources, TlsErrors, TlsState};

use crate::logging::message_id;

/// Kept for the process lifetime: a graceful reload *and* a hard restart (HUP) keep the
/// ticketer and session cache, so clients resume across both; keys rotate on the
/// ticketer's own schedule. Only a new process starts afresh.
pub(super) struct Certificates {
    state: TlsState,
    credentials: Credentials,
    /// The serving generation's certificates (empty without TLS).
    current: Expiries,
    /// The serving generation's PEM bytes: what a reload keeps for a file it cannot read.
    serving: Serving,
    /// ACME sites serving plain HTTP until graced-acme writes their first certificate.
    waiting: Vec<String>,
    warning: Duration,
}

/// One generation's TLS, prepared before anything changes (`None`: no TLS listener).
pub(super) struct Prepared(Option<graced_tls::Prepared>);

impl Prepared {
    /// The files that could not be read and were not handed over (see `graced_tls::Material`).
    pub(super) fn not_reread(&self) -> Vec<String> {
        self.0.as_ref().map_or_else(Vec::new, |p| p.material.not_reread())
    }

    /// `generation` with this TLS for its TLS listeners' handshakes.
    pub(super) fn apply(&self, generation: Generation) -> Generation {
        match &self.0 {
            Some(tls) => generation.with_tls(tls.server_config.clone()),
            None => generation,
        }
    }
}

impl Certificates {
    /// `credentials`: `$CREDENTIALS_DIRECTORY`, read at the edge.
    pub(super) fn new(credentials: Option<PathBuf>) -> Result<Certificates, TlsErrors> {
        Ok(Certificates {
            state: TlsState::new()?,
            credentials: Credentials::new(credentials),
            current: Expiries::default(),
            serving: Serving::default(),
            waiting: Vec::new(),
            warning: Duration::ZERO,
        })
    }

    /// Reads (files `handed` over by the reload's caller first) and checks `config`'s
    /// certificates and builds its `ServerConfig`.
    pub(super) fn prepare(&self, config: &Config, handed: &Handed) -> Result<Prepared, TlsErrors> {
        let sources = Sources { credentials: &self.credentials, handed, serving: &self.serving };
        Ok(Prepared(self.state.load(config, &sources, SystemTime::now())?))
    }

    /// `prepared` now serves; warns about certificates that expire soon.
    pub(super) fn install(&mut self, prepared: Prepared, config: &Config) {
        self.serving = prepared.0.as_ref().map(|p| p.material.serving(config)).unwrap_or_default();
        self.waiting = prepared.0.as_ref().map(|p| p.material.waiting.clone()).unwrap_or_default();
        self.current = prepared.0.map(|p| p.certificates).unwrap_or_default();
        self.warning = config.tls.expiry_warning;
        self.warn_expiring();
    }

    /// The nearest expiry for STATUS= and `-k status` (empty without TLS).
    pub(super) fn note(&self) -> String {
        let now = SystemTime::now();
        let waiting = match self.waiting.as_slice() {
            [] => String::new(),
            sites => format!("; waiting for certificate (graced-acme): {}", sites.join(", ")),
        };
        let nearest = match self.current.nearest() {
            None => String::new(),
            Some(c) if c.remaining(now) < self.warning => {
                format!("; WARNING: certificate {}", c.describe(now))
            }
            Some(c) => format!("; certificate {}", c.describe(now)),
        };
        nearest + &waiting
    }

    /// The serving certificates, for the status endpoint.
    pub(super) fn expiries(&self) -> Vec<graced_http::CertificateExpiry> {
        let certificate = |c: &graced_tls::CertificateInfo| graced_http::CertificateExpiry {
            site: c.site.clone(),
            name: c.name.clone(),
            not_after: c.not_after,
        };
        self.current.0.iter().map(certificate).collect()
    }

    /// A journal warning for each certificate within `[tls] expiry_warning`.
    pub(super) fn warn_expiring(&self) {
        let now = SystemTime::now();
        for c in self.current.within(self.warning, now) {
            tracing::warn!(
                message_id = message_id::CERTIFICATE_EXPIRING,
                site = %c.site,
                certificate = %c.name,
                not_after = %humantime::format_rfc3339_seconds(c.not_after),
                "certificate of {}: renew it, then reload (`graced -k graceful`)",
                c.describe(now)
            );
        }
    }
}
