//! Request smuggling probes against the real binary: CL.TE, TE.CL, duplicate and malformed
//! `Content-Length`, obs-fold, bad chunk sizes, `Transfer-Encoding` lists where chunked is not
//! last. Each probe carries a second request (for a file holding a marker) where a server that
//! frames the first message differently from the front proxy would find one. Every probe must
//! get a 400 or a close after exactly one response, and the smuggled request is never answered.
//! A well-formed pipelined pair, sent the same way, is answered twice: the detector works.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use graced_testsupport::http::read_until_end;
use graced_testsupport::site::Site;

use super::assert_serving;
use crate::GRACED;

const MARKER: &str = "SMUGGLED-MARKER";
const SMUGGLED: &str = "GET /smuggled.txt HTTP/1.1\r\nHost: a\r\n\r\n";

/// The probes: a name and the bytes after the request line's `METHOD / HTTP/1.1\r\nHost: a\r\n`.
fn probes() -> Vec<(&'static str, String)> {
    let s = SMUGGLED;
    let chunked_smuggle = format!("{:x}\r\n{s}\r\n0\r\n\r\n", s.len());
    vec![
        ("CL.TE", format!("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX{s}")),
        ("TE.CL", format!("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunked_smuggle}")),
        ("CL.CL", format!("Content-Length: 0\r\nContent-Length: {}\r\n\r\n{s}", s.len())),
        ("CL list", format!("Content-Length: 0, {}\r\n\r\n{s}", s.len())),
        ("CL +0", format!("Content-Length: +0\r\n\r\n{s}")),
        ("CL -1", format!("Content-Length: -1\r\n\r\n{s}")),
        ("CL hex", format!("Content-Length: 0x0\r\n\r\n{s}")),
        ("obs-fold TE", format!("Content-Length: 0\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{s}")),
        ("obs-fold other", format!("X-A: a\r\n b\r\n\r\n{s}")),
        ("space before colon", format!("Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n{s}")),
        ("CR inside a value", format!("X-A: a\rContent-Length: {}\r\n\r\n{s}", s.len())),
        ("TE chunked, identity", format!("Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{s}")),
        (
            "TE chunked + TE identity",
            format!("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{s}"),
        ),
        ("TE identity", format!("Transfer-Encoding: identity\r\nContent-Length: 0\r\n\r\n{s}")),
        ("TE xchunked", format!("Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{s}")),
        ("chunk size -1", format!("Transfer-Encoding: chunked\r\n\r\n-1\r\n\r\n{s}")),
        ("chunk size 0x5", format!("Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n{s}")),
        (
            "chunk size overflow",
            format!("Transfer-Encoding: chunked\r\n\r\n10000000000000001\r\nh\r\n0\r\n\r\n{s}"),
        ),
        ("chunk size with space", format!("Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n{s}")),
        ("chunk extension CTL", format!("Transfer-Encoding: chunked\r\n\r\n5;\x01\r\nhello\r\n0\r\n\r\n{s}")),
        ("chunk lines bare LF", format!("Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n{s}")),
        ("chunk shorter than said", format!("Transfer-Encoding: chunked\r\n\r\n50\r\nhello\r\n0\r\n\r\n{s}")),
    ]
}

/// Sends `bytes` on a new connection and reads until the server closes it or 3 s pass.
/// Returns every byte received and whether the server closed.
fn send(port: u16, bytes: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(bytes).unwrap();
    let (got, closed) = read_until_end(&mut stream, Duration::from_secs(3));
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// The status codes of every response in `text`, in order (a status line may follow a body
/// directly; no body served here contains one).
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ").filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok()).collect()
}

#[test]
fn smuggling_probes_get_a_400_or_a_close_and_are_never_two_requests() {
    let site = Site::new(GRACED);
    site.put("www/smuggled.txt", format!("{MARKER}\n").as_bytes());
    let server = site.start(&[]);
    let port = server.port;

    // The control: a well-formed pipelined pair is two requests, and the detector sees both.
    let last = "GET /smuggled.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let (text, _) = send(port, format!("GET / HTTP/1.1\r\nHost: a\r\n\r\n{last}").as_bytes());
    assert_eq!(statuses(&text), [200, 200], "a pipelined pair:\n{text}");
    assert!(text.contains(MARKER), "the second request of a pipelined pair is answered");

    let mut failures = Vec::new();
    for method in ["GET", "POST"] {
        for (name, rest) in probes() {
            let (text, closed) = send(port, format!("{method} / HTTP/1.1\r\nHost: a\r\n{rest}").as_bytes());
            let got = statuses(&text);
            println!("{method} {name}: {got:?}, closed: {closed}");
            let one_answer = got.len() <= 1 && !text.contains(MARKER);
            let refused_or_closed = got.first() == Some(&400) || closed;
            if !(one_answer && refused_or_closed) {
                failures.push(format!("{method} {name}: statuses {got:?}, closed {closed}:\n{text}"));
            }
            assert_serving(&server);
        }
    }
    assert!(failures.is_empty(), "{} probe(s) failed:\n{}", failures.len(), failures.join("\n"));
}
