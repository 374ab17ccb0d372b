//! Redirects before the file lookup: host canonicalisation (www ↔ apex) and the site's
//! `[[site.redirect]]` rules (exact, prefix `/**`, globs with `$N`), the query kept.
//!
//! No open redirect: the configured target was checked at load (a path not starting with
//! `//` or `/\`, or an absolute URL whose host has no `$N`); captures come from the
//! request, so a target that starts with a capture could still begin with `//host` or
//! `/\host` — leading slashes and backslashes collapse to one `/`, so it stays on this site.

use graced_config::{Redirect, Site};
use http::{HeaderValue, StatusCode, Uri};

/// A redirect to send: status and `Location`.
#[derive(Debug)]
pub(crate) struct Redirection {
    pub(crate) status: StatusCode,
    pub(crate) location: HeaderValue,
}

/// The canonical-host redirect (301) of a request for another of `site`'s hosts: to the
/// same path and query on the canonical host, the port of the `Host` header kept.
pub(crate) fn canonical(
    site: &Site,
    host: Option<&str>,
    authority: Option<&str>,
    uri: &Uri,
    tls: bool,
) -> Option<Redirection> {
    let canonical = site.rules.canonical_host.as_deref()?;
    let host = host?;
    if host == canonical || !site.hosts.iter().any(|h| h == host) {
        return None;
    }
    // The port as the client wrote it (digits only), never anything else from the header.
    let port = authority
        .and_then(|a| a.rsplit_once(':'))
        .filter(|(h, p)| !h.ends_with(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(String::new(), |(_, p)| format!(":{p}"));
    let scheme = if tls { "https" } else { "http" };
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("{scheme}://{canonical}{port}{target}");
    Some(Redirection {
        status: StatusCode::MOVED_PERMANENTLY,
        location: HeaderValue::try_from(location).ok()?,
    })
}

/// The first `[[site.redirect]]` whose `from` matches the request path.
pub(crate) fn find(redirects: &[Redirect], uri: &Uri) -> Option<Redirection> {
    let path = uri.path();
    redirects.iter().find_map(|rule| {
        let captures = rule.from.capture(path)?;
        let mut location = substitute(&rule.to, &captures);
        if let Some(query) = uri.query() {
            location.push(if location.contains('?') { '&' } else { '?' });
            location.push_str(query);
        }
        Some(Redirection {
            status: StatusCode::from_u16(rule.status).ok()?,
            location: HeaderValue::try_from(location).ok()?,
        })
    })
}

/// `to` with `$1` … `$9` replaced; a path result starts with exactly one `/`.
fn substitute(to: &str, captures: &[&str]) -> String {
    let mut out = String::with_capacity(to.len() + 16);
    let mut chars = to.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$'
            && let Some(d) = chars.peek().and_then(|d| d.to_digit(10))
        {
            chars.next();
            out.push_str(captures.get(d as usize - 1).copied().unwrap_or(""));
        } else {
            out.push(c);
        }
    }
    if out.starts_with('/') {
        let rest = out.trim_start_matches(['/', '\\']);
        out = format!("/{rest}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use graced_config::Glob;

    fn rule(from: &str, to: &str, status: u16) -> Redirect {
        Redirect { from: Glob::new(from).unwrap(), to: to.into(), status }
    }

    fn location(rules: &[Redirect], target: &str) -> Option<(u16, String)> {
        let r = find(rules, &target.parse().unwrap())?;
        Some((r.status.as_u16(), r.location.to_str().unwrap().to_owned()))
    }

    #[test]
    fn exact_prefix_and_glob_rules_keep_the_query() {
        let rules = [
            rule("/old", "/new", 301),
            rule("/docs/**", "/manual/$1", 308),
            rule("/blog/*/*.html", "/posts/$1-$2", 302),
            rule("/go/**", "/$1", 307),
            rule("/q", "/r?x=1", 301),
        ];
        assert_eq!(location(&rules, "/old"), Some((301, "/new".into())));
        assert_eq!(location(&rules, "/old?a=b"), Some((301, "/new?a=b".into())));
        assert_eq!(location(&rules, "/oldx"), None);
        assert_eq!(location(&rules, "/docs/a/b.html?v=2"), Some((308, "/manual/a/b.html?v=2".into())));
        assert_eq!(location(&rules, "/blog/2024/hi.html"), Some((302, "/posts/2024-hi".into())));
        assert_eq!(location(&rules, "/q?y=2"), Some((301, "/r?x=1&y=2".into())));
        // Captures cannot make a protocol-relative or backslash URL.
        assert_eq!(location(&rules, "/go//evil.example/x"), Some((307, "/evil.example/x".into())));
        assert_eq!(location(&rules, "/go/%5Cevil.example"), Some((307, "/%5Cevil.example".into())));
    }
}
