//! The validated per-site rules of a static site: response headers by path, redirects and
//! host canonicalisation, error pages, clean URLs and SPA fallback, directory listing, IP
//! allow/deny and basic auth. A leaf of types (`check::rules` builds them).

use std::path::PathBuf;

use ipnet::IpNet;

use crate::glob::Glob;

/// `Cache-Control` sent on 200/206/304 responses that no header rule gives one: caches
/// store the file but revalidate it every time (a 304 when unchanged), so an unhashed file
/// is never served stale. Hashed assets get a long `max-age` by a rule.
pub const CACHE_CONTROL_DEFAULT: &str = "no-cache";

/// Entries a directory listing shows at most unless `max_entries` says otherwise.
pub const LISTING_MAX_ENTRIES: usize = 1000;

/// A site's rules (all empty or off by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRules {
    /// Applied in order, each rule whose glob matches the response's path.
    pub headers: Vec<HeaderRule>,
    /// Default `Cache-Control` of 200/206/304 responses; `None`: none.
    pub cache_control: Option<String>,
    /// The first that matches the request path answers.
    pub redirects: Vec<Redirect>,
    /// Requests for another of the site's hosts are redirected (301) to this one.
    pub canonical_host: Option<String>,
    pub error_pages: ErrorPages,
    /// `/about` serves `about.html`, or `about/index.html` (any index name), when `about`
    /// is not a file.
    pub clean_urls: bool,
    /// A path in the root served (with `Cache-Control: no-cache`) instead of a 404 to a
    /// GET or HEAD that accepts `text/html`.
    pub spa_fallback: Option<String>,
    /// Directories without an index file are listed (HTML, or JSON by `Accept`).
    pub listing: Option<Listing>,
    /// Every rule whose glob matches must let the request through.
    pub access: Vec<AccessRule>,
}

impl Default for SiteRules {
    fn default() -> Self {
        SiteRules {
            headers: Vec::new(),
            cache_control: Some(CACHE_CONTROL_DEFAULT.to_owned()),
            redirects: Vec::new(),
            canonical_host: None,
            error_pages: ErrorPages::default(),
            clean_urls: false,
            spa_fallback: None,
            listing: None,
            access: Vec::new(),
        }
    }
}

/// `[[site.headers]]`: what to do to the headers of responses whose path matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    /// Matched against the resolved file's path (`/docs/index.html` for `/docs/`), or the
    /// request path when no file was found.
    pub path: Glob,
    /// Replace any value the header had.
    pub set: Vec<(String, String)>,
    /// Append a value (the header may then occur more than once).
    pub add: Vec<(String, String)>,
    /// Remove the header (lower-case names).
    pub remove: Vec<String>,
    /// Set only if the response has no such header yet.
    pub default: Vec<(String, String)>,
}

/// `[[site.redirect]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Against the request path as sent (still percent-encoded); `/old/**` is a prefix rule.
    pub from: Glob,
    /// A path (`/…`) or an absolute `http(s)://` URL; `$1` … `$9` are `from`'s captures.
    /// The request's query string is kept.
    pub to: String,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// `error_pages = { 404 = "…", "4xx" = "…", "5xx" = "…", default = "…" }`: paths in the
/// root served with the error's own status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorPages {
    /// By exact status.
    pub exact: Vec<(u16, String)>,
    pub client: Option<String>,
    pub server: Option<String>,
    pub default: Option<String>,
}

impl ErrorPages {
    /// The pages for `status` (≥ 400) in the order to try them: exact, its class, the default.
    pub fn for_status(&self, status: u16) -> impl Iterator<Item = &str> {
        let exact = self.exact.iter().find(|(s, _)| *s == status).map(|(_, p)| p);
        let class = if status < 500 { self.client.as_ref() } else { self.server.as_ref() };
        [exact, class, self.default.as_ref()].into_iter().flatten().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.client.is_none() && self.server.is_none() && self.default.is_none()
    }
}

/// `directory_listing = true` or `{ max_entries = N }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub max_entries: usize,
}

/// `[[site.access]]`: who may request paths matching `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// Matched against the decoded request path and, when it differs, the resolved file's.
    pub path: Glob,
    /// Addresses refused (403), checked first.
    pub deny: Vec<IpNet>,
    /// When not empty, only these addresses are let through (others: 403).
    pub allow: Vec<IpNet>,
    /// Basic authentication (401 without valid credentials).
    pub auth: Option<BasicAuth>,
}

/// Users and password hashes (bcrypt `$2y$`/`$2b$`/`$2a$` or `$argon2id$`…), read from an
/// htpasswd-style file at load and at every reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub realm: String,
    pub source: Htpasswd,
    /// `(user, hash)` in file order; for a credential, filled by
    /// [`Config::load_credentials`](crate::Config::load_credentials) (empty until then:
    /// nobody gets in).
    pub users: Vec<(String, String)>,
}

/// Where an htpasswd comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Htpasswd {
    /// A file graced's user reads itself, at load (absolute).
    File(PathBuf),
    /// `credential:NAME`: `$CREDENTIALS_DIRECTORY/NAME` (`LoadCredential=NAME:/etc/graced/htpasswd`
    /// keeps the file root-only); `at` is where the configuration names it.
    Credential { name: String, at: Place },
}

/// A place in a configuration file, for problems found after loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

#[cfg(test)]
mod tests {
    use super::ErrorPages;

    #[test]
    fn error_pages_are_tried_exact_then_class_then_default() {
        let pages = ErrorPages {
            exact: vec![(404, "/404.html".into()), (503, "/503.html".into())],
            client: Some("/4xx.html".into()),
            server: Some("/5xx.html".into()),
            default: Some("/error.html".into()),
        };
        let order = |s| pages.for_status(s).collect::<Vec<_>>();
        assert_eq!(order(404), ["/404.html", "/4xx.html", "/error.html"]);
        assert_eq!(order(403), ["/4xx.html", "/error.html"]);
        assert_eq!(order(503), ["/503.html", "/5xx.html", "/error.html"]);
        assert_eq!(order(500), ["/5xx.html", "/error.html"]);
        let only_default = ErrorPages { default: Some("/e.html".into()), ..ErrorPages::default() };
        assert_eq!(only_default.for_status(502).collect::<Vec<_>>(), ["/e.html"]);
        assert!(ErrorPages::default().for_status(404).next().is_none());
    }
}
