//! Conditional requests and byte ranges (RFC 9110 §13, §14): revalidation precedence, 206, 416, If-Range.

use std::time::Duration;

use graced_testsupport::site::Site;

use super::{assert_small_error_page, get, must, request};
use crate::GRACED;

#[test]
fn revalidation_follows_rfc_9110_precedence() {
    let site = Site::new(GRACED);
    let server = site.start(&[]);
    let port = server.port;
    let first = get(port, "/index.html", &[]);
    let etag = must(&first, "etag").to_owned();
    let modified = must(&first, "last-modified").to_owned();

    let (r, _) = request(port, "GET", "/index.html", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "If-None-Match with the current ETag");
    assert!(r.body.is_empty(), "a 304 has no body, got {:?}", r.text());
    assert_eq!(r.header("etag"), Some(etag.as_str()), "a 304 repeats the ETag");

    // Weak comparison for If-None-Match (§13.1.2), and a list of tags.
    let weak = format!("W/{etag}");
    assert_eq!(get(port, "/index.html", &[("If-None-Match", &weak)]).status, 304);
    let list = format!("\"other\", {etag}");
    assert_eq!(get(port, "/index.html", &[("If-None-Match", &list)]).status, 304);
    assert_eq!(get(port, "/index.html", &[("If-None-Match", "*")]).status, 304);
    let (r, _) = request(port, "HEAD", "/index.html", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "HEAD revalidates too");

    let r = get(port, "/index.html", &[("If-Modified-Since", &modified)]);
    assert_eq!(r.status, 304, "If-Modified-Since with the Last-Modified value");
    assert!(r.body.is_empty());

    // If-None-Match wins over If-Modified-Since: a mismatching tag means 200 even though IMS would say 304.
    let r =
        get(port, "/index.html", &[("If-None-Match", "\"not-the-tag\""), ("If-Modified-Since", &modified)]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello\n"),
        "If-None-Match must win over If-Modified-Since"
    );

    // If-Modified-Since older than the file: 200.
    let r = get(port, "/index.html", &[("If-Modified-Since", "Thu, 01 Jan 2015 00:00:00 GMT")]);
    assert_eq!(r.status, 200);

    let r = get(port, "/index.html", &[("If-Match", "\"not-the-tag\"")]);
    assert_small_error_page(&r, 412);
    assert_eq!(get(port, "/index.html", &[("If-Match", &etag)]).status, 200);
    assert_eq!(
        get(port, "/index.html", &[("If-Unmodified-Since", "Thu, 01 Jan 2015 00:00:00 GMT")]).status,
        412
    );

    // A changed file gets a new ETag, and the old one no longer yields 304.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(site.path("www/index.html"), "hello again\n").unwrap();
    let r = get(port, "/index.html", &[("If-None-Match", &etag)]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello again\n"));
    assert_ne!(must(&r, "etag"), etag);
}

#[test]
fn single_byte_ranges_are_206_and_unsatisfiable_ones_416() {
    let site = Site::new(GRACED);
    let data = b"0123456789abcdefghij";
    let n = data.len();
    site.put("www/digits.txt", data);
    let server = site.start(&[]);
    let port = server.port;
    let etag = must(&get(port, "/digits.txt", &[]), "etag").to_owned();

    let r = get(port, "/digits.txt", &[("Range", "bytes=0-4")]);
    assert_eq!(r.status, 206);
    assert_eq!(must(&r, "content-range"), format!("bytes 0-4/{n}"));
    assert_eq!(must(&r, "content-length"), "5");
    assert_eq!(r.body, b"01234");

    let r = get(port, "/digits.txt", &[("Range", "bytes=-3")]);
    assert_eq!(r.status, 206);
    assert_eq!(must(&r, "content-range"), format!("bytes {}-{}/{n}", n - 3, n - 1));
    assert_eq!(r.body, b"hij");

    let r = get(port, "/digits.txt", &[("Range", "bytes=15-")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"fghij"[..]));
    assert_eq!(must(&r, "content-range"), format!("bytes 15-19/{n}"));

    let r = get(port, "/digits.txt", &[("Range", "bytes=10-999")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"abcdefghij"[..]), "a range past the end is clipped");

    let range = format!("bytes={n}-");
    let r = get(port, "/digits.txt", &[("Range", &range)]);
    assert_eq!(r.status, 416);
    assert_eq!(must(&r, "content-range"), format!("bytes */{n}"));

    // Several ranges closer than a part's headers are merged into one (see http::ranges).
    let r = get(port, "/digits.txt", &[("Range", "bytes=0-1,5-6")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &data[..7]), "close ranges merged");
    assert_eq!(must(&r, "content-range"), format!("bytes 0-6/{n}"));

    let r = get(port, "/digits.txt", &[("Range", "bytes=0-4"), ("If-Range", "\"stale\"")]);
    assert_eq!((r.status, r.body.as_slice()), (200, &data[..]), "If-Range with a stale ETag: the whole file");

    let r = get(port, "/digits.txt", &[("Range", "bytes=0-4"), ("If-Range", &etag)]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"01234"[..]), "If-Range with the current ETag");

    let r = get(port, "/digits.txt", &[("Range", "lines=0-4")]);
    assert_eq!(r.status, 200, "an unknown range unit is ignored");

    let (r, _) = request(port, "HEAD", "/digits.txt", &[("Range", "bytes=0-4")]);
    assert_eq!((r.status, r.body.len()), (200, 0), "HEAD ignores Range");
}
