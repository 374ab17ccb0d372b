//! Path safety: traversal, symlinks leaving the root, hidden files.

use std::io::Write;
use std::net::TcpStream;

use graced_testsupport::http::{exchange, parse_raw, read_to_eof};
use graced_testsupport::pathwall;
use graced_testsupport::site::Site;

use super::{PASSWD_MARK, assert_serving, assert_small_error_page, get, request};
use crate::GRACED;

fn assert_passwd_exists() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(passwd.contains(PASSWD_MARK), "this check needs an /etc/passwd that contains {PASSWD_MARK:?}");
}

#[test]
fn traversal_attempts_never_return_etc_passwd() {
    assert_passwd_exists();
    let site = Site::new(GRACED);
    let server = site.start(&[]);
    let cases: [&[u8]; 14] = [
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /../../../../../../../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /%2E%2E/%2E%2E/etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /.%2e/.%2e/etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /..%2f..%2fetc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /..%2F..%2F..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /..\\..\\etc\\passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /..%5c..%5cetc%5cpasswd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /index.html%00.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /%2e%2e%00/etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET http://localhost/../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET //etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /sub/../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ];
    for raw in cases {
        let line = String::from_utf8_lossy(raw.split(|b| *b == b'\r').next().unwrap()).into_owned();
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.write_all(raw).unwrap();
        let answer = read_to_eof(&mut stream);
        let text = String::from_utf8_lossy(&answer);
        assert!(!text.contains(PASSWD_MARK), "{line}: the response contains /etc/passwd:\n{text}");
        let r = parse_raw(&answer);
        println!("{line} -> {}", r.status);
        assert!([400, 403, 404].contains(&r.status), "{line}: status {} (headers {:?})", r.status, r.headers);
        assert_serving(&server);
    }
}

#[test]
fn symlinks_are_followed_only_while_they_stay_beneath_the_root() {
    use std::os::unix::fs::symlink;
    assert_passwd_exists();
    let site = Site::new(GRACED);
    site.put("www/sub/page.html", b"<p>page</p>\n");
    site.put("www/sub/index.html", b"<p>sub index</p>\n");
    site.put("outside.txt", b"outside the root\n");
    let www = site.path("www");
    symlink("/etc", www.join("etclink")).unwrap();
    symlink("/etc/passwd", www.join("passwdlink")).unwrap();
    symlink("..", www.join("uplink")).unwrap();
    symlink("../outside.txt", www.join("outside-link.txt")).unwrap();
    symlink(site.path("www/index.html"), www.join("absolute-inside.html")).unwrap();
    symlink("index.html", www.join("alias.html")).unwrap();
    symlink("sub", www.join("subalias")).unwrap();
    let server = site.start(&[]);
    let port = server.port;

    for path in
        ["/etclink/passwd", "/passwdlink", "/uplink/outside.txt", "/uplink/graced.toml", "/outside-link.txt"]
    {
        let (r, raw) = request(port, "GET", path, &[]);
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(PASSWD_MARK), "GET {path} returned /etc/passwd");
        assert!(
            !text.contains("outside the root") && !text.contains("pid_file"),
            "GET {path} left the root: {text}"
        );
        assert_eq!(r.status, 403, "GET {path}");
    }
    assert_eq!(get(port, "/uplink/", &[]).status, 403);
    assert_eq!(get(port, "/etclink/", &[]).status, 403);

    // Inside the root, symlinks are served like the files they name.
    for (path, body) in [
        ("/alias.html", "hello\n"),
        ("/subalias/page.html", "<p>page</p>\n"),
        ("/subalias/", "<p>sub index</p>\n"),
    ] {
        let r = get(port, path, &[]);
        assert_eq!((r.status, r.text().as_str()), (200, body), "GET {path}");
    }
    // An absolute symlink is refused even when its target is inside the root
    // (openat2 RESOLVE_BENEATH: absolute links cannot be resolved beneath a directory).
    assert_eq!(get(port, "/absolute-inside.html", &[]).status, 403);
}

#[test]
fn hidden_files_are_404_unless_the_site_allows_them_but_well_known_is_served() {
    let site = Site::new(GRACED);
    site.put("www/.git/config", b"[core]\n");
    site.put("www/.env", b"SECRET=1\n");
    site.put("www/.well-known/x", b"acme\n");
    site.put("www/sub/.hidden.html", b"h\n");
    // The same root again, for a host whose site serves hidden files.
    site.write_config("\n[[site]]\nhosts = [\"dots.test\"]\nroot = \"www\"\nhidden_files = true\n");
    let server = site.start(&[]);
    let port = server.port;
    for path in
        ["/.git/config", "/.git/", "/.env", "/%2egit/config", "/sub/.hidden.html", "/sub/%2Ehidden.html"]
    {
        let r = get(port, path, &[]);
        assert_small_error_page(&r, 404);
        assert!(!r.text().contains("core") && !r.text().contains("SECRET"), "GET {path}");
    }
    let r = get(port, "/.well-known/x", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "acme\n"));

    let dots = |path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: dots.test\r\nConnection: close\r\n\r\n");
        exchange(port, raw.as_bytes()).0
    };
    let r = dots("/.git/config");
    assert_eq!((r.status, r.text().as_str()), (200, "[core]\n"), "hidden_files = true");
    assert_eq!(dots("/.env").status, 200);
    assert_eq!(dots("/.well-known/x").status, 200);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// The property tests of graced-http's `files/tests.rs`, through the real binary: a random
    /// tree with symlinks in and out of `www/`, random request paths sent raw over loopback.
    /// A 200's body is exactly a file the model (`graced_testsupport::pathwall`) allows, no
    /// answer carries a byte of a file outside the root, and the server serves on.
    #[test]
    fn random_paths_over_random_trees_never_leave_the_root(
        nodes in proptest::collection::vec(pathwall::node(), 4..24),
        paths in proptest::collection::vec(pathwall::request_path(), 40),
    ) {
        let site = Site::new(GRACED);
        let tree = pathwall::build(site.dir.path(), &nodes);
        site.write_config("hidden_files = true\n");
        let server = site.start(&[]);
        let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
        for raw in &paths {
            let (r, bytes) = request(server.port, "GET", raw, &[]);
            *statuses.entry(r.status).or_default() += 1;
            let text = String::from_utf8_lossy(&bytes);
            proptest::prop_assert!(!text.contains("OUTSIDE"), "GET {raw}: a file outside the root: {text}");
            if r.status == 200 {
                pathwall::check_served(&tree, raw, &r.body)?;
            }
        }
        println!("random paths by status: {statuses:?}; plain files: {}", tree.plain_files.len());
        // Plainly spelled paths to real files are served with their bytes.
        for parts in &tree.plain_files {
            let raw = pathwall::plain_request(parts);
            let r = get(server.port, &raw, &[]);
            proptest::prop_assert_eq!(r.status, 200, "GET {}", raw);
            pathwall::check_served(&tree, &raw, &r.body)?;
        }
    }
}
