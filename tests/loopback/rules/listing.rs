//! `directory_listing`: opt-in, HTML or JSON by `Accept` with `Vary: Accept`, names escaped
//! and links percent-encoded (a file named `<img src=x onerror=alert(1)>`), sorted, capped,
//! hidden files hidden.

use graced_testsupport::site::Site;

use super::{get, head, must};
use crate::GRACED;

const EVIL: &str = "<img src=x onerror=alert(1)>";

fn site(extra: &str) -> Site {
    let site = Site::new(GRACED);
    site.write_config(extra);
    site.put(&format!("www/files/{EVIL}"), b"x");
    site.put("www/files/b.txt", b"bb");
    site.put("www/files/a b.txt", b"a");
    site.put("www/files/.secret", b"s");
    site.put("www/files/zdir/c.txt", b"c");
    site.put("www/withindex/index.html", b"index\n");
    site
}

#[test]
fn listings_are_escaped_sorted_and_hide_hidden_files() {
    let site = site("directory_listing = true\n");
    let server = site.start(&[]);
    let r = get(server.port, "/files/", &[("Accept", "text/html")]);
    assert_eq!(r.status, 200);
    assert_eq!(must(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(must(&r, "vary"), "Accept");
    assert_eq!(must(&r, "content-length"), r.body.len().to_string());
    let page = r.text();
    assert!(!page.contains("<img"), "an unescaped name:\n{page}");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"), "{page}");
    assert!(page.contains("href=\"./%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E\""), "{page}");
    assert!(page.contains("href=\"./a%20b.txt\""), "{page}");
    assert!(!page.contains("secret"), "a hidden file is listed:\n{page}");
    let order: Vec<usize> =
        ["./zdir/", "./%3Cimg", "./a%20b.txt", "./b.txt"].iter().map(|n| page.find(n).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "directories first, then by name: {order:?}\n{page}");
    // The encoded link leads to the file.
    let r = get(server.port, "/files/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "x"));

    let r = get(server.port, "/files/", &[("Accept", "application/json")]);
    assert_eq!((r.status, must(&r, "content-type"), must(&r, "vary")), (200, "application/json", "Accept"));
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let names: Vec<&str> =
        json["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["zdir", EVIL, "a b.txt", "b.txt"]);
    assert_eq!(json["entries"][3]["size"], 2);
    assert_eq!(json["entries"][0]["type"], "directory");
    assert_eq!(json["truncated"], false);

    // Revalidated by its ETag: 304 while unchanged, 200 once a file is added.
    let r = get(server.port, "/files/", &[]);
    let etag = must(&r, "etag").to_owned();
    let r = get(server.port, "/files/", &[("If-None-Match", &etag)]);
    assert_eq!((r.status, must(&r, "vary"), must(&r, "cache-control")), (304, "Accept", "no-cache"));
    site.put("www/files/new.txt", b"n");
    let r = get(server.port, "/files/", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 200);
    std::fs::remove_file(site.path("www/files/new.txt")).unwrap();

    let h = head(server.port, "/files/", &[]);
    assert_eq!((h.status, h.body.len()), (200, 0));
    // A directory with an index file is served its index; without the slash, redirected.
    assert_eq!(get(server.port, "/withindex/", &[]).text(), "index\n");
    assert_eq!(get(server.port, "/files", &[]).status, 301);
}

#[test]
fn listings_are_capped_and_off_by_default() {
    let site = site("directory_listing = { max_entries = 2 }\n");
    let server = site.start(&[]);
    let r = get(server.port, "/files/", &[("Accept", "application/json")]);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["entries"].as_array().unwrap().len(), 2);
    assert_eq!(json["truncated"], true);
    let r = get(server.port, "/files/", &[]);
    assert!(r.text().contains("More entries are not shown"));
    drop(server);

    let off = self::site("");
    let server = off.start(&[]);
    let r = get(server.port, "/files/", &[]);
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("b.txt"));
}
