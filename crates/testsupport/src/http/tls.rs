//! The classified HTTPS clients of the container tests: rustls trusting one test CA, each response returned with the serial of the certificate the server presented.
//!
//! The TLS twins of [`super::get`] and [`super::KeepAlive`]: one connection per request
//! ([`Tls::get`]) or one kept-alive connection ([`TlsKeepAlive`]), the same timeouts
//! ([`super::IO_TIMEOUT`]), the same parser ([`read_response`]) and the same counting rule;
//! nothing is retried. SNI and `Host` name the same host. Session resumption is off: every
//! connection makes a full handshake, so its serial is that of the certificate the server
//! serves *now* (a resumed session would carry the one of the connection that made the
//! ticket). A failed handshake is a [`Failure::Connect`] whose text starts `TLS handshake`.
//! Everything runs in-process (no openssl or curl needed where the test runs).

use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::keepalive::connect;
use super::response::{Failure, Response, read_response};

/// A TLS connection over a blocking TCP stream.
type Stream = StreamOwned<ClientConnection, TcpStream>;

/// An HTTPS client for one server name, trusting only the given CA.
#[derive(Clone)]
pub struct Tls {
    addr: SocketAddr,
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
}

impl Tls {
    /// Connects to `addr`, sends SNI (and `Host`) `name`, and trusts the CA certificates
    /// in `ca_pem` only. Panics if `ca_pem` holds no usable certificate or `name` is not a
    /// DNS name.
    pub fn new(addr: SocketAddr, name: &str, ca_pem: &[u8]) -> Tls {
        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(der.expect("a PEM certificate")).expect("a CA certificate rustls accepts");
        }
        assert!(!roots.is_empty(), "no CA certificate in the PEM given");
        let mut config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        config.resumption = Resumption::disabled();
        let name = ServerName::try_from(name.to_owned()).expect("a DNS name");
        Tls { addr, name, config: Arc::new(config) }
    }

    /// Connects and completes the handshake; returns the stream and the serial of the
    /// leaf certificate the server presented.
    fn handshake(&self) -> Result<(Stream, String), Failure> {
        let mut tcp = connect(self.addr)?;
        let mut conn = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(|e| handshake_failure(io::Error::other(e)))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(handshake_failure)?;
        }
        let serial = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| serial_of(leaf))
            .ok_or_else(|| handshake_failure(io::Error::other("no certificate presented")))?;
        Ok((StreamOwned::new(conn, tcp), serial))
    }

    /// GET on a new connection (`Connection: close`); the response and the serial of the
    /// certificate that connection was served with.
    pub fn get(&self, path: &str) -> Result<(Response, String), Failure> {
        let (stream, serial) = self.handshake()?;
        let mut reader = BufReader::new(stream);
        reader.get_mut().write_all(&self.request(path, true)).map_err(Failure::Send)?;
        let response = read_response(&mut reader, false)?;
        close_politely(reader.get_mut());
        Ok((response, serial))
    }

    /// Sends `request` as it is on a new connection, then reads until the server ends the
    /// connection or `timeout` passes: every byte received and how it ended. A failed write
    /// (the server answered and closed before taking everything) is not an error: what it
    /// answered is still read.
    pub fn exchange(&self, request: &[u8], timeout: Duration) -> Result<(Vec<u8>, TlsEnd), Failure> {
        let (mut stream, _) = self.handshake()?;
        let _ = stream.write_all(request).and_then(|()| stream.flush());
        // Read below rustls's `Stream`, whose `read` first writes what a failed write left
        // queued (and so fails with EPIPE before reading the answer that already arrived).
        let StreamOwned { conn, sock } = &mut stream;
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = [0u8; 16384];
        let end = loop {
            match conn.reader().read(&mut buf) {
                Ok(0) => break TlsEnd::CloseNotify,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => break TlsEnd::Eof,
                Err(e) => break TlsEnd::Broken(e.to_string()),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
                break TlsEnd::StillOpen;
            }
            match conn.read_tls(sock) {
                // End of file: the reader says whether close_notify came first.
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break TlsEnd::StillOpen;
                }
                Err(e) => break TlsEnd::Broken(e.to_string()),
            }
            if let Err(e) = conn.process_new_packets() {
                break TlsEnd::Broken(e.to_string());
            }
        };
        Ok((got, end))
    }

    /// GET on a new connection; panics unless a complete response arrives.
    #[track_caller]
    pub fn must_get(&self, path: &str) -> (Response, String) {
        self.get(path).unwrap_or_else(|f| panic!("GET https://{}{path} ({}): {f}", self.host(), self.addr))
    }

    fn host(&self) -> String {
        self.name.to_str().into_owned()
    }

    fn request(&self, path: &str, close: bool) -> Vec<u8> {
        let connection = if close { "close" } else { "keep-alive" };
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: graced-e2e\r\nConnection: {connection}\r\n\r\n",
            self.host()
        )
        .into_bytes()
    }
}

/// How a connection read by [`Tls::exchange`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsEnd {
    /// The server sent close_notify (then end of file, or nothing more).
    CloseNotify,
    /// End of file without close_notify.
    Eof,
    /// A reset or another error.
    Broken(String),
    /// Still open when the time was up.
    StillOpen,
}

/// One kept-alive TLS connection, reopened (with a new handshake) when the server ends it.
///
/// Counting rule, as [`super::KeepAlive`]'s: a response carrying `Connection: close`, or a
/// connection the server closed cleanly *between* requests (a close_notify or end of file
/// seen before the next request is written), means "reconnect" and is not a failure. Only
/// a request that got no complete response is.
pub struct TlsKeepAlive {
    tls: Tls,
    conn: Option<(BufReader<Stream>, String)>,
    /// New connections opened (the first included).
    pub connections: u64,
    /// Reconnects after `Connection: close`.
    pub closed_by_header: u64,
    /// Reconnects after a clean close between requests.
    pub closed_between: u64,
}

impl TlsKeepAlive {
    pub fn new(tls: Tls) -> TlsKeepAlive {
        TlsKeepAlive { tls, conn: None, connections: 0, closed_by_header: 0, closed_between: 0 }
    }

    /// GET on the kept-alive connection; the response and the serial of the certificate
    /// that connection was served with.
    pub fn get(&mut self, path: &str) -> Result<(Response, String), Failure> {
        if let Some((conn, _)) = &mut self.conn
            && !still_open(conn)
        {
            self.conn = None;
            self.closed_between += 1;
        }
        if self.conn.is_none() {
            let (stream, serial) = self.tls.handshake()?;
            self.conn = Some((BufReader::new(stream), serial));
            self.connections += 1;
        }
        let request = self.tls.request(path, false);
        let (conn, serial) = self.conn.as_mut().expect("connected");
        let serial = serial.clone();
        if let Err(e) = conn.get_mut().write_all(&request) {
            self.conn = None;
            return Err(Failure::Send(e));
        }
        match read_response(conn, false) {
            Ok(response) => {
                if response.closes() {
                    if let Some((mut conn, _)) = self.conn.take() {
                        close_politely(conn.get_mut());
                    }
                    self.closed_by_header += 1;
                }
                Ok((response, serial))
            }
            Err(failure) => {
                self.conn = None;
                Err(failure)
            }
        }
    }
}

/// The serial number of a DER certificate as lowercase hex without leading zeros (`a01`
/// for 0x0A01), the form [`serial_hex`] gives for the serial a test chose.
pub fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("the server's certificate parses");
    serial_hex(cert.raw_serial())
}

/// Big-endian serial bytes as lowercase hex without leading zeros (`0` for zero).
pub fn serial_hex(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() { "0".to_owned() } else { trimmed.to_owned() }
}

fn handshake_failure(e: io::Error) -> Failure {
    Failure::Connect(io::Error::new(e.kind(), format!("TLS handshake: {e}")))
}

/// Sends close_notify without waiting for anything.
fn close_politely(stream: &mut Stream) {
    stream.conn.send_close_notify();
    while stream.conn.wants_write() {
        if stream.conn.write_tls(&mut stream.sock).is_err() {
            break;
        }
    }
}

/// Whether the server has not ended the connection: nothing unread, no close_notify, no
/// end of file. Records waiting on the socket (a session ticket, a close_notify) are
/// processed without blocking.
fn still_open(conn: &mut BufReader<Stream>) -> bool {
    if !conn.buffer().is_empty() {
        return false; // bytes nobody asked for: the connection is unusable
    }
    let stream = conn.get_mut();
    if stream.sock.set_nonblocking(true).is_err() {
        return false;
    }
    let open = loop {
        match stream.conn.read_tls(&mut stream.sock) {
            Ok(0) => break false,
            Ok(_) => match stream.conn.process_new_packets() {
                Ok(state) if state.peer_has_closed() || state.plaintext_bytes_to_read() > 0 => break false,
                Ok(_) => continue,
                Err(_) => break false,
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
            Err(_) => break false,
        }
    };
    let _ = stream.sock.set_nonblocking(false);
    open
}

#[cfg(test)]
mod tests {
    use super::serial_hex;

    #[test]
    fn serials_print_as_hex_without_leading_zeros() {
        assert_eq!(serial_hex(&0x0a01u64.to_be_bytes()), "a01");
        assert_eq!(serial_hex(&[0x00, 0xff]), "ff");
        assert_eq!(serial_hex(&[0, 0]), "0");
    }
}
