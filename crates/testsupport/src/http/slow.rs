//! Slow readers: connections with a small receive buffer, so a response stays in flight while the test acts.
//!
//! [`connect_small_rcvbuf`] is the one way to open such a connection (the buffer is set
//! before connect, so the kernel does not autotune it). [`SlowGet`] reads a loopback
//! response at a pace the test changes while it runs; [`slow_get`] reads a container
//! response at a fixed pace and classifies what went wrong.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::keepalive::{IO_TIMEOUT, request_bytes};
use super::response::{Failure, Response, parse_head, read_head};

/// 127.0.0.1:`port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A TCP connection to `addr` whose receive buffer is `rcvbuf` bytes (set before connect, so
/// the kernel does not autotune it): the server cannot hand it a large response all at once,
/// and a slow reader really holds the response in flight.
pub fn connect_small_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> Result<TcpStream, Failure> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None).map_err(Failure::Connect)?;
    socket.set_recv_buffer_size(rcvbuf).map_err(Failure::Connect)?;
    socket.connect_timeout(&addr.into(), IO_TIMEOUT).map_err(Failure::connect)?;
    Ok(socket.into())
}

/// What a slow download saw.
#[derive(Debug)]
pub struct SlowDownload {
    pub response: Result<Response, Failure>,
    /// When the response head arrived, and when the last byte did.
    pub head_at: Option<Instant>,
    pub done_at: Instant,
}

/// GET read slowly: a small receive buffer, `chunk` bytes every `pause`, so the server
/// has the request in flight for (size / chunk × pause). `started` is signalled once the
/// response head arrived.
pub fn slow_get(
    addr: SocketAddr,
    path: &str,
    chunk: usize,
    pause: Duration,
    started: std::sync::mpsc::Sender<Instant>,
) -> SlowDownload {
    let mut head_at = None;
    let response = (|| {
        let stream = connect_small_rcvbuf(addr, chunk)?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(Failure::Connect)?;
        (&stream).write_all(&request_bytes(path, true)).map_err(Failure::Send)?;
        let mut reader = BufReader::with_capacity(chunk, stream);
        // The head, then the body by hand.
        let mut head = read_head(&mut reader)?;
        head_at = Some(Instant::now());
        let _ = started.send(Instant::now());
        let len: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Failure::Incomplete("no Content-Length".into()))?;
        let mut body = Vec::with_capacity(len);
        let mut buf = vec![0u8; chunk];
        while body.len() < len {
            let want = chunk.min(len - body.len());
            let n = reader
                .read(&mut buf[..want])
                .map_err(|e| Failure::Incomplete(format!("body: {e} after {} of {len} bytes", body.len())))?;
            if n == 0 {
                return Err(Failure::Incomplete(format!("closed after {} of {len} bytes", body.len())));
            }
            body.extend_from_slice(&buf[..n]);
            std::thread::sleep(pause);
        }
        head.body = body;
        Ok(head)
    })();
    SlowDownload { response, head_at, done_at: Instant::now() }
}

/// [`SlowGet`] pace: 4 KiB every 2 ms.
pub const SLOW: u8 = 0;
/// [`SlowGet`] pace: as fast as the data comes.
pub const FAST: u8 = 1;
/// [`SlowGet`] pace: nothing read at all.
pub const STALL: u8 = 2;

/// How a [`SlowGet`] ended.
#[derive(Debug)]
pub struct SlowOutcome {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub content_length: usize,
    pub body: Vec<u8>,
    /// `None` when all Content-Length bytes arrived; otherwise how it was cut.
    pub cut: Option<String>,
    /// The connection, for another request (keep-alive).
    pub stream: Option<TcpStream>,
    pub finished_at: Instant,
}

impl SlowOutcome {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A GET whose body is read slowly (4 KiB every 2 ms), fast, or not at all, as the test says.
pub struct SlowGet {
    pace: Arc<AtomicU8>,
    received: Arc<AtomicUsize>,
    handle: Option<JoinHandle<SlowOutcome>>,
}

impl SlowGet {
    /// Sends `GET path` (keep-alive) on a new connection to 127.0.0.1:`port` with a 16 KiB
    /// receive buffer and starts reading slowly.
    pub fn start(port: u16, path: &str) -> SlowGet {
        let stream = connect_small_rcvbuf(loopback(port), 16 * 1024)
            .unwrap_or_else(|f| panic!("connect to {port}: {f}"));
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self::start_on(stream, path)
    }

    pub fn start_on(mut stream: TcpStream, path: &str) -> SlowGet {
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
        let pace = Arc::new(AtomicU8::new(SLOW));
        let received = Arc::new(AtomicUsize::new(0));
        let (p, r) = (pace.clone(), received.clone());
        let handle = std::thread::spawn(move || slow_read(stream, &p, &r));
        SlowGet { pace, received, handle: Some(handle) }
    }

    pub fn set_pace(&self, pace: u8) {
        self.pace.store(pace, Ordering::Relaxed);
    }

    /// Body bytes received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until at least `bytes` of the body arrived.
    #[track_caller]
    pub fn wait_received(&self, bytes: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.received() < bytes {
            assert!(Instant::now() < deadline, "only {} body bytes within {timeout:?}", self.received());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reads the rest at full speed and returns how it ended.
    pub fn finish(mut self) -> SlowOutcome {
        self.set_pace(FAST);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for SlowGet {
    fn drop(&mut self) {
        self.pace.store(FAST, Ordering::Relaxed);
    }
}

fn slow_read(mut stream: TcpStream, pace: &AtomicU8, received: &AtomicUsize) -> SlowOutcome {
    let deadline = Instant::now() + Duration::from_secs(18);
    let mut outcome = SlowOutcome {
        status: 0,
        headers: Vec::new(),
        content_length: 0,
        body: Vec::new(),
        cut: None,
        stream: None,
        finished_at: Instant::now(),
    };
    // The head, a byte at a time so nothing of the body is consumed by a buffer.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => {
                outcome.cut = Some(format!("EOF in the response head after {} bytes", head.len()));
                return outcome;
            }
            Err(e) => {
                outcome.cut = Some(format!("error in the response head: {e}"));
                return outcome;
            }
        }
        if head.len() > 16384 {
            outcome.cut = Some("response head too long".into());
            return outcome;
        }
    }
    match parse_head(&head) {
        Ok(parsed) => {
            outcome.status = parsed.status;
            outcome.headers = parsed.headers;
        }
        Err(failure) => {
            outcome.cut = Some(failure.to_string());
            return outcome;
        }
    }
    outcome.content_length = outcome.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    outcome.body.reserve(outcome.content_length);
    let mut buf = vec![0u8; 64 * 1024];
    while outcome.body.len() < outcome.content_length {
        if Instant::now() > deadline {
            outcome.cut = Some(format!("client deadline after {} bytes", outcome.body.len()));
            break;
        }
        let mode = pace.load(Ordering::Relaxed);
        if mode == STALL {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let want = if mode == SLOW { 4096 } else { buf.len() };
        let want = want.min(outcome.content_length - outcome.body.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) => {
                outcome.cut = Some(format!(
                    "EOF after {} of {} body bytes",
                    outcome.body.len(),
                    outcome.content_length
                ));
                break;
            }
            Ok(n) => {
                outcome.body.extend_from_slice(&buf[..n]);
                received.store(outcome.body.len(), Ordering::Relaxed);
            }
            Err(e) => {
                outcome.cut = Some(format!(
                    "{e} after {} of {} body bytes",
                    outcome.body.len(),
                    outcome.content_length
                ));
                break;
            }
        }
        if mode == SLOW {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    outcome.finished_at = Instant::now();
    if outcome.cut.is_none() {
        outcome.stream = Some(stream);
    }
    outcome
}
