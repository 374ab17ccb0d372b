//! `clean_urls` (`/about` → about.html → about/index.html) and `spa_fallback` (index.html
//! for a GET or HEAD that accepts HTML; `/missing.js` stays 404; `Cache-Control: no-cache`
//! and `Vary: Accept`).

use graced_testsupport::site::Site;

use super::{get, head, must, send};
use crate::GRACED;

const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");

#[test]
fn clean_urls_serve_html_and_index_files_without_the_suffix() {
    let site = Site::new(GRACED);
    site.write_config("clean_urls = true\n");
    site.put("www/about.html", b"about\n");
    site.put("www/team/index.html", b"team\n");
    site.put("www/both.html", b"both.html\n");
    site.put("www/both/index.html", b"both/index\n");
    site.put("www/plain", b"plain\n");
    let server = site.start(&[]);
    let port = server.port;
    for (path, body) in [
        ("/about", "about\n"),
        ("/about.html", "about\n"),
        ("/about?x=1", "about\n"),
        ("/team", "team\n"),
        ("/team/", "team\n"),
        ("/both", "both.html\n"),
        ("/plain", "plain\n"),
    ] {
        let r = get(port, path, &[]);
        assert_eq!((r.status, r.text().as_str()), (200, body), "{path}");
    }
    let r = get(port, "/about", &[]);
    assert_eq!(must(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(get(port, "/missing", &[]).status, 404);
    assert_eq!(get(port, "/about/", &[]).status, 404);
}

#[test]
fn the_spa_fallback_answers_only_html_navigation() {
    let site = Site::new(GRACED);
    site.write_config(
        "spa_fallback = \"/index.html\"\n\n[[site.headers]]\npath = \"/index.html\"\nset = { Cache-Control = \"max-age=3600\" }\n",
    );
    site.put("www/app.js", b"console.log(1)\n");
    let server = site.start(&[]);
    let port = server.port;

    let r = get(port, "/users/42/settings", &[BROWSER]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
    assert_eq!(must(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(must(&r, "cache-control"), "no-cache", "the fallback is never cached as the route");
    assert_eq!(must(&r, "vary"), "Accept");
    let h = head(port, "/users/42/settings", &[BROWSER]);
    assert_eq!((h.status, must(&h, "content-length"), h.body.len()), (200, "6", 0));
    // A route whose last segment has an unknown extension is still a route.
    assert_eq!(get(port, "/users/jane.doe", &[BROWSER]).status, 200);

    // Assets, APIs and other methods stay 404 / 405.
    for (path, accept) in [
        ("/missing.js", BROWSER.1),
        ("/img/missing.png", BROWSER.1),
        ("/users/42", "*/*"),
        ("/users/42", "application/json"),
        ("/users/42", "text/html;q=0"),
    ] {
        let r = get(port, path, &[("Accept", accept)]);
        assert_eq!(r.status, 404, "{path} with Accept: {accept}");
    }
    let r = get(port, "/users/42", &[("Accept", "application/json")]);
    assert_eq!(must(&r, "vary"), "Accept", "the 404 depends on Accept too");
    let r = send(port, "POST", "localhost", "/users/42", &[BROWSER, ("Content-Length", "0")]);
    assert_eq!(r.status, 405);

    // Real files are served as themselves, with the rules' Cache-Control.
    let r = get(port, "/app.js", &[BROWSER]);
    assert_eq!((r.status, r.text().as_str()), (200, "console.log(1)\n"));
    let r = get(port, "/index.html", &[BROWSER]);
    assert_eq!(must(&r, "cache-control"), "max-age=3600");
    assert_eq!(r.header("vary"), None);
}
