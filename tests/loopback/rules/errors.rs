//! `error_pages`: the site's page for a status, its class or the default, served with the
//! real status (never a redirect), HEAD with the same headers and no body, the error's own
//! headers (Allow, WWW-Authenticate) kept.

use graced_testsupport::site::Site;

use super::{get, head, must, send};
use crate::GRACED;

#[test]
fn error_pages_keep_the_status_and_head_matches_get() {
    let site = Site::new(GRACED);
    site.write_config("error_pages = { 404 = \"/errors/404.html\", \"4xx\" = \"errors/4xx.html\", \"5xx\" = \"/errors/5xx.html\" }\n");
    site.put("www/errors/404.html", b"<h1>Nothing here</h1>\n");
    site.put("www/errors/4xx.html", b"<h1>Client error</h1>\n");
    site.put("www/errors/5xx.html", b"<h1>Our fault</h1>\n");
    site.put("www/noindex/a.txt", b"a");
    let server = site.start(&[]);
    let port = server.port;

    for (path, status, body) in [
        ("/missing.html", 404, "<h1>Nothing here</h1>\n"),
        ("/a/b/c", 404, "<h1>Nothing here</h1>\n"),
        ("/noindex/", 403, "<h1>Client error</h1>\n"),
        ("/..%2fx", 404, "<h1>Nothing here</h1>\n"),
    ] {
        let r = get(port, path, &[]);
        assert_eq!((r.status, r.text().as_str()), (status, body), "GET {path}");
        assert_eq!(must(&r, "content-type"), "text/html; charset=utf-8");
        assert_eq!(must(&r, "content-length"), body.len().to_string());
        assert_eq!(r.header("location"), None);
        let h = head(port, path, &[]);
        assert_eq!(h.status, status, "HEAD {path}");
        assert!(h.body.is_empty(), "HEAD {path} sent a body");
        for name in ["content-type", "content-length"] {
            assert_eq!(h.header(name), r.header(name), "HEAD {path}: {name}");
        }
    }
    // 405 keeps its Allow header; a conditional request for an error page is still a 404.
    let r = send(port, "DELETE", "localhost", "/", &[]);
    assert_eq!(
        (r.status, r.text().as_str(), must(&r, "allow")),
        (405, "<h1>Client error</h1>\n", "GET, HEAD, OPTIONS")
    );
    let r = get(port, "/missing.html", &[("If-None-Match", "*"), ("Range", "bytes=0-1")]);
    assert_eq!((r.status, r.text().as_str()), (404, "<h1>Nothing here</h1>\n"));

    // Removing the page on disk falls back to the built-in page, still a 404.
    std::fs::remove_file(site.path("www/errors/404.html")).unwrap();
    let r = get(port, "/missing.html", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "<h1>Client error</h1>\n", "the 4xx page is next in line");
}

#[test]
fn a_default_page_covers_every_error() {
    let site = Site::new(GRACED);
    site.write_config("error_pages = { default = \"oops.html\" }\n");
    site.put("www/oops.html", b"oops\n");
    let server = site.start(&[]);
    let r = get(server.port, "/nope", &[]);
    assert_eq!((r.status, r.text().as_str()), (404, "oops\n"));
    // The page itself is still a normal file at its own path.
    let r = get(server.port, "/oops.html", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "oops\n"));
}
