//! HTTP/2 through the public `Server` over real loopback sockets, driven by the `h2` crate's
//! client (hyper's own HTTP/2 library, used here as a client nobody in this project wrote):
//! over TLS with ALPN `h2` and as h2c with prior knowledge. A [`frames::Tap`] under the client
//! records every frame the server sends (SETTINGS, GOAWAY, RST_STREAM), and a small
//! frame-level client ([`raw`]) does what a well-behaved client never would.
//!
//! * here: SETTINGS, many concurrent streams, h2c beside HTTP/1.1 on one plain listener;
//! * `lifecycle`: a reload amid streams, a graceful stop (GOAWAY), a hard restart (RST_STREAM);
//! * `limits`: the header list, Rapid Reset, `keepalive_timeout`, `header_timeout` and
//!   `send_timeout`.

// The crate root is this file, so its modules live in h2/ by path.
#[path = "common/cert.rs"]
mod cert;
#[path = "h2/frames.rs"]
mod frames;
#[path = "h2/lifecycle.rs"]
mod lifecycle;
#[path = "h2/limits.rs"]
mod limits;
#[path = "h2/raw.rs"]
mod raw;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use graced_config::{Config, ListenAddress, Root};
use graced_http::access_log::AccessLogSink;
use graced_http::{Generation, Server, Status};
use h2::RecvStream;
use h2::client::SendRequest;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use cert::{Cert, cert};
use frames::{Log, Tap};

/// The server's `ServerConfig`: `cert`, offering h2 then http/1.1 (what graced-tls offers with `[http2] enabled`).
fn server_config(cert: &Cert) -> Arc<rustls::ServerConfig> {
    cert::server_config(cert, &[b"h2", b"http/1.1"])
}

/// A file's bytes: a pattern that catches reordered, dropped or repeated chunks (made once:
/// a shorter file's bytes are the start of a longer one's).
pub(crate) fn pattern(len: usize) -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    &BYTES.get_or_init(|| (0..BIG).map(|i| (i / 7 % 251) as u8 ^ (i % 13) as u8).collect())[..len]
}

pub(crate) const INDEX: &[u8] = b"<p>hello over HTTP/2</p>\n";
pub(crate) const ONE_MIB: usize = 1 << 20;
pub(crate) const MEDIUM: usize = 100 * 1024;
pub(crate) const BIG: usize = 3 * 1024 * 1024 + 12_345;
pub(crate) const HSTS: &str = "max-age=63072000";

/// Stream `i`'s path and body: a 1 MiB file every fourth, else 100 KiB or the index page.
pub(crate) fn mixed(i: usize) -> (&'static str, &'static [u8]) {
    match i % 4 {
        0 => ("/one.bin", pattern(ONE_MIB)),
        1 => ("/medium.bin", pattern(MEDIUM)),
        _ => ("/index.html", INDEX),
    }
}

/// A server with a TLS listener ("https"), a plain one with `h2c = true` ("h2c") and a
/// plain one without ("http"), on free ports.
pub(crate) struct Setup {
    pub(crate) server: Server,
    pub(crate) cert: Cert,
    pub(crate) https: SocketAddr,
    pub h2c: SocketAddr,
    pub(crate) plain: SocketAddr,
    _listeners: Vec<TcpListener>,
    _root: tempfile::TempDir,
}

fn config(root: &Path, https: SocketAddr, h2c: SocketAddr, plain: SocketAddr) -> Config {
    let mut config = Config::embedded_default();
    let mut listener = config.listeners[0].clone();
    listener.name = "http".into();
    listener.address = ListenAddress::Tcp(plain);
    let mut cleartext = listener.clone();
    cleartext.name = "h2c".into();
    cleartext.address = ListenAddress::Tcp(h2c);
    cleartext.h2c = true;
    let mut tls = listener.clone();
    tls.name = "https".into();
    tls.address = ListenAddress::Tcp(https);
    tls.tls = true;
    config.listeners = vec![listener, cleartext, tls];
    let site = &mut config.sites[0];
    site.root = Root::Dir(root.to_owned());
    site.hsts = Some(HSTS.into());
    config
}

pub(crate) fn generation(id: u64, config: &Config, cert: &Cert) -> Generation {
    Generation::new(
        id,
        Arc::new(config.clone()),
        AccessLogSink::open(&graced_config::AccessLog::Off, false).unwrap(),
    )
    .with_tls(server_config(cert))
}

/// The default configuration changed by `tweak`, serving index.html, medium.bin (100 KiB),
/// one.bin (1 MiB) and big.bin (3 MiB and a bit).
pub(crate) fn setup(tweak: impl FnOnce(&mut Config)) -> Setup {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), INDEX).unwrap();
    std::fs::write(root.path().join("medium.bin"), pattern(MEDIUM)).unwrap();
    std::fs::write(root.path().join("one.bin"), pattern(ONE_MIB)).unwrap();
    std::fs::write(root.path().join("big.bin"), pattern(BIG)).unwrap();
    let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let cert = cert();
    let mut config = config(root.path(), addrs[0], addrs[1], addrs[2]);
    tweak(&mut config);
    let mut server = Server::new(generation(1, &config, &cert));
    server.start_accepting("https", listeners[0].as_fd()).unwrap();
    server.start_accepting("h2c", listeners[1].as_fd()).unwrap();
    server.start_accepting("http", listeners[2].as_fd()).unwrap();
    Setup {
        server,
        cert,
        https: addrs[0],
        h2c: addrs[1],
        plain: addrs[2],
        _listeners: listeners,
        _root: root,
    }
}

/// A reload: the current configuration changed by `tweak`, as generation `id`.
pub(crate) fn reload(setup: &mut Setup, id: u64, tweak: impl FnOnce(&mut Config)) {
    let mut config = (*setup.server.current().config).clone();
    tweak(&mut config);
    let generation = generation(id, &config, &setup.cert);
    setup.server.install(generation);
}

/// An h2 client connection: requests go out through `client`; `log` has the server's frames;
/// `conn` drives the connection and ends when it does.
pub(crate) struct H2 {
    pub(crate) client: SendRequest<Bytes>,
    pub(crate) log: Arc<Mutex<Log>>,
    pub(crate) conn: JoinHandle<Result<(), h2::Error>>,
    scheme: &'static str,
}

/// An h2 connection over TLS, ALPN `h2` (asserted).
pub(crate) async fn over_tls(setup: &Setup) -> H2 {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(setup.cert.der.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(setup.https).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "the server chose h2 by ALPN");
    h2_on(tls, "https").await
}

/// An h2c connection with prior knowledge.
pub(crate) async fn over_h2c(addr: SocketAddr) -> H2 {
    h2_on(tokio::net::TcpStream::connect(addr).await.unwrap(), "http").await
}

async fn h2_on<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S, scheme: &'static str) -> H2 {
    let (tap, log) = Tap::new(io);
    // A stream's window is the protocol's default (64 KiB), the connection's as a browser's
    // (Chrome: 15 MiB): a stream the client stops reading does not starve the others.
    let (client, connection) =
        h2::client::Builder::new().initial_connection_window_size(16 << 20).handshake(tap).await.unwrap();
    let conn = tokio::spawn(connection);
    H2 { client, log, conn, scheme }
}

impl H2 {
    /// Opens a stream with a GET for `path` (and `headers`) and waits for the response head.
    pub(crate) async fn open(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<(http::response::Parts, RecvStream), h2::Error> {
        let mut request = http::Request::get(format!("{}://localhost{path}", self.scheme));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut client = self.client.clone().ready().await?;
        let (response, _) = client.send_request(request.body(()).unwrap(), true)?;
        Ok(response.await?.into_parts())
    }

    /// A GET for `path` that must succeed: the head and the whole body.
    pub(crate) async fn get(&self, path: &str) -> (http::response::Parts, Vec<u8>) {
        let (head, mut body) = self.open(path, &[]).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let body = read_body(&mut body).await.unwrap_or_else(|e| panic!("GET {path}: the body: {e}"));
        (head, body)
    }

    /// Whether the connection has ended within `wait`, and how.
    pub(crate) async fn ended(&mut self, wait: Duration) -> Option<Result<(), h2::Error>> {
        tokio::time::timeout(wait, &mut self.conn).await.ok().map(|joined| joined.unwrap())
    }
}

/// The rest of a body, giving the window back as it is read (as hyper does).
pub(crate) async fn read_body(body: &mut RecvStream) -> Result<Vec<u8>, h2::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// At least `n` bytes of a body (whole DATA frames).
pub(crate) async fn read_some(body: &mut RecvStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = body.data().await.expect("more body").expect("a DATA frame");
        body.flow_control().release_capacity(chunk.len()).unwrap();
        out.extend_from_slice(&chunk);
    }
    out
}

pub(crate) fn header<'a>(head: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    head.headers.get(name).map(|v| v.to_str().unwrap())
}

/// The server's status once `done` holds for it, or after 3 s.
pub(crate) async fn status_when(server: &Server, done: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = server.status();
        if done(&status) || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One HTTP/1.1 exchange on a new connection to `addr`: the head and body (by Content-Length).
pub(crate) async fn http1_get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(data[..at + 4].to_vec()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if data.len() >= at + 4 + len {
                return (head, data[at + 4..at + 4 + len].to_vec());
            }
        }
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_announce_the_configured_limits_and_the_server_enforces_them() {
    let setup = setup(|config| {
        config.http2.max_concurrent_streams = 7;
        config.limits.max_request_line = 4096;
        config.limits.max_header_bytes = 8192;
    });
    let h2 = over_tls(&setup).await;
    let (head, body) = h2.get("/").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.version, http::Version::HTTP_2);
    assert_eq!(body, INDEX);
    assert_eq!(h2.client.current_max_send_streams(), 7, "the client took the server's limit");
    let settings = h2.log.lock().unwrap().settings();
    assert!(settings.contains(&(frames::MAX_CONCURRENT_STREAMS, 7)), "{settings:?}");
    assert!(settings.contains(&(frames::MAX_HEADER_LIST_SIZE, 4096 + 8192)), "{settings:?}");

    // The server holds to it: with no window to send in, 7 streams stay open and an 8th is
    // refused (RST_STREAM REFUSED_STREAM), while the 7 are answered.
    let mut raw = raw::Raw::connect(setup.h2c, 0).await;
    for i in 0..8 {
        raw.get(1 + 2 * i, "/one.bin").await;
    }
    let (mut answered, mut refused) = (Vec::new(), Vec::new());
    while let Some(frame) = raw.next(Duration::from_millis(500)).await {
        match frame.kind {
            frames::HEADERS => answered.push(frame.stream),
            frames::RST_STREAM => refused.push((frame.stream, frame.reset().unwrap())),
            _ => {}
        }
    }
    answered.sort();
    assert_eq!(answered, [1, 3, 5, 7, 9, 11, 13], "the first seven streams are answered");
    assert_eq!(refused, [(15, frames::REFUSED_STREAM)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_streams_are_served_byte_exact() {
    let setup = setup(|_| {});
    let h2 = Arc::new(over_tls(&setup).await);
    // Every head first: all 100 streams are open at once before any body is read.
    let mut streams = Vec::new();
    for i in 0..100 {
        let h2 = h2.clone();
        streams.push(tokio::spawn(async move { h2.open(mixed(i).0, &[]).await.unwrap() }));
    }
    let mut opened = Vec::new();
    for stream in streams {
        opened.push(stream.await.unwrap());
    }
    let status = setup.server.status();
    assert_eq!(status.h2_connections, 1, "{status:?}");
    assert!(status.h2_streams >= 25, "the 1 MiB streams are still in flight: {status:?}");
    assert_eq!(status.connections, 1, "one connection carries them all: {status:?}");
    let mut reads = Vec::new();
    for (i, (head, mut body)) in opened.into_iter().enumerate() {
        reads.push(tokio::spawn(async move {
            assert_eq!(head.status, 200, "stream {i}");
            assert_eq!(header(&head, "strict-transport-security"), Some(HSTS));
            let (path, want) = mixed(i);
            let body = read_body(&mut body).await.unwrap();
            assert_eq!(header(&head, "content-length"), Some(want.len().to_string().as_str()), "{path}");
            assert!(body == want, "stream {i} ({path}): {} bytes, the body differs", body.len());
        }));
    }
    for read in reads {
        read.await.unwrap();
    }
    assert!(h2.log.lock().unwrap().goaways().is_empty());
    let status = status_when(&setup.server, |s| s.h2_streams == 0).await;
    assert_eq!((status.h2_connections, status.h2_streams), (1, 0), "{status:?}");
    assert_eq!(status.requests, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_and_http1_share_a_plain_listener() {
    let setup = setup(|_| {});
    let h2 = over_h2c(setup.h2c).await;
    let (head, body) = h2.get("/big.bin").await;
    assert_eq!((head.status.as_u16(), head.version), (200, http::Version::HTTP_2));
    assert!(body == pattern(BIG), "the h2c body differs ({} bytes)", body.len());
    assert_eq!(header(&head, "strict-transport-security"), None, "no HSTS over cleartext");

    // HTTP/1.1 on the same listener keeps its own path (sendfile), byte-exact.
    let (head, body) = http1_get(setup.h2c, "/big.bin").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == pattern(BIG), "the HTTP/1.1 body differs ({} bytes)", body.len());
    let status = setup.server.status();
    assert_eq!(status.h2_connections, 1, "the HTTP/1.1 connection is not counted as HTTP/2: {status:?}");

    // A preface that arrives in pieces is still HTTP/2.
    let mut raw = raw::Raw::connect_without_preface(setup.h2c).await;
    raw.write(&raw::PREFACE[..7]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    raw.write(&raw::PREFACE[7..]).await;
    raw.settings(65_535).await;
    let first = raw.next(Duration::from_secs(3)).await.expect("the server's first frame");
    assert!(first.settings().is_some(), "SETTINGS first: {first:?}");

    // A listener without h2c speaks HTTP/1.1 only: a client with prior knowledge fails.
    let refused = over_h2c(setup.plain).await;
    let failed = tokio::time::timeout(Duration::from_secs(5), refused.open("/", &[])).await;
    assert!(matches!(failed, Ok(Err(_))), "no HTTP/2 without h2c = true: {failed:?}");
    let (head, body) = http1_get(setup.plain, "/").await;
    assert!(head.starts_with("HTTP/1.1 200") && body == INDEX, "{head}");
}
