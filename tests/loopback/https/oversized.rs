//! Oversized request heads over plain HTTP and over TLS: one huge field, thousands of fields,
//! a huge target, and a head that never ends. Each gets a 431, 414 or 400 and then either the
//! connection ends or — where the head was complete and the server keeps the connection — the
//! valid request sent right behind it is answered correctly (no desynchronised framing). The
//! server answers another client after each.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use graced_testsupport::http::{Tls, TlsEnd, read_until_end};

use super::Https;

/// The valid request sent behind each oversized one.
const NEXT: &str = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";

fn cases() -> Vec<(&'static str, Vec<u8>, bool)> {
    let head = "GET / HTTP/1.1\r\nHost: a.test\r\n";
    let fields: String = (0..5000).map(|i| format!("X-F-{i}: 1\r\n")).collect();
    // (name, bytes, whether the head is complete, so a request may follow it)
    vec![
        ("a 20 kB field", format!("{head}X-A: {}\r\n\r\n", "v".repeat(20_000)).into_bytes(), true),
        ("a 1 MB field", format!("{head}X-A: {}\r\n\r\n", "v".repeat(1_000_000)).into_bytes(), true),
        ("5000 fields", format!("{head}{fields}\r\n").into_bytes(), true),
        (
            "a 60 kB target",
            format!("GET /{} HTTP/1.1\r\nHost: a.test\r\n\r\n", "a".repeat(60_000)).into_bytes(),
            true,
        ),
        (
            "a 1 MB target",
            format!("GET /{} HTTP/1.1\r\nHost: a.test\r\n\r\n", "a".repeat(1_000_000)).into_bytes(),
            true,
        ),
        ("a head that never ends", format!("{head}X-A: {}", "v".repeat(200_000)).into_bytes(), false),
    ]
}

/// The status codes of every response in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ").filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok()).collect()
}

/// Plain HTTP: sends `bytes` (and `NEXT` if `complete`), reads until the end or 10 s.
/// Returns what came back and whether the connection ended.
fn plain(port: u16, bytes: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The server may answer and close before taking everything: a failed write is fine.
    let _ = stream.write_all(bytes);
    let (got, ended) = read_until_end(&mut stream, Duration::from_secs(10));
    (String::from_utf8_lossy(&got).into_owned(), ended)
}

/// One response to the oversized head (431, 414 or 400), then the end of the connection or
/// the next request's answer, `next` (`NEXT` has `Connection: close`, so the end follows it).
fn check(
    transport: &str,
    name: &str,
    text: &str,
    ended: bool,
    complete: bool,
    next: u16,
) -> Result<(), String> {
    let got = statuses(text);
    println!("{transport} {name}: {got:?}, ended: {ended}");
    let refused = got.first().is_some_and(|s| [400, 414, 431].contains(s));
    let then = match &got[..] {
        [_] => true,
        [_, second] => complete && *second == next,
        _ => false,
    };
    if refused && then && ended {
        Ok(())
    } else {
        Err(format!("{transport} {name}: statuses {got:?}, ended {ended}: {}", &text[..text.len().min(600)]))
    }
}

#[test]
fn oversized_heads_over_http_and_tls_are_refused_and_the_connection_ends_cleanly() {
    let https = Https::new();
    let server = https.site.start(&[]);
    let ca = std::fs::read(&https.ca.pem).unwrap();
    let tls = Tls::new(([127, 0, 0, 1], https.tls_port).into(), "a.test", &ca);
    let mut failures = Vec::new();
    for (name, mut bytes, complete) in cases() {
        if complete {
            bytes.extend_from_slice(NEXT.as_bytes());
        }
        let (text, ended) = plain(server.port, &bytes);
        // a.test redirects plain HTTP to HTTPS: the next request's answer there is a 308.
        failures.extend(check("http", name, &text, ended, complete, 308).err());

        let (raw, end) = tls.exchange(&bytes, Duration::from_secs(10)).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let ended = end != TlsEnd::StillOpen;
        failures.extend(check(&format!("https ({end:?})"), name, &text, ended, complete, 200).err());

        // Another client is served all along.
        let (r, _) = tls.must_get("/");
        assert_eq!(r.status, 200, "after {name}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
