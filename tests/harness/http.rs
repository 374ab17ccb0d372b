//! A small, exact HTTP/1.1 client for the e2e tests: every failure is classified, nothing is retried behind our back.
//!
//! Run it in a thread that joined the container's network namespace
//! ([`super::Container::in_netns`]). General-purpose clients hide the failures these tests
//! count (curl silently retries a request whose reused connection died), so this one does
//! exactly what it is told: one connection per request ([`get`]) or one kept-alive
//! connection ([`KeepAlive`]), with a [`Failure`] naming what went wrong.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Socket timeout: a response that stalls this long is a failure, not a hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

pub use super::support::Response;

/// Why a request got no complete response.
#[derive(Debug)]
pub enum Failure {
    /// connect(2) was refused: nobody listened.
    Refused,
    /// connect(2) failed otherwise (or timed out).
    Connect(io::Error),
    /// Writing the request failed.
    Send(io::Error),
    /// The connection ended (or broke) before the first byte of a response.
    NoResponse(String),
    /// A response started but did not complete.
    Incomplete(String),
}

impl Failure {
    /// A short category name for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Connect(_) => "connect",
            Failure::Send(_) => "send",
            Failure::NoResponse(_) => "no-response",
            Failure::Incomplete(_) => "incomplete",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused => write!(f, "connection refused"),
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Send(e) => write!(f, "send: {e}"),
            Failure::NoResponse(e) => write!(f, "no response: {e}"),
            Failure::Incomplete(e) => write!(f, "incomplete response: {e}"),
        }
    }
}

pub fn connect(addr: SocketAddr) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::Refused,
        _ => Failure::Connect(e),
    })?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(Failure::Connect)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(Failure::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn request_bytes(path: &str, close: bool) -> Vec<u8> {
    let connection = if close { "close" } else { "keep-alive" };
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: graced-e2e\r\nConnection: {connection}\r\n\r\n"
    )
    .into_bytes()
}

/// GET on a new connection (`Connection: close`).
pub fn get(addr: SocketAddr, path: &str) -> Result<Response, Failure> {
    let stream = connect(addr)?;
    (&stream).write_all(&request_bytes(path, true)).map_err(Failure::Send)?;
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, false)
}

/// GET on a new connection; panics unless a complete response arrives.
pub fn must_get(addr: SocketAddr, path: &str) -> Response {
    get(addr, path).unwrap_or_else(|f| panic!("GET http://{addr}{path}: {f}"))
}

/// Reads one response; `head` means no body follows.
pub fn read_response<R: BufRead>(r: &mut R, head: bool) -> Result<Response, Failure> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => return Err(Failure::NoResponse("connection closed".into())),
        Ok(_) => {}
        Err(e) => return Err(Failure::NoResponse(e.to_string())),
    }
    let incomplete = |what: &str| Failure::Incomplete(what.to_owned());
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| incomplete(&format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Err(incomplete("closed in the header section")),
            Ok(_) => {}
            Err(e) => return Err(Failure::Incomplete(format!("header section: {e}"))),
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| incomplete(&format!("bad header {l:?}")))?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut response = Response { status, headers, body: Vec::new() };
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(response);
    }
    let chunked = response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).map_err(|e| Failure::Incomplete(format!("chunk size: {e}")))?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| incomplete(&format!("bad chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).map_err(|e| Failure::Incomplete(format!("chunk: {e}")))?;
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().map_err(|_| incomplete("bad Content-Length"))?;
        response.body = vec![0; len];
        r.read_exact(&mut response.body)
            .map_err(|e| Failure::Incomplete(format!("body: {e} (expected {len} bytes)")))?;
    } else {
        r.read_to_end(&mut response.body).map_err(|e| Failure::Incomplete(format!("body to EOF: {e}")))?;
    }
    Ok(response)
}

/// One kept-alive connection, reopened when the server ends it.
///
/// Counting rule: a response carrying `Connection: close`, or a connection the server
/// closed cleanly *between* requests (seen before the next request is written), means
/// "reconnect" and is not a failure. Only a request that got no complete response is.
pub struct KeepAlive {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    /// New connections opened (the first included).
    pub connections: u64,
    /// Reconnects after `Connection: close`.
    pub closed_by_header: u64,
    /// Reconnects after a clean close between requests.
    pub closed_between: u64,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive { addr, conn: None, connections: 0, closed_by_header: 0, closed_between: 0 }
    }

    pub fn get(&mut self, path: &str) -> Result<Response, Failure> {
        if let Some(conn) = &self.conn
            && !still_open(conn)
        {
            self.conn = None;
            self.closed_between += 1;
        }
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(connect(self.addr)?));
            self.connections += 1;
        }
        let conn = self.conn.as_mut().expect("connected");
        if let Err(e) = conn.get_mut().write_all(&request_bytes(path, false)) {
            self.conn = None;
            return Err(Failure::Send(e));
        }
        match read_response(conn, false) {
            Ok(response) => {
                if response.closes() {
                    self.conn = None;
                    self.closed_by_header += 1;
                }
                Ok(response)
            }
            Err(failure) => {
                self.conn = None;
                Err(failure)
            }
        }
    }
}

/// Whether the server has not closed the connection (peeked without blocking).
fn still_open(conn: &BufReader<TcpStream>) -> bool {
    if !conn.buffer().is_empty() {
        return false; // bytes nobody asked for: the connection is unusable
    }
    let stream = conn.get_ref();
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open = matches!(stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    let _ = stream.set_nonblocking(false);
    open
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
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(Failure::Connect)?;
        socket.set_recv_buffer_size(chunk).map_err(Failure::Connect)?;
        socket.connect_timeout(&addr.into(), IO_TIMEOUT).map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            _ => Failure::Connect(e),
        })?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(Failure::Connect)?;
        (&stream).write_all(&request_bytes(path, true)).map_err(Failure::Send)?;
        let mut reader = BufReader::with_capacity(chunk, stream);
        // The head, then the body by hand.
        let mut head = read_head_only(&mut reader)?;
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

/// The status line and headers of a response, without reading its body.
fn read_head_only<R: BufRead>(r: &mut R) -> Result<Response, Failure> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) if head.is_empty() => return Err(Failure::NoResponse("connection closed".into())),
            Ok(0) => return Err(Failure::Incomplete("closed in the header section".into())),
            Ok(_) => {}
            Err(e) => return Err(Failure::NoResponse(e.to_string())),
        }
        let end = line == "\r\n" || line == "\n";
        head.extend_from_slice(line.as_bytes());
        if end {
            break;
        }
    }
    read_response(&mut &head[..], true)
}
