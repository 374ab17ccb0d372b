//! A site's `[site.compression]` table: precompressed sidecars and on-the-fly compression —
//! the raw keys, the validated [`Compression`], and the check between them.
//!
//! A leaf: it reports problems as [`Problem`]s (span, message, hint) that `check` turns
//! into diagnostics, so it needs nothing of the checker.

use serde::Deserialize;
use toml::Spanned;

/// Content codings graced can send, in the default order of preference.
pub(crate) const ENCODINGS: [&str; 3] = ["br", "zstd", "gzip"];

/// `min_size` when not given: below this a response is sent as it is (Caddy's 512).
pub(crate) const DEFAULT_MIN_SIZE: u64 = 512;
/// `max_size` when not given: files above it are sent as they are (with `sendfile`).
pub(crate) const DEFAULT_MAX_SIZE: u64 = 8 << 20;
/// The largest `max_size` allowed: a compressed variant must fit the variant cache.
pub(crate) const MAX_MAX_SIZE: u64 = 32 << 20;

/// The media types compressed when `types` is not given: text and the structured text types
/// of the web; images, fonts (woff2 is compressed already), video and archives are not.
pub(crate) const DEFAULT_TYPES: [&str; 10] = [
    "text/*",
    "application/javascript",
    "application/json",
    "application/manifest+json",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/wasm",
    "image/svg+xml",
];

/// A site's compression settings (all off by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// Serve `FILE.br`, `FILE.zst`, `FILE.gz` next to `FILE` when the client accepts the coding
    /// and the sidecar is not older than the file.
    pub precompressed: bool,
    /// Compress responses of [`types`](Self::types) between `min_size` and `max_size` bytes,
    /// once per file version, keeping the result in a bounded cache.
    pub on_the_fly: bool,
    /// The codings offered, in the server's order of preference (ties in the client's
    /// q-values go to the first): `"br"`, `"zstd"` and `"gzip"`.
    pub encodings: Vec<String>,
    pub min_size: u64,
    pub max_size: u64,
    /// Media types (`type/subtype`, or `type/*`) that are compressed.
    pub types: Vec<String>,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            precompressed: false,
            on_the_fly: false,
            encodings: ENCODINGS.iter().map(|e| (*e).to_owned()).collect(),
            min_size: DEFAULT_MIN_SIZE,
            max_size: DEFAULT_MAX_SIZE,
            types: DEFAULT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}

impl Compression {
    /// Whether either kind of compression is on.
    pub fn enabled(&self) -> bool {
        self.precompressed || self.on_the_fly
    }

    /// Whether `content_type` (a `Content-Type` value, parameters allowed) is one to compress.
    pub fn compresses(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let major = essence.split('/').next().unwrap_or("");
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(prefix) => prefix.eq_ignore_ascii_case(major),
            None => t.eq_ignore_ascii_case(essence),
        })
    }
}

/// The table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompression {
    pub precompressed: Option<bool>,
    pub on_the_fly: Option<bool>,
    pub encodings: Option<Vec<Spanned<String>>>,
    pub min_size: Option<Spanned<i64>>,
    pub max_size: Option<Spanned<i64>>,
    pub types: Option<Vec<Spanned<String>>>,
}

/// A problem in the table: where, what, and what to do.
pub(crate) struct Problem {
    pub at: std::ops::Range<usize>,
    pub message: String,
    pub hint: &'static str,
}

/// Validates the table; problems are pushed to `problems`.
pub(crate) fn check(raw: Option<&RawCompression>, problems: &mut Vec<Problem>) -> Compression {
    let mut out = Compression::default();
    let Some(raw) = raw else { return out };
    let mut problem = |at: std::ops::Range<usize>, message: String, hint: &'static str| {
        problems.push(Problem { at, message, hint });
    };
    out.precompressed = raw.precompressed.unwrap_or(false);
    out.on_the_fly = raw.on_the_fly.unwrap_or(false);
    if let Some(list) = &raw.encodings {
        out.encodings.clear();
        for e in list {
            let name = e.get_ref().to_ascii_lowercase();
            if !ENCODINGS.contains(&name.as_str()) {
                problem(
                    e.span(),
                    format!("unknown encoding {:?}", e.get_ref()),
                    "use \"br\", \"zstd\" or \"gzip\"",
                );
            } else if out.encodings.contains(&name) {
                problem(e.span(), format!("encoding {name:?} is listed twice"), "list each encoding once");
            } else {
                out.encodings.push(name);
            }
        }
    }
    let mut size = |value: &Option<Spanned<i64>>, default: u64| -> u64 {
        let Some(value) = value else { return default };
        let n = *value.get_ref();
        if (0..=MAX_MAX_SIZE as i64).contains(&n) {
            n as u64
        } else {
            problem(
                value.span(),
                format!("{n} is out of range"),
                "give a size in bytes from 0 to 33554432 (32 MiB)",
            );
            default
        }
    };
    out.min_size = size(&raw.min_size, DEFAULT_MIN_SIZE);
    out.max_size = size(&raw.max_size, DEFAULT_MAX_SIZE);
    if out.min_size > out.max_size
        && let Some(at) = raw.min_size.as_ref().or(raw.max_size.as_ref())
    {
        problems.push(Problem {
            at: at.span(),
            message: format!("min_size {} is above max_size {}", out.min_size, out.max_size),
            hint: "make min_size at most max_size",
        });
    }
    if let Some(list) = &raw.types {
        out.types.clear();
        for t in list {
            let text = t.get_ref().trim().to_ascii_lowercase();
            let valid = match text.split_once('/') {
                Some((major, minor)) => {
                    let token = |s: &str| {
                        !s.is_empty()
                            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                    };
                    token(major) && (minor == "*" || token(minor))
                }
                None => false,
            };
            if valid {
                out.types.push(text);
            } else {
                problems.push(Problem {
                    at: t.span(),
                    message: format!("{:?} is not a media type", t.get_ref()),
                    hint: "write media types such as \"text/*\" or \"application/json\" (no parameters)",
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_match_by_essence_and_wildcard() {
        let c = Compression::default();
        assert!(c.compresses("text/html; charset=utf-8"));
        assert!(c.compresses("image/svg+xml"));
        assert!(c.compresses("application/json"));
        assert!(!c.compresses("image/png"));
        assert!(!c.compresses("application/octet-stream"));
        assert!(!c.compresses("font/woff2"));
    }
}
