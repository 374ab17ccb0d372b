//! Methods, malformed and oversized requests, header limits, and virtual hosts chosen by Host.

use graced_testsupport::http::exchange;
use graced_testsupport::site::Site;

use super::{assert_serving, assert_small_error_page, get, must, request};
use crate::GRACED;

const SMALL_LIMITS: &str = "[limits]\nmax_request_line = 1024\nmax_header_bytes = 2048\nmax_headers = 20\n";

#[test]
fn unsupported_methods_get_405_with_allow_and_options_204() {
    let site = Site::new(GRACED);
    let server = site.start(&[]);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let raw = format!(
            "{method} /index.html HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        );
        let (r, _) = exchange(server.port, raw.as_bytes());
        assert_small_error_page(&r, 405);
        assert_eq!(must(&r, "allow"), "GET, HEAD, OPTIONS", "{method}");
    }
    for target in ["/", "*"] {
        let (r, _) = request(server.port, "OPTIONS", target, &[]);
        assert_eq!(r.status, 204, "OPTIONS {target}");
        assert_eq!(must(&r, "allow"), "GET, HEAD, OPTIONS");
        assert!(r.body.is_empty());
    }
    // The file was not touched.
    assert_serving(&server);
}

#[test]
fn malformed_and_oversized_requests_get_400_414_431_and_the_server_keeps_serving() {
    let site = Site::new(GRACED);
    site.write_config(SMALL_LIMITS);
    let server = site.start(&[]);
    let port = server.port;

    // HTTP/1.1 requires Host (RFC 9112 §3.2); HTTP/1.0 does not.
    let (r, _) = exchange(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_small_error_page(&r, 400);
    let (r, _) = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400, "two Host fields");
    let (r, _) = exchange(port, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "HTTP/1.0 without Host");
    let (r, _) = exchange(port, b"GARBAGE\r\n\r\n");
    assert_eq!(r.status, 400, "not a request line");
    assert_serving(&server);

    // A target just over max_request_line (1024): 414.
    let long = format!("/{}", "a".repeat(1100));
    let r = get(port, &long, &[]);
    assert_small_error_page(&r, 414);
    assert_serving(&server);

    // Header fields totalling more than max_header_bytes (2048): 431.
    let big = "v".repeat(900);
    let r = get(port, "/", &[("X-A", &big), ("X-B", &big), ("X-C", &big)]);
    assert_small_error_page(&r, 431);
    assert_serving(&server);
    // One field far beyond anything the server buffers: still 431, not a hang or a crash.
    let huge = "v".repeat(20_000);
    let (r, _) = request(port, "GET", "/", &[("X-Huge", &huge)]);
    assert_eq!(r.status, 431, "a 20 kB header field");
    assert_serving(&server);

    // More than max_headers (20) fields: 431 (hyper's own answer).
    let names: Vec<String> = (0..30).map(|i| format!("X-Field-{i}")).collect();
    let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let (r, _) = request(port, "GET", "/", &fields);
    assert_eq!(r.status, 431, "30 header fields with max_headers = 20");
    assert_serving(&server);
    // Exactly at the limit is fine (Host and Connection are 2 of the 20).
    let (r, _) = request(port, "GET", "/", &fields[..18]);
    assert_eq!(r.status, 200, "20 header fields with max_headers = 20");
}

#[test]
fn a_target_longer_than_the_whole_head_buffer_is_still_414() {
    // max_request_line 1024 + max_header_bytes 2048 + 1024 slack = the 4096-byte head hyper buffers.
    let site = Site::new(GRACED);
    site.write_config(SMALL_LIMITS);
    let server = site.start(&[]);
    let long = format!("/{}", "a".repeat(6000));
    let (r, _) = request(server.port, "GET", &long, &[]);
    assert_eq!(
        r.status, 414,
        "a 6000-byte target with max_request_line = 1024 is URI Too Long (RFC 9110 §15.5.15); headers {:?}",
        r.headers
    );
    assert_serving(&server);
}

#[test]
fn host_header_selects_the_site_and_unknown_hosts_get_the_default() {
    let site = Site::new(GRACED);
    site.put("a/index.html", b"site a\n");
    site.put("b/index.html", b"site b\n");
    site.put("b/only-b.txt", b"b only\n");
    site.write_config("\n[[site]]\nhosts = [\"a.test\"]\nroot = \"a\"\n\n[[site]]\nhosts = [\"b.test\", \"www.b.test\"]\nroot = \"b\"\n");
    let server = site.start(&[]);
    let port = server.port;
    let with_host = |host: &str, path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        exchange(port, raw.as_bytes()).0
    };
    for (host, body) in [
        ("a.test", "site a\n"),
        ("b.test", "site b\n"),
        ("www.b.test", "site b\n"),
        (&format!("a.test:{port}") as &str, "site a\n"),
        ("B.TEST", "site b\n"),
        ("A.Test:80", "site a\n"),
        ("b.test.", "site b\n"),
        ("unknown.test", "hello\n"),
        ("127.0.0.1", "hello\n"),
        (&format!("127.0.0.1:{port}") as &str, "hello\n"),
    ] {
        let r = with_host(host, "/");
        assert_eq!((r.status, r.text().as_str()), (200, body), "Host: {host}");
    }
    assert_eq!(with_host("b.test", "/only-b.txt").status, 200);
    assert_eq!(with_host("a.test", "/only-b.txt").status, 404, "sites do not leak into each other");
    // HTTP/1.0 without Host: the default site.
    let (r, _) = exchange(port, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.text(), "hello\n");
    // An absolute-form target's host wins over the Host field (RFC 9112 §3.2.2).
    let (r, _) = exchange(port, b"GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "site b\n"));
}
