//! `[[site.headers]]`: set, add, remove and default by glob against the resolved file
//! (index files included), on 200, 206, 304 and errors; `Cache-Control: no-cache` by default
//! on unhashed files, `immutable` only where a rule says so.

use graced_testsupport::site::Site;

use super::{all, get, must};
use crate::GRACED;

const RULES: &str = r#"
[[site.headers]]
path = "/assets/*.*.{css,js}"
set = { Cache-Control = "public, max-age=31536000, immutable" }

[[site.headers]]
path = "/**.html"
default = { X-Frame-Options = "DENY" }
add = { Link = "</assets/app.0a1b2c.css>; rel=preload; as=style" }

[[site.headers]]
path = "/**"
set = { X-Content-Type-Options = "nosniff" }
remove = ["Server"]
"#;

#[test]
fn rules_apply_to_the_resolved_file_on_every_status() {
    let site = Site::new(GRACED);
    site.write_config(RULES);
    site.put("www/assets/app.0a1b2c.css", b"body{}\n");
    site.put("www/assets/plain.css", b"p{}\n");
    site.put("www/docs/index.html", b"<p>docs</p>\n");
    let server = site.start(&[]);
    let port = server.port;

    // A hashed asset: immutable on 200, 206 and 304 alike.
    let r = get(port, "/assets/app.0a1b2c.css", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(must(&r, "cache-control"), "public, max-age=31536000, immutable");
    assert_eq!(must(&r, "x-content-type-options"), "nosniff");
    assert_eq!(r.header("server"), None, "remove = [\"Server\"]");
    let etag = must(&r, "etag").to_owned();
    let r = get(port, "/assets/app.0a1b2c.css", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert_eq!(must(&r, "cache-control"), "public, max-age=31536000, immutable");
    assert_eq!(must(&r, "x-content-type-options"), "nosniff");
    let r = get(port, "/assets/app.0a1b2c.css", &[("Range", "bytes=0-1")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"bo"[..]));
    assert_eq!(must(&r, "cache-control"), "public, max-age=31536000, immutable");

    // An unhashed file is never cached long by default: revalidated every time.
    let r = get(port, "/assets/plain.css", &[]);
    assert_eq!(must(&r, "cache-control"), "no-cache");
    let r = get(port, "/assets/plain.css", &[("If-None-Match", must(&r, "etag"))]);
    assert_eq!((r.status, must(&r, "cache-control")), (304, "no-cache"));

    // Index files: `/docs/` and `/` match `/**.html` through the file they resolve to.
    for path in ["/", "/docs/", "/docs/index.html"] {
        let r = get(port, path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(must(&r, "x-frame-options"), "DENY", "{path}");
        assert_eq!(all(&r, "link"), ["</assets/app.0a1b2c.css>; rel=preload; as=style"], "{path}");
        assert_eq!(must(&r, "cache-control"), "no-cache", "{path}");
    }

    // Errors get the rules too (nginx drops add_header on 4xx without `always`), but no
    // default Cache-Control.
    let r = get(port, "/missing.html", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(must(&r, "x-content-type-options"), "nosniff");
    assert_eq!(must(&r, "x-frame-options"), "DENY");
    assert_eq!(r.header("cache-control"), None);
    let r = get(port, "/docs", &[]);
    assert_eq!((r.status, must(&r, "x-content-type-options")), (301, "nosniff"));
}

#[test]
fn cache_control_false_sends_none() {
    let site = Site::new(GRACED);
    site.write_config("cache_control = false\n");
    let server = site.start(&[]);
    let r = get(server.port, "/", &[]);
    assert_eq!((r.status, r.header("cache-control")), (200, None));
}
