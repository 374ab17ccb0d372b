//! `[[site.access]]`: IP allow/deny and basic auth by path, checked before the file is
//! opened (against the decoded request path) and again against the resolved file's path
//! when that differs (clean URLs, index files, the SPA fallback), so no second name of a
//! guarded file gets around a rule.

use std::net::IpAddr;

use graced_config::{AccessRule, Config};
use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::auth::{self, Check};

/// What the access rules say about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// An address denied or not allowed: 403.
    Forbidden,
    /// No valid credentials for this realm: 401.
    Unauthorized(String),
    /// Too many password checks running: 503.
    Busy,
}

/// Checks every rule whose glob matches `path`; `remote`: the client address as the
/// listener gives it (`"unix"` for a Unix socket: no address, so never allowed by an
/// allow list).
pub(crate) fn check(rules: &[AccessRule], path: &str, remote: &str, headers: &HeaderMap) -> Verdict {
    let mut address: Option<Option<IpAddr>> = None;
    for rule in rules.iter().filter(|r| r.path.is_match(path)) {
        if !rule.deny.is_empty() || !rule.allow.is_empty() {
            let ip = *address.get_or_insert_with(|| remote.parse().ok());
            let denied = ip.is_some_and(|ip| rule.deny.iter().any(|n| n.contains(&ip)));
            let allowed =
                rule.allow.is_empty() || ip.is_some_and(|ip| rule.allow.iter().any(|n| n.contains(&ip)));
            if denied || !allowed {
                return Verdict::Forbidden;
            }
        }
        if let Some(basic) = &rule.auth {
            match auth::check(basic, headers.get(AUTHORIZATION)) {
                Check::Valid => {}
                Check::Invalid => return Verdict::Unauthorized(basic.realm.clone()),
                Check::Busy => return Verdict::Busy,
            }
        }
    }
    Verdict::Pass
}

/// Warns (at start and at each reload) about every site that asks for passwords and can
/// be reached over plain HTTP: a site without `https_redirect` when any listener is plain.
pub(crate) fn warn_plain_http(config: &Config) {
    let plain: Vec<&str> = config.listeners.iter().filter(|l| !l.tls).map(|l| l.name.as_str()).collect();
    if plain.is_empty() {
        return;
    }
    for site in config.sites.iter().filter(|s| !s.https_redirect) {
        for rule in site.rules.access.iter().filter(|r| r.auth.is_some()) {
            tracing::warn!(
                site = site.hosts.first().map_or("(default)", String::as_str),
                path = rule.path.as_str(),
                listeners = plain.join(","),
                "basic auth on a plain-HTTP listener: passwords cross the network in clear text; \
                 serve the site over TLS with https_redirect = true"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graced_config::Glob;

    fn rule(path: &str, allow: &[&str], deny: &[&str]) -> AccessRule {
        AccessRule {
            path: Glob::new(path).unwrap(),
            allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
            deny: deny.iter().map(|a| a.parse().unwrap()).collect(),
            auth: None,
        }
    }

    #[test]
    fn deny_first_then_allow_list() {
        let rules = [rule("/internal/**", &["10.0.0.0/8", "::1/128"], &["10.0.0.66/32"])];
        let at = |path, remote| check(&rules, path, remote, &HeaderMap::new());
        assert_eq!(at("/internal/a", "10.1.2.3"), Verdict::Pass);
        assert_eq!(at("/internal/a", "::1"), Verdict::Pass);
        assert_eq!(at("/internal/a", "10.0.0.66"), Verdict::Forbidden);
        assert_eq!(at("/internal/a", "192.0.2.1"), Verdict::Forbidden);
        assert_eq!(at("/internal/a", "unix"), Verdict::Forbidden);
        assert_eq!(at("/public", "192.0.2.1"), Verdict::Pass);
    }
}
