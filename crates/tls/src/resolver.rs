//! The certificate for a handshake, chosen by SNI: exact host, then `*.parent`, else the
//! fallback — the default site's certificate if it has one, else the first site's that has
//! one (nginx's `default_server`: a client without SNI or with an unknown name still gets
//! a certificate, and its browser decides; refusing the handshake would only hide which
//! server answered).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, Default)]
pub(crate) struct SniResolver {
    /// Lower-case host → certificate.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `parent` of a configured `*.parent` → certificate.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    fallback: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Adds `host` (a site's configured host, lower case) served with `key`.
    pub(crate) fn add(&mut self, host: &str, key: &Arc<CertifiedKey>) {
        match host.strip_prefix("*.") {
            Some(parent) => self.wildcard.entry(parent.to_owned()).or_insert_with(|| key.clone()),
            None => self.exact.entry(host.to_owned()).or_insert_with(|| key.clone()),
        };
    }

    /// The certificate for clients without SNI or with an unknown name.
    pub(crate) fn set_fallback(&mut self, key: &Arc<CertifiedKey>) {
        self.fallback = Some(key.clone());
    }

    /// The certificate for SNI `name`.
    pub(crate) fn choose(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = name else { return self.fallback.clone() };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.exact
            .get(&name)
            .or_else(|| name.split_once('.').and_then(|(_, parent)| self.wildcard.get(parent)))
            .or(self.fallback.as_ref())
            .cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}
