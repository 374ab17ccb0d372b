//! `[[site.redirect]]` (exact, prefix, glob with captures; 301/302/307/308; the query kept)
//! and `canonical_host` (www ↔ apex), with no open redirect through `//host` or `\`.

use std::process::Command;

use graced_testsupport::site::Site;

use super::{get, must, send};
use crate::GRACED;

const RULES: &str = r#"
[[site.redirect]]
from = "/old.html"
to = "/new.html"

[[site.redirect]]
from = "/docs/**"
to = "/manual/$1"
status = 308

[[site.redirect]]
from = "/blog/*/*.html"
to = "/posts/$1/$2"
status = 302

[[site.redirect]]
from = "/go/**"
to = "/$1"
status = 307

[[site.redirect]]
from = "/away"
to = "https://example.org/landing?from=graced"
"#;

#[test]
fn exact_prefix_and_glob_redirects_keep_the_query() {
    let site = Site::new(GRACED);
    site.write_config(RULES);
    site.put("www/old.html", b"shadowed by the redirect");
    let server = site.start(&[]);
    let port = server.port;
    for (path, status, location) in [
        ("/old.html", 301, "/new.html"),
        ("/old.html?a=1&b=%20", 301, "/new.html?a=1&b=%20"),
        ("/docs/guide/intro.html?v=2", 308, "/manual/guide/intro.html?v=2"),
        ("/docs/", 308, "/manual/"),
        ("/blog/2026/hello.html", 302, "/posts/2026/hello"),
        ("/away?x=y", 301, "https://example.org/landing?from=graced&x=y"),
    ] {
        let r = get(port, path, &[]);
        assert_eq!((r.status, must(&r, "location")), (status, location), "{path}");
    }
    // Not matching: served or 404 as usual.
    assert_eq!(get(port, "/old.htmlx", &[]).status, 404);
    assert_eq!(get(port, "/blog/2026/deeper/hello.html", &[]).status, 404);
    assert_eq!(get(port, "/", &[]).status, 200);
    // HEAD gets the same redirect.
    let r = super::head(port, "/old.html", &[]);
    assert_eq!((r.status, must(&r, "location"), r.body.len()), (301, "/new.html", 0));

    // curl follows a redirect rule to the file.
    site.put("www/manual/a.txt", b"manual\n");
    let out = Command::new("curl")
        .args(["-sS", "-L", "-w", "\n%{http_code} %{num_redirects}"])
        .arg(format!("http://127.0.0.1:{port}/docs/a.txt"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "manual\n\n200 1");
}

#[test]
fn captures_cannot_make_an_open_redirect() {
    let site = Site::new(GRACED);
    site.write_config(RULES);
    let server = site.start(&[]);
    for path in [
        "/go//evil.example/x",
        "/go///evil.example",
        "/go/%2F%2Fevil.example",
        "/go/%5Cevil.example",
        "/go/\\evil.example",
    ] {
        let r = get(server.port, path, &[]);
        if r.status == 400 {
            continue; // refused outright (a raw backslash) is fine too
        }
        assert_eq!(r.status, 307, "{path}");
        let location = must(&r, "location");
        assert!(location.starts_with('/'), "{path} → {location}");
        let second = location.as_bytes()[1];
        assert!(second != b'/' && second != b'\\', "{path} → {location}: another host");
    }
    let r = get(server.port, "/go//evil.example/x", &[]);
    assert_eq!(must(&r, "location"), "/evil.example/x");
}

#[test]
fn other_hosts_of_a_site_go_to_its_canonical_host() {
    let site = Site::new(GRACED);
    site.write_config(
        "hosts = [\"example.test\", \"www.example.test\"]\ncanonical_host = \"example.test\"\n",
    );
    let server = site.start(&[]);
    let port = server.port;
    let r = send(port, "GET", &format!("www.example.test:{port}"), "/a/b?c=d", &[]);
    assert_eq!(
        (r.status, must(&r, "location")),
        (301, format!("http://example.test:{port}/a/b?c=d").as_str())
    );
    let r = send(port, "GET", "WWW.example.test", "/", &[]);
    assert_eq!((r.status, must(&r, "location")), (301, "http://example.test/"));
    let r = send(port, "GET", &format!("example.test:{port}"), "/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
}
