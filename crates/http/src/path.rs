//! Turns a request target's path into a safe relative path below a document root.
//!
//! This is the first of two walls against traversal. It percent-decodes each
//! segment *after* splitting on `/`, so an encoded slash (`%2f`) can never make a
//! new segment; it resolves `.` and `..` and refuses any path that would climb
//! above the root; and it refuses NUL bytes and backslashes outright. The second
//! wall is the kernel: files are opened with `openat2(RESOLVE_BENEATH)` relative to
//! the root (see `files`), so even a symlink cannot lead outside it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a request path cannot name a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// Not an origin-form path (`/…`), malformed percent-encoding, NUL, backslash,
    /// or `..` climbing above the root: 400.
    #[error("malformed or unsafe request path")]
    BadRequest,
    /// A segment decodes to something containing `/` (Apache's `AllowEncodedSlashes Off`): 404.
    #[error("encoded slash in request path")]
    EncodedSlash,
    /// A segment starts with `.` and hidden files are not served: 404.
    #[error("hidden file")]
    Hidden,
}

/// A validated path relative to a document root, with no `.`/`..`/empty segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SafePath {
    /// Relative path; empty for the root itself.
    pub(crate) relative: PathBuf,
    /// The request path ended with `/` (it names a directory).
    pub(crate) trailing_slash: bool,
}

impl SafePath {
    /// The path as the kernel should see it relative to the root (`.` for the root).
    pub(crate) fn as_relative(&self) -> &Path {
        if self.relative.as_os_str().is_empty() { Path::new(".") } else { &self.relative }
    }
}

/// Decodes and normalises `raw` (the path component of the request target, still
/// percent-encoded). `hidden_files` allows segments starting with a dot; `.well-known`
/// (RFC 8615) is always allowed.
pub(crate) fn resolve(raw: &str, hidden_files: bool) -> Result<SafePath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::BadRequest)?;
    // The common case: nothing to decode or normalise, no empty, dot or hidden segment.
    if !rest.starts_with('.')
        && !rest.contains("//")
        && !rest.contains("/.")
        && !rest.bytes().any(|b| matches!(b, b'%' | b'\\' | 0))
    {
        let trailing_slash = rest.is_empty() || rest.ends_with('/');
        let relative = PathBuf::from(rest.strip_suffix('/').unwrap_or(rest));
        return Ok(SafePath { relative, trailing_slash });
    }
    let mut segments: Vec<Vec<u8>> = Vec::new();
    // "/a/", "/a/." and "/a/.." all name directories.
    let mut trailing_slash = false;
    for encoded in rest.split('/') {
        let segment = percent_decode(encoded.as_bytes())?;
        if segment.contains(&0) || segment.contains(&b'\\') {
            return Err(PathError::BadRequest);
        }
        trailing_slash = matches!(segment.as_slice(), b"" | b"." | b"..");
        match segment.as_slice() {
            b"" | b"." => {}
            b".." => {
                segments.pop().ok_or(PathError::BadRequest)?;
            }
            s if s.contains(&b'/') => return Err(PathError::EncodedSlash),
            _ => segments.push(segment),
        }
    }
    if !hidden_files {
        let hidden = segments
            .iter()
            .enumerate()
            .any(|(i, s)| s.first() == Some(&b'.') && !(i == 0 && s.as_slice() == b".well-known"));
        if hidden {
            return Err(PathError::Hidden);
        }
    }
    let mut relative = PathBuf::new();
    for segment in &segments {
        relative.push(OsStr::from_bytes(segment));
    }
    Ok(SafePath { relative, trailing_slash })
}

fn percent_decode(input: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hex = input.get(i + 1..i + 3).ok_or(PathError::BadRequest)?;
            let value = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PathError::BadRequest)?;
            out.push(value);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, bool) {
        let p = resolve(raw, false).unwrap_or_else(|e| panic!("{raw}: {e}"));
        (p.relative.to_string_lossy().into_owned(), p.trailing_slash)
    }

    #[test]
    fn plain_paths() {
        assert_eq!(ok("/"), ("".into(), true));
        assert_eq!(ok("/index.html"), ("index.html".into(), false));
        assert_eq!(ok("/a/b/"), ("a/b".into(), true));
        assert_eq!(ok("//a///b"), ("a/b".into(), false));
        assert_eq!(ok("/caf%C3%A9.txt"), ("café.txt".into(), false));
        assert_eq!(ok("/a%20b"), ("a b".into(), false));
    }

    #[test]
    fn dot_segments_resolve_inside_the_root() {
        assert_eq!(ok("/a/./b"), ("a/b".into(), false));
        assert_eq!(ok("/a/../b"), ("b".into(), false));
        assert_eq!(ok("/a/%2e%2e/b"), ("b".into(), false));
        assert_eq!(ok("/a/.."), ("".into(), true));
        assert_eq!(ok("/a/."), ("a".into(), true));
    }

    #[test]
    fn traversal_is_refused() {
        for raw in [
            "/../../etc/passwd",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/a/../../etc/passwd",
            "/..",
            "/.%2e/etc/passwd",
        ] {
            assert_eq!(resolve(raw, true), Err(PathError::BadRequest), "{raw}");
        }
        assert_eq!(resolve("/..%2f..%2fetc/passwd", true), Err(PathError::EncodedSlash));
        assert_eq!(resolve("/a%2fb", true), Err(PathError::EncodedSlash));
    }

    #[test]
    fn nul_backslash_and_bad_encoding_are_bad_requests() {
        for raw in
            ["/..\\..\\etc\\passwd", "/a%5cb", "/index.html%00.txt", "/%", "/%zz", "/%4", "index.html", "*"]
        {
            assert_eq!(resolve(raw, true), Err(PathError::BadRequest), "{raw}");
        }
    }

    #[test]
    fn hidden_files_are_refused_unless_allowed_but_well_known_is_served() {
        assert_eq!(resolve("/.git/config", false), Err(PathError::Hidden));
        assert_eq!(resolve("/a/.env", false), Err(PathError::Hidden));
        assert_eq!(resolve("/%2egit/config", false), Err(PathError::Hidden));
        assert!(resolve("/.git/config", true).is_ok());
        assert_eq!(ok("/.well-known/acme-challenge/x"), (".well-known/acme-challenge/x".into(), false));
        assert_eq!(resolve("/a/.well-known/x", false), Err(PathError::Hidden));
    }
}
