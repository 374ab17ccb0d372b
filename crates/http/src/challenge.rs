//! ACME HTTP-01 answers (RFC 8555 §8.3) for sites with `acme = {…}`: the key
//! authorization graced-acme wrote to `[acme] challenge_directory/<token>`, served over
//! plain HTTP or HTTPS before redirects, rules or the document root are consulted.
//!
//! The file is read inline: it is a few dozen bytes on a tmpfs, fetched a handful of times
//! per issuance, and a 404 when graced-acme is not mid-order.

use std::path::Path;

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::Body;

/// The path prefix the CA fetches.
const PREFIX: &str = "/.well-known/acme-challenge/";

/// The answer for `path` when it is a challenge of an ACME site (`dir`: its challenge
/// directory); `None` when `path` is not a challenge (the request goes on as usual).
pub(crate) fn answer(dir: &Path, path: &str) -> Option<Result<Response<Body>, StatusCode>> {
    let token = path.strip_prefix(PREFIX)?;
    // RFC 8555 §8.3: a token is base64url; anything else is never a file graced-acme wrote.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Some(Err(StatusCode::NOT_FOUND));
    }
    Some(match std::fs::read(dir.join(token)) {
        Ok(bytes) => {
            let mut response = Response::new(Body::bytes(bytes));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        Err(_) => Err(StatusCode::NOT_FOUND),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_base64url_tokens_are_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok-en_1"), "tok-en_1.thumb").unwrap();
        assert!(answer(dir.path(), "/index.html").is_none());
        assert!(matches!(answer(dir.path(), "/.well-known/acme-challenge/tok-en_1"), Some(Ok(_))));
        for bad in ["", "..", "a/b", "a%2fb", "missing"] {
            let path = format!("{PREFIX}{bad}");
            assert_eq!(answer(dir.path(), &path).unwrap().err(), Some(StatusCode::NOT_FOUND), "{bad}");
        }
    }
}
