//! The raw loopback client: one connection, requests written as given, responses read with the one parser.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::response::{Failure, Response, parse_raw, read_response};

/// A raw HTTP/1.1 client on one connection (keep-alive unless the request says otherwise).
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to 127.0.0.1:`port` (10 s read timeout).
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { reader: BufReader::new(stream) }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    pub fn send(&mut self, raw: &str) {
        self.stream().write_all(raw.as_bytes()).unwrap();
    }

    /// Sends `raw` and reads one response (a HEAD request's has no body).
    pub fn request(&mut self, raw: &str) -> Response {
        self.send(raw);
        self.read_response(raw.starts_with("HEAD "))
    }

    /// `GET path` on this connection, keep-alive.
    pub fn get(&mut self, path: &str) -> Response {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"))
    }

    /// Reads one response; `head_only` reads the head and leaves the body unread.
    pub fn try_read_response(&mut self, head_only: bool) -> Result<Response, Failure> {
        read_response(&mut self.reader, head_only)
    }

    #[track_caller]
    pub fn read_response(&mut self, head_only: bool) -> Response {
        self.try_read_response(head_only).unwrap_or_else(|f| panic!("{f}"))
    }

    /// True when the server closed the connection (EOF or reset) within `timeout`;
    /// false when the connection is still open (or sent unexpected bytes).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream().set_read_timeout(Some(timeout)).unwrap();
        let mut byte = [0u8; 1];
        let closed = match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        };
        self.stream().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        closed
    }
}

/// Reads until EOF (or a reset after data), at most 10 s.
pub fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the server neither answered nor closed within 10 s; got {:?}",
                    String::from_utf8_lossy(&out)
                )
            }
            Err(_) => return out, // reset: what arrived before it is the answer
        }
    }
    panic!("the server did not close the connection within 10 s")
}

/// Reads from `stream` until the server ends the connection (EOF or a reset, which ends it
/// too) or `within` passes: every byte received, and whether it ended. For probes whose
/// point is whether the server closes.
pub fn read_until_end(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let ended = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break false,
            Err(_) => break true,
        }
    };
    (got, ended)
}

/// Sends raw bytes on a fresh connection to 127.0.0.1:`port` and reads until the server
/// closes it. Returns the parsed response (every byte after the head as its body) and
/// every byte received.
pub fn exchange(port: u16, request: &[u8]) -> (Response, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request).unwrap();
    let raw = read_to_eof(&mut stream);
    (parse_raw(&raw), raw)
}

/// True when a connection to 127.0.0.1:`port` is refused.
pub fn refused(port: u16) -> bool {
    matches!(TcpStream::connect(("127.0.0.1", port)), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

/// Waits (bounded) until connections to `port` are refused.
pub fn wait_refused(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if refused(port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
