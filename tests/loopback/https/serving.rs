//! The running server seen over HTTPS: SNI, redirect, HSTS, plaintext on the TLS port, and
//! a certificate reload under an open TLS keep-alive connection.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use graced_testsupport::process::Reaped;

use super::{Https, header};

const T: Duration = Duration::from_secs(10);

#[test]
fn sni_picks_the_certificate_redirects_spare_acme_and_hsts_is_https_only() {
    let https = Https::new();
    let _server = https.site.start(&[]);
    let (http_port, tls_port) = (https.site.port, https.tls_port);

    let a = https.presented("a.test");
    assert!(a.contains("serial=A1") && a.contains("CN = a.test one"), "{a}");
    let b = https.presented("b.test");
    assert!(b.contains("serial=B1") && b.contains("CN = b.test one"), "{b}");

    let page = https.curl(&format!("https://a.test:{tls_port}/"));
    assert!(page.starts_with("HTTP/2 200"), "{page}");
    assert!(page.ends_with("hello\n"), "{page}");
    assert_eq!(header(&page, "strict-transport-security"), Some("max-age=63072000"), "{page}");
    let page_b = https.curl(&format!("https://b.test:{tls_port}/"));
    assert!(page_b.starts_with("HTTP/2 200") && page_b.ends_with("site b\n"), "{page_b}");
    assert_eq!(header(&page_b, "strict-transport-security"), None, "b.test has no hsts");

    let redirect = https.curl(&format!("http://a.test:{http_port}/x/y?z=1"));
    assert!(redirect.starts_with("HTTP/1.1 308"), "{redirect}");
    let location = format!("https://a.test:{tls_port}/x/y?z=1");
    assert_eq!(header(&redirect, "location"), Some(location.as_str()), "{redirect}");
    assert_eq!(header(&redirect, "strict-transport-security"), None, "{redirect}");
    let acme = https.curl(&format!("http://a.test:{http_port}/.well-known/acme-challenge/token"));
    assert!(acme.starts_with("HTTP/1.1 200") && acme.ends_with("token-body"), "{acme}");
    assert_eq!(header(&acme, "strict-transport-security"), None, "{acme}");
    let plain_b = https.curl(&format!("http://b.test:{http_port}/"));
    assert!(plain_b.starts_with("HTTP/1.1 200") && plain_b.ends_with("site b\n"), "{plain_b}");

    let wrong = https.curl(&format!("http://a.test:{tls_port}/"));
    assert!(wrong.starts_with("HTTP/1.1 400"), "{wrong}");
    assert!(wrong.contains("This port speaks HTTPS"), "{wrong}");
    // The server still serves HTTPS after all that.
    assert!(https.curl(&format!("https://a.test:{tls_port}/")).starts_with("HTTP/2 200"));
    // …and counts what went wrong on its TLS port: the plaintext request, and garbage.
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    std::io::Write::write_all(&mut garbage, b"\x01\x02 not tls").unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut garbage, &mut rest);
    let (_, status) = https.site.run(&["-k", "status"]);
    assert!(
        status.contains("tls_plaintext_requests=1") && status.contains("tls_failed_handshakes=1"),
        "{status}"
    );
}

/// An `openssl s_client` connection to a.test that stays open: requests in, lines out.
struct Session {
    child: Reaped,
    lines: mpsc::Receiver<String>,
}

impl Session {
    fn open(https: &Https) -> Session {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-servername", "a.test", "-connect"])
            .arg(format!("127.0.0.1:{}", https.tls_port))
            .arg("-CAfile")
            .arg(&https.ca.pem)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Session { child: Reaped::new(child), lines }
    }

    /// Sends a GET for / and returns the response's lines up to its body line "hello".
    fn get(&mut self) -> Vec<String> {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + T;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let done = line == "hello";
                    got.push(line);
                    if done {
                        return got;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no complete response on the open TLS connection: {got:?}");
    }
}

#[test]
fn a_reload_with_a_new_certificate_serves_it_to_new_connections_and_keeps_open_ones() {
    let https = Https::new();
    let _server = https.site.start(&[]);
    assert!(https.presented("a.test").contains("serial=A1"));

    let mut session = Session::open(&https);
    let first = session.get();
    assert!(first[0].starts_with("HTTP/1.1 200"), "{first:?}");

    // A renewed certificate for a.test in the same files, then a graceful reload.
    let dir = https.site.dir.path();
    let (cert, key) = https.ca.leaf(dir, "renewed", "a.test", "a.test two", 0xA2);
    std::fs::copy(&cert, &https.a.0).unwrap();
    std::fs::copy(&key, &https.a.1).unwrap();
    let (code, out) = https.site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code, 0, "{out}");

    let presented = https.presented("a.test");
    assert!(presented.contains("serial=A2") && presented.contains("CN = a.test two"), "{presented}");
    // The connection opened before the reload is still served (by the new generation).
    let again = session.get();
    assert!(again[0].starts_with("HTTP/1.1 200"), "{again:?}");
}
