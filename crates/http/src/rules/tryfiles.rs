//! Which file answers a path (`try_files`): the file itself; a directory's index files;
//! with `clean_urls`, `/about` → `about.html` → `about/index.html`; a directory listing
//! when the site allows one; and, with `spa_fallback`, the app's page for a GET or HEAD
//! that accepts `text/html` and names no known non-HTML type (`/missing.js` stays 404).
//!
//! Every candidate goes through `files::lookup`, so the root's wall and the caches hold
//! for each; the answer carries the resolved path, which header and access rules match.

use std::fs::File;
use std::path::PathBuf;

use graced_config::Site;
use http::{HeaderMap, Method, header};

use crate::files::{self, Lookup, RootDir};
use crate::path::SafePath;

/// What answers a request.
#[derive(Debug)]
pub(crate) enum Target {
    Lookup(Lookup),
    /// A directory without an index file, on a site that lists directories.
    Listing(File),
}

/// A [`Target`] and what the rules need to know of it.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) target: Target,
    /// The file that answers when it is not the request's own path: `docs/index.html` for
    /// `/docs/`, `about.html` for `/about`, the fallback. Its sidecars sit beside it, and the
    /// header and access rules match its path ([`display`]). `None`: the request's path
    /// (nothing is built for the common case).
    pub(crate) resolved: Option<SafePath>,
    /// The SPA fallback answered: `Cache-Control: no-cache`.
    pub(crate) fallback: bool,
    /// The answer depends on `Accept` (a listing, or a path the fallback could answer).
    pub(crate) vary_accept: bool,
}

/// `/a/b` (or `/a/b/` for a directory) of a safe path.
pub(crate) fn display(safe: &SafePath) -> String {
    let relative = safe.relative.to_string_lossy();
    match (relative.is_empty(), safe.trailing_slash) {
        (true, _) => "/".to_owned(),
        (false, true) => format!("/{relative}/"),
        (false, false) => format!("/{relative}"),
    }
}

/// Finds what answers `safe` on `site`.
pub(crate) fn lookup(
    site: &Site,
    root: &RootDir,
    safe: &SafePath,
    method: &Method,
    headers: &HeaderMap,
) -> Found {
    let found = |target, resolved| Found { target, resolved, fallback: false, vary_accept: false };
    if safe.trailing_slash {
        if let Some((lookup, path)) = index(site, root, &safe.relative) {
            return found(Target::Lookup(lookup), Some(path));
        }
        if site.rules.listing.is_some()
            && let Some(dir) = files::open_dir(root, safe)
        {
            return Found { vary_accept: true, ..found(Target::Listing(dir), None) };
        }
    }
    let lookup = files::lookup(site, root, safe);
    let lookup = match lookup {
        Lookup::NotFound | Lookup::AddSlash if site.rules.clean_urls && !safe.trailing_slash => {
            let mut html = safe.relative.clone().into_os_string();
            html.push(".html");
            let html = candidate(PathBuf::from(html));
            match files::lookup(site, root, &html) {
                Lookup::Found(resource) => return found(Target::Lookup(Lookup::Found(resource)), Some(html)),
                Lookup::NotFound | Lookup::AddSlash | Lookup::Forbidden => {}
                other => return found(Target::Lookup(other), None),
            }
            if let Some((lookup, path)) = index(site, root, &safe.relative) {
                return found(Target::Lookup(lookup), Some(path));
            }
            lookup
        }
        other => other,
    };
    if !matches!(lookup, Lookup::NotFound) || !matches!(*method, Method::GET | Method::HEAD) {
        return found(Target::Lookup(lookup), None);
    }
    let Some(fallback) = site.rules.spa_fallback.as_deref() else {
        return found(Target::Lookup(lookup), None);
    };
    if !may_be_a_page(&safe.relative) {
        return found(Target::Lookup(lookup), None);
    }
    let not_found = Found { vary_accept: true, ..found(Target::Lookup(lookup), None) };
    if !accepts_html(headers) {
        return not_found;
    }
    let page = candidate(PathBuf::from(fallback.trim_start_matches('/')));
    match files::lookup(site, root, &page) {
        Lookup::Found(resource) => Found {
            target: Target::Lookup(Lookup::Found(resource)),
            resolved: Some(page),
            fallback: true,
            vary_accept: true,
        },
        _ => not_found,
    }
}

fn candidate(relative: PathBuf) -> SafePath {
    SafePath { relative, trailing_slash: false }
}

/// The first of the site's index files in directory `dir`: the lookup and its path.
fn index(site: &Site, root: &RootDir, dir: &std::path::Path) -> Option<(Lookup, SafePath)> {
    for name in &site.index {
        let path = candidate(dir.join(name));
        if let found @ (Lookup::Found(_) | Lookup::Unavailable | Lookup::Failed) =
            files::lookup(site, root, &path)
        {
            return Some((found, path));
        }
    }
    None
}

/// Whether a missing path could be a route of the app: its last segment has no extension
/// of a known type other than HTML (`/user/jane.doe` could be; `/app.js` is not).
fn may_be_a_page(relative: &std::path::Path) -> bool {
    let name = relative.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    if !name.contains('.') {
        return true;
    }
    let kind = files::content_type(&name);
    kind.starts_with("text/html") || kind == "application/octet-stream"
}

/// Whether `Accept` names `text/html` (or `text/*`) with a q-value above zero.
fn accepts_html(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |item| {
            let mut parts = item.split(';').map(str::trim);
            let range = parts.next().unwrap_or("");
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (range.eq_ignore_ascii_case("text/html") || range.eq_ignore_ascii_case("text/*")) && !zero
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        accepts_html(&headers)
    }

    #[test]
    fn html_must_be_named_with_a_positive_q() {
        assert!(accept("text/html,application/xhtml+xml,*/*;q=0.8"));
        assert!(accept("text/*"));
        assert!(!accept("*/*"));
        assert!(!accept("text/html;q=0"));
        assert!(!accept("application/json"));
        assert!(!accepts_html(&HeaderMap::new()));
    }

    #[test]
    fn only_extensionless_unknown_or_html_names_fall_back() {
        for yes in ["about", "users/jane.doe", "a/b.html", ""] {
            assert!(may_be_a_page(std::path::Path::new(yes)), "{yes}");
        }
        for no in ["missing.js", "a/b.css", "img.png", "data.json"] {
            assert!(!may_be_a_page(std::path::Path::new(no)), "{no}");
        }
    }
}
