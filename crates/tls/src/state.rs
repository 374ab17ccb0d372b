//! [`TlsState`]: what outlives generations (ticketer, session cache), and preparing one
//! generation's `ServerConfig` from a configuration and its PEM files.

use std::sync::Arc;
use std::time::SystemTime;

use graced_config::Config;
use rustls::ServerConfig;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

use crate::error::{TlsError, TlsErrors};
use crate::expiry::{CertificateInfo, Expiries};
use crate::policy;
use crate::resolver::SniResolver;
use crate::site;
use crate::source::{Material, Sources};

/// Sessions the server remembers by id (TLS 1.2 without tickets; ~13 KiB would be a
/// full session, an entry here is far smaller).
const SESSION_CACHE_ENTRIES: usize = 8192;

/// Kept for the life of the process and shared by every generation's `ServerConfig`, so
/// session tickets and ids survive any number of reloads and restarts. The ticketer
/// rotates its keys on its own schedule (rustls: every 6 hours, the previous key still
/// accepted), never because of a reload.
pub struct TlsState {
    ticketer: Arc<dyn ProducesTickets>,
    sessions: Arc<dyn StoresServerSessions + Send + Sync>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState").field("ticketer", &self.ticketer).finish_non_exhaustive()
    }
}

/// One generation's TLS: the `ServerConfig` and its certificates' expiry.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub server_config: Arc<ServerConfig>,
    pub certificates: Expiries,
    /// The PEM files it was built from (what the next reload keeps for a file it cannot read).
    pub material: Material,
}

impl TlsState {
    pub fn new() -> Result<TlsState, TlsError> {
        let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsError::Policy)?;
        Ok(TlsState { ticketer, sessions: ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES) })
    }

    /// Reads (see `source` for the order) and checks every certificate of `config` and
    /// builds its `ServerConfig`; `Ok(None)` when no listener is TLS.
    pub fn load(
        &self,
        config: &Config,
        sources: &Sources<'_>,
        now: SystemTime,
    ) -> Result<Option<Prepared>, TlsErrors> {
        if !config.listeners.iter().any(|l| l.tls) {
            return Ok(None);
        }
        let material = Material::read(config, sources)?;
        self.prepare(config, material, now).map(Some)
    }

    /// Checks `material` (the PEM files of `config`'s sites, in order) at `now` and builds
    /// the `ServerConfig`, reporting every problem.
    pub fn prepare(
        &self,
        config: &Config,
        material: Material,
        now: SystemTime,
    ) -> Result<Prepared, TlsErrors> {
        let provider = policy::provider();
        let mut errors = Vec::new();
        let mut resolver = SniResolver::default();
        let mut certificates = Vec::<CertificateInfo>::new();
        let mut first = None;
        let mut default = None;
        for (site, pem) in config.sites.iter().zip(&material.sites) {
            let Some(pem) = pem else { continue };
            match site::check(site, pem, &provider, now) {
                Ok(checked) => {
                    for host in &site.hosts {
                        resolver.add(host, &checked.key);
                    }
                    if site.is_default {
                        default = Some(checked.key.clone());
                    }
                    first.get_or_insert_with(|| checked.key.clone());
                    certificates.push(checked.info);
                }
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Err(TlsErrors(errors));
        }
        if let Some(fallback) = default.or(first) {
            resolver.set_fallback(&fallback);
        }
        let mut server_config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(policy::VERSIONS)
            .map_err(TlsError::Policy)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        server_config.alpn_protocols = policy::alpn_protocols(config.http2.enabled);
        server_config.ticketer = self.ticketer.clone();
        server_config.session_storage = self.sessions.clone();
        Ok(Prepared {
            server_config: Arc::new(server_config),
            certificates: Expiries(certificates),
            material,
        })
    }
}
