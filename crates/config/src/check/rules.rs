//! Raw site rules → [`SiteRules`], every problem a diagnostic at its value: globs, header
//! names and values, redirect targets (no open redirect), statuses, error pages and the
//! fallback (files in the root), addresses, htpasswd files.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use toml::Spanned;

use super::Checker;
use crate::diagnostic;
use crate::glob::Glob;
use crate::htpasswd::parse_htpasswd;
use crate::model::CREDENTIAL_PREFIX;
use crate::model::{Checks, Root};
use crate::raw::RawSite;
use crate::raw_rules::{RawAccess, RawCacheControl, RawHeaderMap, RawListing, RawRedirect};
use crate::rules::{
    AccessRule, BasicAuth, ErrorPages, HeaderRule, Htpasswd, LISTING_MAX_ENTRIES, Listing, Place, Redirect,
    SiteRules,
};
use crate::tls_rules;

/// Headers a rule may not touch: they frame the message or belong to the connection.
const RESERVED: [&str; 6] =
    ["content-length", "transfer-encoding", "connection", "content-range", "keep-alive", "upgrade"];

impl Checker<'_> {
    /// The rules of one `[[site]]` whose root is `root` and host names `hosts`.
    pub(super) fn site_rules(&mut self, s: &mut RawSite, root: &Root, hosts: &[String]) -> SiteRules {
        let mut rules = SiteRules::default();
        for raw in s.headers.take().unwrap_or_default() {
            let path = self.glob(&raw.path);
            let set = self.header_map(raw.set.as_ref());
            let add = self.header_map(raw.add.as_ref());
            let default = self.header_map(raw.default.as_ref());
            let mut remove = Vec::new();
            for name in raw.remove.unwrap_or_default() {
                if self.header_name(&name, name.get_ref()) {
                    remove.push(name.get_ref().to_ascii_lowercase());
                }
            }
            if let Some(path) = path {
                rules.headers.push(HeaderRule { path, set, add, remove, default });
            }
        }
        match s.cache_control.as_ref().map(|c| (c, c.get_ref())) {
            None => {}
            Some((_, RawCacheControl::Off(false))) => rules.cache_control = None,
            Some((at, RawCacheControl::Off(true))) => self.problem(
                at,
                "cache_control = true says nothing",
                "give a value such as \"no-cache\", or false for none",
            ),
            Some((at, RawCacheControl::Value(value))) if self.header_value(at, value) => {
                rules.cache_control = Some(value.clone());
            }
            Some((_, RawCacheControl::Value(_))) => {}
        }
        for raw in s.redirect.take().unwrap_or_default() {
            if let Some(redirect) = self.redirect(raw) {
                rules.redirects.push(redirect);
            }
        }
        if let Some(at) = &s.canonical_host {
            let host = at.get_ref().trim_end_matches('.').to_ascii_lowercase();
            if hosts.contains(&host) {
                rules.canonical_host = Some(host);
            } else {
                self.problem(
                    at,
                    format!("canonical_host {:?} is not one of this site's hosts", at.get_ref()),
                    "list it in hosts too (e.g. hosts = [\"example.org\", \"www.example.org\"])",
                );
            }
        }
        if let Some(pages) = &s.error_pages {
            rules.error_pages = self.error_pages(pages, root);
        }
        rules.clean_urls = s.clean_urls.unwrap_or(false);
        if let Some(at) = &s.spa_fallback {
            rules.spa_fallback = self.root_file(at, root, "spa_fallback");
        }
        if let Some(at) = &s.directory_listing {
            rules.listing = match at.get_ref() {
                RawListing::On(false) => None,
                RawListing::On(true) => Some(Listing { max_entries: LISTING_MAX_ENTRIES }),
                RawListing::Table { max_entries } => {
                    let max = max_entries.map(|n| Spanned::new(at.span(), n));
                    Some(Listing { max_entries: self.count(&max, LISTING_MAX_ENTRIES, 1..=100_000) })
                }
            };
        }
        for raw in s.access.take().unwrap_or_default() {
            if let Some(rule) = self.access(raw) {
                rules.access.push(rule);
            }
        }
        rules
    }

    fn glob(&mut self, at: &Spanned<String>) -> Option<Glob> {
        match Glob::new(at.get_ref()) {
            Ok(glob) => Some(glob),
            Err(why) => {
                self.problem(at, why, "write a path glob like \"/assets/**\" or \"/*.{css,js}\" ('*' stays within a segment, '**' crosses '/')");
                None
            }
        }
    }

    fn header_map(&mut self, map: Option<&Spanned<RawHeaderMap>>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, value) in map.map(|m| m.get_ref().iter()).into_iter().flatten() {
            if self.header_name(value, name) && self.header_value(value, value.get_ref()) {
                out.push((name.to_ascii_lowercase(), value.get_ref().clone()));
            }
        }
        out
    }

    /// Whether `name` may be set by a rule; a problem at `at` if not.
    fn header_name<T>(&mut self, at: &Spanned<T>, name: &str) -> bool {
        let token = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            self.problem(at, format!("{name:?} is not a header name"), "use letters, digits and '-'");
            return false;
        }
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            self.problem(
                at,
                format!("header {name:?} is managed by the server"),
                "remove this header from the rule",
            );
            return false;
        }
        true
    }

    fn header_value<T>(&mut self, at: &Spanned<T>, value: &str) -> bool {
        if value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            return true;
        }
        self.problem(
            at,
            format!("header value {value:?} has a control or non-ASCII character"),
            "write the value in printable ASCII",
        );
        false
    }

    fn redirect(&mut self, raw: RawRedirect) -> Option<Redirect> {
        let from = self.glob(&raw.from)?;
        let status = match &raw.status {
            None => 301,
            Some(at) if matches!(at.get_ref(), 301 | 302 | 303 | 307 | 308) => *at.get_ref() as u16,
            Some(at) => {
                self.problem(
                    at,
                    format!("{} is not a redirect status", at.get_ref()),
                    "use 301, 302, 303, 307 or 308",
                );
                return None;
            }
        };
        let to = raw.to.get_ref();
        if let Err(why) = redirect_target(to, from.captures()) {
            self.problem(&raw.to, format!("redirect target {to:?} {why}"), "write a path (\"/new/$1\") or an absolute URL (\"https://example.org/$1\"); $N only in the path");
            return None;
        }
        Some(Redirect { from, to: to.clone(), status })
    }

    fn error_pages(&mut self, pages: &Spanned<BTreeMap<String, Spanned<String>>>, root: &Root) -> ErrorPages {
        let mut out = ErrorPages::default();
        for (key, value) in pages.get_ref() {
            let Some(file) = self.root_file(value, root, "error page") else { continue };
            match key.as_str() {
                "4xx" => out.client = Some(file),
                "5xx" => out.server = Some(file),
                "default" => out.default = Some(file),
                code => match code.parse::<u16>() {
                    Ok(status @ 400..=599) => out.exact.push((status, file)),
                    _ => self.problem(
                        value,
                        format!("error_pages key {code:?} is not an error status"),
                        "use a status from 400 to 599, \"4xx\", \"5xx\" or \"default\"",
                    ),
                },
            }
        }
        out
    }

    /// A file path inside the site's root (`/404.html` or `404.html`), normalised to
    /// `/…`; checked to exist when the filesystem is checked.
    fn root_file(&mut self, at: &Spanned<String>, root: &Root, what: &str) -> Option<String> {
        let path = at.get_ref().trim_start_matches('/');
        let bad = path.is_empty()
            || path.split('/').any(|s| s.is_empty() || s == "." || s == "..")
            || path.contains(['\\', '\0', '%', '?', '#']);
        if bad {
            self.problem(
                at,
                format!("{what} {:?} is not a file path inside the root", at.get_ref()),
                "write a path like \"/404.html\" (relative to root)",
            );
            return None;
        }
        if let (Root::Dir(dir), Checks::All) = (root, self.checks) {
            let full = dir.join(path);
            if !full.is_file() {
                self.problem(
                    at,
                    format!("{what} {} is not a file", full.display()),
                    "create the file or correct the path",
                );
                return None;
            }
        }
        Some(format!("/{path}"))
    }

    fn access(&mut self, raw: RawAccess) -> Option<AccessRule> {
        let path = self.glob(&raw.path);
        let given = raw.allow.as_ref().is_some_and(|a| !a.is_empty())
            || raw.deny.as_ref().is_some_and(|d| !d.is_empty())
            || raw.htpasswd.is_some();
        let allow = self.networks(raw.allow.unwrap_or_default());
        let deny = self.networks(raw.deny.unwrap_or_default());
        let auth = raw.htpasswd.as_ref().and_then(|file| {
            let realm = raw.realm.as_ref().map_or("graced", |r| r.get_ref().as_str());
            let realm_ok = !realm.is_empty()
                && realm.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
            if !realm_ok {
                let at = raw.realm.as_ref().unwrap_or(file);
                self.problem(
                    at,
                    format!("realm {realm:?} is not usable"),
                    "use printable ASCII without '\"' or '\\'",
                );
            }
            self.htpasswd(file, realm)
        });
        if !given {
            self.problem(
                &raw.path,
                "this access rule has no allow, deny or htpasswd",
                "give it allow = [\"10.0.0.0/8\"], deny = [...] or htpasswd = \"/etc/graced/htpasswd\"",
            );
            return None;
        }
        if raw.htpasswd.is_some() && auth.is_none() {
            return None;
        }
        Some(AccessRule { path: path?, deny, allow, auth })
    }

    fn networks(&mut self, raw: Vec<Spanned<String>>) -> Vec<IpNet> {
        let mut out = Vec::new();
        for at in raw {
            let text = at.get_ref();
            match text.parse::<IpNet>().or_else(|_| text.parse::<IpAddr>().map(IpNet::from)) {
                Ok(net) => out.push(net.trunc()),
                Err(_) => self.problem(
                    &at,
                    format!("{text:?} is not an IP address or network"),
                    "write \"192.0.2.7\", \"10.0.0.0/8\" or \"2001:db8::/32\"",
                ),
            }
        }
        out
    }

    fn htpasswd(&mut self, at: &Spanned<String>, realm: &str) -> Option<BasicAuth> {
        if let Some(name) = at.get_ref().strip_prefix(CREDENTIAL_PREFIX) {
            if let Some(problem) = tls_rules::credential_name_problem(name) {
                self.problem(
                    at,
                    problem,
                    "use 1-255 printable ASCII characters without '/' or ':', as in LoadCredential=NAME:PATH",
                );
                return None;
            }
            let (line, column) = diagnostic::line_column(self.text, at.span().start);
            let place = Place { file: self.file.to_owned(), line, column };
            let source = Htpasswd::Credential { name: name.to_owned(), at: place };
            return Some(BasicAuth { realm: realm.to_owned(), source, users: Vec::new() });
        }
        let file = self.absolute(at.get_ref());
        let mut users = Vec::new();
        if self.checks == Checks::All {
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(err) => {
                    self.problem(
                        at,
                        format!("htpasswd {}: {err}", file.display()),
                        "create it (htpasswd -B -c FILE USER) and let the service user read it",
                    );
                    return None;
                }
            };
            match parse_htpasswd(&text) {
                Ok(parsed) => users = parsed,
                Err((line, why)) => {
                    self.problem(
                        at,
                        format!("{}:{line}: {why}", file.display()),
                        "one `user:hash` per line, hashes by `htpasswd -B` (bcrypt) or argon2id",
                    );
                    return None;
                }
            }
        }
        Some(BasicAuth { realm: realm.to_owned(), source: Htpasswd::File(file), users })
    }
}

/// Why `to` cannot be a redirect target with `captures` captures: a path must not start
/// with `//` or `/\` (another host), an absolute URL must be http(s) with `$N` only in its
/// path, and `$N` must name a capture.
fn redirect_target(to: &str, captures: usize) -> Result<(), String> {
    if to.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'\\') {
        return Err("has a space, control character or backslash".into());
    }
    let path_start = if to.starts_with('/') {
        if to.starts_with("//") {
            return Err("starts with '//' (it would name another host)".into());
        }
        0
    } else {
        let rest = to.strip_prefix("https://").or_else(|| to.strip_prefix("http://"));
        let Some(rest) = rest else { return Err("is neither a path nor an http(s):// URL".into()) };
        let host_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let host = &rest[..host_len];
        if host.is_empty() || host.contains(['$', '@']) {
            return Err("has no plain host (no '$' or '@' before the path)".into());
        }
        to.len() - rest.len() + host_len
    };
    let bytes = to.as_bytes();
    for (i, _) in to.match_indices('$') {
        match bytes.get(i + 1) {
            Some(d @ b'1'..=b'9') if usize::from(d - b'0') <= captures => {
                if i < path_start {
                    return Err("has $N before its path".into());
                }
            }
            Some(b'1'..=b'9') => {
                return Err(format!("names a capture `from` does not have (it has {captures})"));
            }
            _ => return Err("has '$' not followed by a digit 1-9".into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_cannot_leave_for_another_host() {
        for ok in ["/new", "/new/$1", "https://example.org/$1", "http://example.org", "/a?b=$1"] {
            assert_eq!(redirect_target(ok, 1), Ok(()), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil",
            "https://$1",
            "https://ex.org$1",
            "https://a@b/",
            "ftp://x/",
            "new",
            "/$2",
            "/$x",
            "/a b",
        ] {
            assert!(redirect_target(bad, 1).is_err(), "{bad}");
        }
    }
}
