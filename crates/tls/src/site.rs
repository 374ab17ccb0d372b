//! One site's chain and key, checked: they parse, belong together, are valid now and
//! cover the site's hosts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use graced_config::Site;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::error::TlsError;
use crate::expiry::CertificateInfo;
use crate::source::SitePem;

/// A site's certificate, ready for the resolver.
pub(crate) struct Checked {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) info: CertificateInfo,
}

/// Checks `pem` for `site` at `now`.
pub(crate) fn check(
    site: &Site,
    pem: &SitePem,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Checked, TlsError> {
    let name = &pem.certificate.name;
    let chain = CertificateDer::pem_slice_iter(&pem.certificate.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CertificatePem { name: name.clone(), detail: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { name: name.clone() });
    }
    let mut not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
    let mut leaf_names = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::Certificate {
            name: name.clone(),
            index: i + 1,
            detail: e.to_string(),
        })?;
        let validity = cert.validity();
        let (before, after) = (time(validity.not_before.timestamp()), time(validity.not_after.timestamp()));
        not_after = not_after.min(after);
        if i == 0 {
            if now < before {
                return Err(TlsError::NotYetValid { name: name.clone(), not_before: rfc3339(before) });
            }
            if now >= after {
                return Err(TlsError::Expired { name: name.clone(), not_after: rfc3339(after) });
            }
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                leaf_names = san.value.general_names.iter().filter_map(SanName::of).collect();
            }
        }
    }
    for host in &site.hosts {
        if !leaf_names.iter().any(|n| n.covers(host)) {
            let names: Vec<String> = leaf_names.iter().map(SanName::to_string).collect();
            let names = if names.is_empty() { "no DNS or IP names".to_owned() } else { names.join(", ") };
            return Err(TlsError::NotCovering { name: name.clone(), host: host.clone(), names });
        }
    }
    let key_name = &pem.key.name;
    let key = PrivateKeyDer::from_pem_slice(&pem.key.bytes)
        .map_err(|e| TlsError::NoKey { name: key_name.clone(), detail: e.to_string() })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key { name: key_name.clone(), detail: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // A key type whose public half rustls cannot derive: nothing to compare.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => return Err(TlsError::KeyMismatch { key: key_name.clone(), certificate: name.clone() }),
    }
    let label = site.hosts.first().cloned().unwrap_or_else(|| "default site".to_owned());
    Ok(Checked {
        key: Arc::new(certified),
        info: CertificateInfo { site: label, name: name.clone(), not_after },
    })
}

/// A subjectAltName the coverage check understands.
enum SanName {
    Dns(String),
    Ip(IpAddr),
}

impl SanName {
    fn of(name: &GeneralName<'_>) -> Option<SanName> {
        match name {
            GeneralName::DNSName(dns) => Some(SanName::Dns(dns.trim_end_matches('.').to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(SanName::Ip(IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?))),
                16 => Some(SanName::Ip(IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?))),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether a client asking for `host` (a configured host: lower case, maybe
    /// `*.parent`, an IP address, `[v6]`) accepts this name. A configured wildcard needs
    /// the same wildcard; `*.parent` covers exactly one label more than `parent`.
    fn covers(&self, host: &str) -> bool {
        let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        match (self, ip) {
            (SanName::Ip(san), Some(ip)) => *san == ip,
            (SanName::Dns(san), None) => {
                san == host
                    || (!host.starts_with("*.")
                        && san.strip_prefix("*.").is_some_and(|parent| {
                            host.strip_suffix(parent)
                                .and_then(|label| label.strip_suffix('.'))
                                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
                        }))
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for SanName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SanName::Dns(name) => f.write_str(name),
            SanName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

fn time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::SanName;

    #[test]
    fn wildcards_cover_one_label() {
        let wild = SanName::Dns("*.example.org".into());
        assert!(wild.covers("www.example.org"));
        assert!(wild.covers("*.example.org"));
        assert!(!wild.covers("example.org"));
        assert!(!wild.covers("a.b.example.org"));
        assert!(!wild.covers("wwwexample.org"));
        let exact = SanName::Dns("example.org".into());
        assert!(exact.covers("example.org"));
        assert!(!exact.covers("*.example.org"));
        let ip = SanName::Ip("::1".parse().unwrap());
        assert!(ip.covers("[::1]"));
        assert!(!ip.covers("127.0.0.1"));
    }
}
