//! Compression and several ranges where bodies are copied, not sent with `sendfile`: HTTP/2
//! over TLS and h2c, and HTTP/1.1 over TLS, seen by curl (which decodes gzip, br and zstd).

use super::H2Site;
use crate::http::compression::html as page_of;

#[test]
fn compressed_variants_and_multipart_ranges_over_tls_and_http2() {
    let h2 = H2Site::new("[site.compression]\non_the_fly = true\n");
    let page = page_of(100 * 1024);
    h2.site.put("www/page.html", &page);
    let _server = h2.site.start(&[]);
    for (round, ae) in ["br", "br", "zstd", "gzip"].iter().enumerate() {
        // The first br request waits for the compression; the second is served from the cache.
        for (what, args) in [
            ("h2 over TLS", vec!["--http2".to_owned(), h2.https("/page.html")]),
            ("h2c", vec!["--http2-prior-knowledge".to_owned(), h2.h2c("/page.html")]),
            ("HTTP/1.1 over TLS", vec!["--http1.1".to_owned(), h2.https("/page.html")]),
        ] {
            let header = format!("Accept-Encoding: {ae}");
            let mut all = vec!["--compressed", "-D", "/dev/stderr", "-H", &header];
            all.extend(args.iter().map(String::as_str));
            let out = h2.curl(&all);
            let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
            assert!(out.status.success(), "{what} {ae}: {head}");
            assert!(head.contains(&format!("content-encoding: {ae}")), "{what} {ae} (round {round}): {head}");
            assert!(head.contains("vary: accept-encoding"), "{what}: {head}");
            assert_eq!(out.stdout, page, "{what} {ae} decodes to the page");
        }
    }
    // Several ranges of the big file, over HTTP/2 and TLS: multipart/byteranges.
    for args in [["--http2", &h2.https("/big.bin")], ["--http2-prior-knowledge", &h2.h2c("/big.bin")]] {
        let mut all = vec!["-D", "/dev/stderr", "-r", "0-9,2000000-2000009"];
        all.extend(args.iter().map(|s| -> &str { s }));
        let out = h2.curl(&all);
        let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        assert!(head.starts_with("http/2 206"), "{head}");
        assert!(head.contains("content-type: multipart/byteranges; boundary="), "{head}");
        let body = out.stdout;
        let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(has(&h2.big[..10]) && has(&h2.big[2_000_000..2_000_010]), "both parts' bytes");
        assert!(
            has(format!("content-range: bytes 2000000-2000009/{}", h2.big.len()).as_bytes())
                || has(format!("Content-Range: bytes 2000000-2000009/{}", h2.big.len()).as_bytes())
        );
    }
}
