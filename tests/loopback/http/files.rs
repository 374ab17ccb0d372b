//! GET and HEAD of static files: types, lengths, validators, directories, error pages, keep-alive.

use std::time::Duration;

use graced_testsupport::site::Site;

use super::{assert_small_error_page, get, must, request};
use crate::GRACED;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

#[test]
fn get_and_head_send_type_length_validators_and_accept_ranges() {
    let site = Site::new(GRACED);
    site.put("www/style.css", b"body { color: red }\n");
    site.put("www/logo.png", PNG);
    site.put("www/blob.qqqz", b"\x00\x01\x02 opaque");
    site.put("www/sub/index.html", b"<p>sub</p>\n");
    let server = site.start(&[]);
    let cases: [(&str, &str, &[u8]); 6] = [
        ("/", "text/html; charset=utf-8", b"hello\n"),
        ("/index.html", "text/html; charset=utf-8", b"hello\n"),
        ("/sub/", "text/html; charset=utf-8", b"<p>sub</p>\n"),
        ("/style.css", "text/css; charset=utf-8", b"body { color: red }\n"),
        ("/logo.png", "image/png", PNG),
        ("/blob.qqqz", "application/octet-stream", b"\x00\x01\x02 opaque"),
    ];
    for (path, content_type, body) in cases {
        let r = get(server.port, path, &[]);
        assert_eq!(r.status, 200, "GET {path}");
        assert_eq!(must(&r, "content-type"), content_type, "GET {path}");
        assert_eq!(must(&r, "content-length"), body.len().to_string(), "GET {path}");
        assert_eq!(r.body, body, "GET {path}");
        assert_eq!(must(&r, "accept-ranges"), "bytes", "GET {path}");
        let etag = must(&r, "etag");
        assert!(etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'), "GET {path}: ETag {etag:?}");
        let modified = httpdate::parse_http_date(must(&r, "last-modified")).expect("an HTTP-date");
        let age = std::time::SystemTime::now()
            .duration_since(modified)
            .expect("Last-Modified is not in the future");
        assert!(age < Duration::from_secs(120), "GET {path}: Last-Modified is {age:?} old");

        let (head, raw) = request(server.port, "HEAD", path, &[]);
        assert_eq!(head.status, 200, "HEAD {path}");
        for name in ["content-type", "content-length", "etag", "last-modified", "accept-ranges"] {
            assert_eq!(head.header(name), r.header(name), "HEAD {path}: {name}");
        }
        assert!(head.body.is_empty(), "HEAD {path} sent a body: {:?} (raw {} bytes)", head.body, raw.len());
    }

    // A directory without the slash is redirected, the query kept.
    let r = get(server.port, "/sub", &[]);
    assert_eq!((r.status, must(&r, "location")), (301, "/sub/"));
    let r = get(server.port, "/sub?x=1&y=%20", &[]);
    assert_eq!((r.status, must(&r, "location")), (301, "/sub/?x=1&y=%20"));

    // A directory without an index file is forbidden; nothing is listed.
    std::fs::create_dir(site.path("www/empty")).unwrap();
    site.put("www/noindex/secret-name.txt", b"x");
    assert_small_error_page(&get(server.port, "/empty/", &[]), 403);
    let r = get(server.port, "/noindex/", &[]);
    assert_small_error_page(&r, 403);
    assert!(!r.text().contains("secret-name"));

    // A missing file is a 404 with a small HTML page whose length is declared.
    let r = get(server.port, "/missing.html", &[]);
    assert_small_error_page(&r, 404);
    assert_eq!(must(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(must(&r, "content-length"), r.body.len().to_string());
    let (head, _) = request(server.port, "HEAD", "/missing.html", &[]);
    assert_eq!(head.status, 404);
    assert!(head.body.is_empty(), "HEAD of a 404 sent a body");
}

#[test]
fn keep_alive_connection_serves_several_requests_including_head() {
    let site = Site::new(GRACED);
    let server = site.start(&[]);
    let mut client = server.connect();
    for _ in 0..3 {
        let r = client.get("/");
        assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
        // A HEAD on the same connection: if it carried a body, the next GET would misparse.
        let head = client.request("HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!((head.status, must(&head, "content-length")), (200, "6"));
    }
}

#[test]
fn every_change_is_served_by_the_very_next_request() {
    // The path cache trusts an unchanged path without a statx once it is watched; each kind
    // of change must still reach the next request on the same keep-alive connection, with
    // no pause between (in-place rewrites keep the size and put the old mtime back).
    let site = Site::new(GRACED);
    let server = site.start(&[]);
    let mut client = server.connect();
    let set_mtime = |relative: &str, mtime: std::time::SystemTime| {
        let file = std::fs::File::options().write(true).open(site.path(relative)).unwrap();
        file.set_modified(mtime).unwrap();
    };
    let body = |n: usize, len: usize| format!("{n:06}").repeat(len / 6).into_bytes();
    for (name, len) in [("small.txt", 600), ("medium.txt", 60_000)] {
        let relative = format!("www/deep/er/{name}");
        let path = format!("/deep/er/{name}");
        for n in 0..40 {
            let want = body(n, len);
            match n % 4 {
                0 | 1 => {
                    let mtime = site.path(&relative).metadata().map(|m| m.modified().unwrap());
                    site.put(&relative, &want);
                    if let Ok(mtime) = mtime {
                        set_mtime(&relative, mtime);
                    }
                }
                2 => {
                    site.put("www/deep/er/.tmp", &want);
                    std::fs::rename(site.path("www/deep/er/.tmp"), site.path(&relative)).unwrap();
                }
                _ => {
                    // A directory on the way swapped for another with the same names.
                    site.put(&format!("www/next/er/{name}"), &want);
                    std::fs::rename(site.path("www/deep"), site.path("www/gone")).unwrap();
                    std::fs::rename(site.path("www/next"), site.path("www/deep")).unwrap();
                    std::fs::remove_dir_all(site.path("www/gone")).unwrap();
                }
            }
            for _ in 0..2 {
                let r = client.get(&path);
                assert_eq!(r.status, 200, "{path} after change {n}");
                assert!(r.body == want, "{path} after change {n}: stale content served");
            }
        }
        std::fs::remove_file(site.path(&relative)).unwrap();
        assert_eq!(client.get(&path).status, 404, "{path} removed");
    }
}
