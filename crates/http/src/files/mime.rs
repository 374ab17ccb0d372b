//! The `Content-Type` of a file, by its name's extension.

/// The Content-Type for a file name, by extension; text gets `charset=utf-8`. The common
/// web types are matched here without allocating; mime_guess answers the rest.
pub(crate) fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let mut lower = [0u8; 16];
    let ext = if ext.bytes().any(|b| b.is_ascii_uppercase()) && ext.len() <= lower.len() {
        lower[..ext.len()].copy_from_slice(ext.as_bytes());
        lower[..ext.len()].make_ascii_lowercase();
        std::str::from_utf8(&lower[..ext.len()]).unwrap_or("")
    } else if ext.len() > lower.len() {
        // Longer than any extension matched below; mime_guess ignores case itself.
        return mime_guess::from_ext(ext).first_raw().unwrap_or("application/octet-stream");
    } else {
        ext
    };
    match ext {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "xml" => "application/xml",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "wasm" => "application/wasm",
        // Precompressed sidecars (`.gz` is looked up on every request that accepts gzip)
        // and the common binary web types: the same answers as mime_guess, without its search.
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        _ => mime_guess::from_ext(ext).first_raw().unwrap_or("application/octet-stream"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_ignore_the_extension_case() {
        assert_eq!(content_type("a.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("a.Css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a.png"), "image/png");
        assert_eq!(content_type("a.PNG"), "image/png");
        assert_eq!(content_type("noextension"), "application/octet-stream");
        assert_eq!(content_type("a.averyveryverylongextension"), "application/octet-stream");
    }

    #[test]
    fn the_fast_answers_are_mime_guess_answers() {
        for ext in ["gz", "png", "jpg", "jpeg", "webp", "woff2"] {
            let guessed = mime_guess::from_ext(ext).first_raw().unwrap();
            assert_eq!(content_type(&format!("a.{ext}")), guessed, "{ext}");
        }
    }
}
