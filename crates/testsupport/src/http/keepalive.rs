//! The classified clients of the container tests: one connection per request ([`get`]) or one kept-alive connection ([`KeepAlive`]).
//!
//! Run them in a thread that joined the container's network namespace. General-purpose
//! clients hide the failures these tests count (curl silently retries a request whose
//! reused connection died), so these do exactly what they are told, with a [`Failure`]
//! naming what went wrong.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::response::{Failure, Response, read_response};

/// Socket timeout: a response that stalls this long is a failure, not a hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// A TCP connection with [`IO_TIMEOUT`] for connect, reads and writes, and no Nagle delay.
pub fn connect(addr: SocketAddr) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(Failure::connect)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(Failure::Connect)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(Failure::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// `GET path` with `Connection: close` (or keep-alive).
pub(super) fn request_bytes(path: &str, close: bool) -> Vec<u8> {
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
#[track_caller]
pub fn must_get(addr: SocketAddr, path: &str) -> Response {
    get(addr, path).unwrap_or_else(|f| panic!("GET http://{addr}{path}: {f}"))
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
