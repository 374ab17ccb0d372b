//! HTTPS through the public `Server` over real loopback sockets: certificates made at test
//! time (rcgen), a minimal rustls `ServerConfig`, a rustls client.

#[path = "common/cert.rs"]
mod cert;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graced_config::{Config, ListenAddress, Root};
use graced_http::access_log::AccessLogSink;
use graced_http::{Generation, Server};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use cert::{Cert, cert};

/// The server's `ServerConfig`: `cert`, offering http/1.1.
fn server_config(cert: &Cert) -> Arc<rustls::ServerConfig> {
    cert::server_config(cert, &[b"http/1.1"])
}

fn connector(cert: &Cert) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A big file's bytes: a pattern that catches reordered or dropped chunks.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i / 7 % 251) as u8 ^ (i % 13) as u8).collect()
}

const BIG: usize = 3 * 1024 * 1024 + 12_345;

/// A server with a TLS listener ("https") and a plain one ("http") on free ports.
struct Setup {
    server: Server,
    cert: Cert,
    https: SocketAddr,
    http: SocketAddr,
    _listeners: (TcpListener, TcpListener),
    _root: tempfile::TempDir,
}

fn config(root: &Path, https: SocketAddr, http: SocketAddr, handshake_timeout: Duration) -> Config {
    let mut config = Config::embedded_default();
    let mut plain = config.listeners[0].clone();
    plain.name = "http".into();
    plain.address = ListenAddress::Tcp(http);
    let mut tls = plain.clone();
    tls.name = "https".into();
    tls.address = ListenAddress::Tcp(https);
    tls.tls = true;
    config.listeners = vec![plain, tls];
    config.tls.handshake_timeout = handshake_timeout;
    let site = &mut config.sites[0];
    site.root = Root::Dir(root.to_owned());
    site.https_redirect = true;
    site.hsts = Some("max-age=63072000".into());
    config
}

fn generation(id: u64, config: &Config, cert: &Cert) -> Generation {
    Generation::new(
        id,
        Arc::new(config.clone()),
        AccessLogSink::open(&graced_config::AccessLog::Off, false).unwrap(),
    )
    .with_tls(server_config(cert))
}

fn setup(handshake_timeout: Duration) -> Setup {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "<p>hello over TLS</p>\n").unwrap();
    std::fs::write(root.path().join("big.bin"), pattern(BIG)).unwrap();
    std::fs::write(root.path().join("medium.bin"), pattern(100 * 1024)).unwrap();
    std::fs::create_dir_all(root.path().join(".well-known/acme-challenge")).unwrap();
    std::fs::write(root.path().join(".well-known/acme-challenge/token"), "token-body").unwrap();
    let https_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (https, http) = (https_listener.local_addr().unwrap(), http_listener.local_addr().unwrap());
    let cert = cert();
    let config = config(root.path(), https, http, handshake_timeout);
    let mut server = Server::new(generation(1, &config, &cert));
    server.start_accepting("https", https_listener.as_fd()).unwrap();
    server.start_accepting("http", http_listener.as_fd()).unwrap();
    Setup { server, cert, https, http, _listeners: (https_listener, http_listener), _root: root }
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(setup: &Setup) -> Tls {
    let tcp = tokio::net::TcpStream::connect(setup.https).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    connector(&setup.cert).connect(name, tcp).await.unwrap()
}

/// One response: (head, body), read by Content-Length.
async fn response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response head: {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    let len: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
    while data.len() < head_end + len {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed inside a body");
        data.extend_from_slice(&buf[..n]);
    }
    (head, data[head_end..head_end + len].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The server's status once `done` holds for it (a connection is closed a moment before its
/// counter moves), or after 3 s.
async fn status_when(server: &Server, done: impl Fn(&graced_http::Status) -> bool) -> graced_http::Status {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = server.status();
        if done(&status) || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_small_medium_and_large_files_byte_exact_with_hsts() {
    let setup = setup(Duration::from_secs(5));
    let mut tls = connect(&setup).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    for (path, want) in [
        ("/", b"<p>hello over TLS</p>\n".to_vec()),
        ("/medium.bin", pattern(100 * 1024)),
        ("/big.bin", pattern(BIG)),
        ("/index.html", b"<p>hello over TLS</p>\n".to_vec()),
    ] {
        tls.write_all(get(path).as_bytes()).await.unwrap();
        let (head, body) = response(&mut tls).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert_eq!(header(&head, "strict-transport-security"), Some("max-age=63072000"), "{path}");
        assert_eq!(body.len(), want.len(), "{path}");
        assert!(body == want, "{path}: the body differs");
    }
    // A range of the large file, on the same keep-alive connection.
    tls.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=1000000-2500000\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(body == pattern(BIG)[1_000_000..=2_500_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_ends_with_close_notify() {
    let setup = setup(Duration::from_secs(5));
    let mut tls = connect(&setup).await;
    tls.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut all = Vec::new();
    // read_to_end fails with UnexpectedEof when the stream ends without close_notify.
    tls.read_to_end(&mut all).await.expect("a clean TLS close (close_notify)");
    assert!(all.ends_with(&pattern(BIG)[BIG - 4096..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_on_the_tls_port_gets_a_readable_400() {
    let setup = setup(Duration::from_secs(5));
    let https = setup.https;
    let answer = tokio::task::spawn_blocking(move || {
        let mut tcp = TcpStream::connect(https).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n").unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(answer.contains("This port speaks HTTPS"), "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");
    assert_eq!(status_when(&setup.server, |s| s.tls_plaintext_requests >= 1).await.tls_plaintext_requests, 1);
}

/// Sends `bytes`, half-closes, and returns how long the server took to close.
fn send_and_wait_close(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Duration {
    let start = Instant::now();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(bytes).unwrap();
    if half_close {
        tcp.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut rest = Vec::new();
    // A reset is a close too.
    let _ = tcp.read_to_end(&mut rest);
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_hellos_are_closed_quietly() {
    let setup = setup(Duration::from_secs(5));
    let https = setup.https;
    // A real ClientHello's start: handshake record, TLS 1.0 record version, a length that
    // promises far more than is sent.
    let truncated: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    let waited = tokio::task::spawn_blocking(move || {
        [
            send_and_wait_close(https, b"\x00\x01\x02garbage\xff", false),
            send_and_wait_close(https, b"get / http/1.1\r\n\r\n", false),
            send_and_wait_close(https, truncated, true),
            send_and_wait_close(https, &[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff], false),
        ]
    })
    .await
    .unwrap();
    for (i, waited) in waited.iter().enumerate() {
        assert!(*waited < Duration::from_secs(3), "case {i} took {waited:?} to be closed");
    }
    let status = status_when(&setup.server, |s| s.tls_failed_handshakes >= 4).await;
    assert_eq!(status.tls_failed_handshakes, 4, "{status:?}");
    assert_eq!(status.tls_plaintext_requests, 0);
    assert_eq!(status.tls_handshake_timeouts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_timeout_cuts_silent_and_stalled_clients() {
    let setup = setup(Duration::from_millis(400));
    let https = setup.https;
    let waited = tokio::task::spawn_blocking(move || {
        [
            send_and_wait_close(https, b"", false),
            // A ClientHello that stops half-way, the connection left open.
            send_and_wait_close(https, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01], false),
        ]
    })
    .await
    .unwrap();
    for waited in waited {
        assert!(waited >= Duration::from_millis(350) && waited < Duration::from_secs(3), "{waited:?}");
    }
    assert_eq!(status_when(&setup.server, |s| s.tls_handshake_timeouts >= 2).await.tls_handshake_timeouts, 2);
    // The listener still serves.
    let mut tls = connect(&setup).await;
    tls.write_all(get("/").as_bytes()).await.unwrap();
    assert!(response(&mut tls).await.0.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_tls_connections_and_a_graceful_stop_sends_close_notify() {
    let mut setup = setup(Duration::from_secs(5));
    let mut tls = connect(&setup).await;
    tls.write_all(get("/").as_bytes()).await.unwrap();
    assert!(response(&mut tls).await.0.starts_with("HTTP/1.1 200"));

    // A reload with a new certificate and no HSTS: the open connection keeps working and
    // its next request takes the new generation.
    let mut config = (*setup.server.current().config).clone();
    config.sites[0].hsts = None;
    let new_cert = cert();
    setup.server.install(generation(2, &config, &new_cert));
    tls.write_all(get("/").as_bytes()).await.unwrap();
    let (head, _) = response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "strict-transport-security"), None, "the new generation answered");
    // New connections get the new certificate.
    let tcp = tokio::net::TcpStream::connect(setup.https).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let fresh = connector(&new_cert).connect(name.clone(), tcp).await.unwrap();
    assert_eq!(fresh.get_ref().1.peer_certificates().unwrap()[0], new_cert.der);
    let tcp = tokio::net::TcpStream::connect(setup.https).await.unwrap();
    assert!(connector(&setup.cert).connect(name, tcp).await.is_err(), "the old certificate is gone");

    // A graceful stop: the idle keep-alive connection is closed with close_notify.
    setup.server.stop_accepting_all();
    setup.server.begin_drain();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .expect("closed within the drain grace")
        .expect("a clean TLS close (close_notify)");
    assert!(rest.is_empty());
    assert!(setup.server.wait_connections(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_redirects_to_https_except_acme_challenges_and_carries_no_hsts() {
    let setup = setup(Duration::from_secs(5));
    let (http, port) = (setup.http, setup.https.port());
    let answers = tokio::task::spawn_blocking(move || {
        ["/a/b?c=d", "/.well-known/acme-challenge/token"].map(|path| {
            let mut tcp = TcpStream::connect(http).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(tcp, "GET {path} HTTP/1.1\r\nHost: LocalHost:8080\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = String::new();
            tcp.read_to_string(&mut answer).unwrap();
            answer
        })
    })
    .await
    .unwrap();
    assert!(answers[0].starts_with("HTTP/1.1 308 Permanent Redirect\r\n"), "{}", answers[0]);
    let location = format!("https://localhost:{port}/a/b?c=d");
    assert_eq!(header(&answers[0], "location"), Some(location.as_str()));
    assert!(answers[1].starts_with("HTTP/1.1 200"), "{}", answers[1]);
    assert!(answers[1].ends_with("token-body"));
    for answer in answers {
        assert_eq!(header(&answer, "strict-transport-security"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_without_a_server_config_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = config(root.path(), addr, addr, Duration::from_secs(1));
    let mut server = Server::new(Generation::new(
        1,
        Arc::new(config),
        AccessLogSink::open(&graced_config::AccessLog::Off, false).unwrap(),
    ));
    let err = server.start_accepting("https", listener.as_fd()).unwrap_err();
    assert!(err.to_string().contains("no TLS configuration"), "{err}");
    server.start_accepting("http", listener.as_fd()).unwrap();
}

/// Between the handshake and the first request a connection is parked without HTTP
/// state: a request sent later is served, one idle for `keepalive_timeout` is closed with
/// `close_notify`, and a graceful stop reaches a parked connection like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_serves_its_late_first_request_and_closes_cleanly() {
    let mut setup = setup(Duration::from_secs(5));
    let mut config = (*setup.server.current().config).clone();
    config.limits.keepalive_timeout = Duration::from_millis(400);
    setup.server.install(generation(2, &config, &setup.cert));

    let mut late = connect(&setup).await;
    let mut idle = connect(&setup).await;
    let mut draining = connect(&setup).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    late.write_all(get("/").as_bytes()).await.unwrap();
    assert!(response(&mut late).await.0.starts_with("HTTP/1.1 200"), "served after the park");

    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
        .await
        .expect("closed after keepalive_timeout")
        .expect("a clean TLS close (close_notify)");
    let waited = started.elapsed();
    assert!(rest.is_empty() && waited >= Duration::from_millis(150), "closed after {waited:?}");

    // `draining` has been parked for keepalive_timeout too: give it a fresh one.
    drop(draining);
    draining = connect(&setup).await;
    setup.server.stop_accepting_all();
    setup.server.begin_drain();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), draining.read_to_end(&mut rest))
        .await
        .expect("closed within the drain grace")
        .expect("a clean TLS close (close_notify)");
    assert!(rest.is_empty());
    drop(late);
    assert!(setup.server.wait_connections(Duration::from_secs(5)).await);
}
