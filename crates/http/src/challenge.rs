//! ACME HTTP-01 answers (RFC 8555 §8.3) for sites with `acme = {…}`: the key
//! authorization graced-acme wrote to `[acme] challenge_directory/<token>`, served over
//! plain HTTP or HTTPS before redirects, rules or the document root are consulted.
//!
//! The file is read inline: it is a few dozen bytes on a tmpfs, fetched a handful of times
//! per issuance, and a 404 when graced-acme is not mid-order.

use std::path::Path;

use graced_config::{Config, Site};
use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::body::Body;

/// The path prefix the CA fetches.
const PREFIX: &str = "/.well-known/acme-challenge/";

/// The answer when `path` is a challenge of an ACME site: the key authorization, or a 404
/// (the site's error pages still apply), without `Server` (the handler adds it); `None`
/// otherwise (the request goes on as usual).
pub(crate) fn answer(config: &Config, site: &Site, method: &Method, path: &str) -> Option<Response<Body>> {
    if site.acme.is_none() || !matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    let (status, body, kind) = match read(&config.acme.challenge_directory, path)? {
        Some(bytes) => (StatusCode::OK, bytes, "application/octet-stream"),
        None => (StatusCode::NOT_FOUND, b"404 Not Found\n".to_vec(), "text/plain; charset=utf-8"),
    };
    let mut response = Response::new(Body::bytes(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

/// The file for `path` in `dir`: `None` when `path` is not a challenge, `Some(None)` when
/// there is no such answer.
fn read(dir: &Path, path: &str) -> Option<Option<Vec<u8>>> {
    let token = path.strip_prefix(PREFIX)?;
    // RFC 8555 §8.3: a token is base64url; anything else is never a file graced-acme wrote.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Some(None);
    }
    Some(std::fs::read(dir.join(token)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_base64url_tokens_are_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok-en_1"), "tok-en_1.thumb").unwrap();
        assert_eq!(read(dir.path(), "/index.html"), None);
        assert_eq!(
            read(dir.path(), "/.well-known/acme-challenge/tok-en_1"),
            Some(Some(b"tok-en_1.thumb".to_vec()))
        );
        for bad in ["", "..", "a/b", "a%2fb", "missing"] {
            assert_eq!(read(dir.path(), &format!("{PREFIX}{bad}")), Some(None), "{bad}");
        }
    }
}
