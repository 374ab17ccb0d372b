//! `[[site.headers]]` on the way out: set, add, remove and default-if-absent by path glob,
//! on every response (200, 206, 304, redirects, errors — nginx's `add_header` without
//! `always` drops them on errors; graced never does), then the site's default
//! `Cache-Control` on 200/206/304 responses that have none.

use graced_config::{CACHE_CONTROL_DEFAULT, SiteRules};
use http::header::{CACHE_CONTROL, HeaderName};
use http::{HeaderMap, HeaderValue, StatusCode};

/// Applies `rules` to `headers` of a response with `status` whose path is `path` (the
/// resolved file's, or the request's when no file was found).
pub(crate) fn apply(rules: &SiteRules, path: &str, status: StatusCode, headers: &mut HeaderMap) {
    for rule in rules.headers.iter().filter(|r| r.path.is_match(path)) {
        for name in &rule.remove {
            headers.remove(name.as_str());
        }
        for (name, value) in &rule.set {
            if let Some((name, value)) = pair(name, value) {
                headers.insert(name, value);
            }
        }
        for (name, value) in &rule.add {
            if let Some((name, value)) = pair(name, value) {
                headers.append(name, value);
            }
        }
        for (name, value) in &rule.default {
            if let Some((name, value)) = pair(name, value)
                && !headers.contains_key(&name)
            {
                headers.insert(name, value);
            }
        }
    }
    if let Some(value) = &rules.cache_control
        && matches!(status.as_u16(), 200 | 206 | 304)
        && !headers.contains_key(CACHE_CONTROL)
        && let Ok(value) = if value == CACHE_CONTROL_DEFAULT {
            Ok(HeaderValue::from_static(CACHE_CONTROL_DEFAULT))
        } else {
            HeaderValue::from_str(value)
        }
    {
        headers.insert(CACHE_CONTROL, value);
    }
}

/// Names and values were checked at load; a failure here is a bug, and the header is skipped.
fn pair(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(value).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use graced_config::{Glob, HeaderRule};

    #[test]
    fn set_add_remove_default_in_order_and_cache_control_only_on_success() {
        let mut rules = SiteRules::default();
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        rules.headers.push(HeaderRule {
            path: Glob::new("/assets/**").unwrap(),
            set: pairs(&[("cache-control", "public, max-age=31536000, immutable")]),
            add: pairs(&[("link", "</a.css>; rel=preload")]),
            remove: vec!["x-remove".into()],
            default: pairs(&[("x-frame-options", "DENY"), ("x-present", "new")]),
        });
        let mut headers = HeaderMap::new();
        headers.insert("x-remove", HeaderValue::from_static("1"));
        headers.insert("x-present", HeaderValue::from_static("old"));
        headers.insert("link", HeaderValue::from_static("<b>"));
        apply(&rules, "/assets/app.1234.js", StatusCode::NOT_MODIFIED, &mut headers);
        assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(headers.get_all("link").iter().count(), 2);
        assert!(!headers.contains_key("x-remove"));
        assert_eq!(headers["x-present"], "old");
        assert_eq!(headers["x-frame-options"], "DENY");

        let mut headers = HeaderMap::new();
        apply(&rules, "/index.html", StatusCode::OK, &mut headers);
        assert_eq!(headers["cache-control"], "no-cache");
        let mut headers = HeaderMap::new();
        apply(&rules, "/missing", StatusCode::NOT_FOUND, &mut headers);
        assert!(!headers.contains_key("cache-control"));
    }
}
