//! HTTP and HTTPS side by side: the plaintext → HTTPS redirect of a site with
//! `https_redirect`, which spares ACME's HTTP-01 challenges, and the HSTS header of a site
//! with `hsts` (sent over HTTPS only, as RFC 6797 §7.2 requires).

use graced_config::{Config, ListenAddress, Site};
use http::HeaderValue;

/// Where ACME's HTTP-01 challenges are fetched (RFC 8555 §8.3): served over plaintext
/// HTTP even by a site that redirects everything else.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Whether a plaintext request for `path` to `site` is redirected to HTTPS.
#[inline]
pub(crate) fn redirects(site: &Site, path: &str) -> bool {
    site.https_redirect && !path.starts_with(ACME_CHALLENGE)
}

/// The `Location` of the HTTPS redirect: `https://HOST[:PORT]PATH[?QUERY]`, the port that of
/// the first TLS listener unless 443. `None` when `host` (lower-cased, without port, as the
/// handler has it) is not a host name or an IP address literal: no redirect points elsewhere.
pub(crate) fn https_location(config: &Config, host: &str, path_and_query: &str) -> Option<HeaderValue> {
    if !valid_host(host) {
        return None;
    }
    let port = config
        .listeners
        .iter()
        .filter(|l| l.tls)
        .find_map(|l| match l.address {
            ListenAddress::Tcp(addr) => Some(addr.port()),
            ListenAddress::Unix(_) => None,
        })
        .unwrap_or(443);
    let location = if port == 443 {
        format!("https://{host}{path_and_query}")
    } else {
        format!("https://{host}:{port}{path_and_query}")
    };
    HeaderValue::try_from(location).ok()
}

/// The `Strict-Transport-Security` value of `site` (HTTPS responses only).
#[inline]
pub(crate) fn hsts(site: &Site) -> Option<HeaderValue> {
    site.hsts.as_deref().and_then(|value| HeaderValue::from_str(value).ok())
}

/// A DNS name (letters, digits, `-`, `_`, dots) or a bracketed IPv6 literal.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tls_port: Option<u16>) -> Config {
        let mut config = Config::embedded_default();
        if let Some(port) = tls_port {
            let mut listener = config.listeners[0].clone();
            listener.name = "https".into();
            listener.address = ListenAddress::Tcp(([127, 0, 0, 1], port).into());
            listener.tls = true;
            config.listeners.push(listener);
        }
        config
    }

    #[test]
    fn the_location_names_the_tls_port_unless_443() {
        let at = |c: &Config, host, pq| https_location(c, host, pq).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            at(&config(Some(8443)), "example.org", "/a?b=c").as_deref(),
            Some("https://example.org:8443/a?b=c")
        );
        assert_eq!(at(&config(Some(443)), "example.org", "/").as_deref(), Some("https://example.org/"));
        assert_eq!(at(&config(None), "[::1]", "/x").as_deref(), Some("https://[::1]/x"));
        assert_eq!(at(&config(None), "evil.example/x", "/"), None);
        assert_eq!(at(&config(None), "a@b", "/"), None);
        assert_eq!(at(&config(None), "", "/"), None);
    }

    #[test]
    fn acme_challenges_are_not_redirected() {
        let mut site = Config::embedded_default().sites[0].clone();
        assert!(!redirects(&site, "/"));
        site.https_redirect = true;
        assert!(redirects(&site, "/"));
        assert!(redirects(&site, "/.well-known/other"));
        assert!(!redirects(&site, "/.well-known/acme-challenge/token"));
    }
}
