//! The TLS half of bench-client: rustls 0.23 with ring, TLS 1.3 only, key exchange X25519 (P-256
//! offered second), AES-128-GCM first (browsers' order), SNI `localhost`, no ALPN
//! (HTTP/1.1). Neither the server's certificate nor its handshake signature is checked (the bench
//! measures servers, whose work is the same either way; wrk does not check the chain either).
//!
//! * `tls-load --port P --path /1k.txt --conns N --secs S --mode keepalive|close [--resume 0|1]
//!   [--interval-ms MS]`: like `load` (never retries; a request is a failure unless it got a
//!   complete 2xx response). `close`: a new connection and handshake per request. `--resume 1`:
//!   each connection keeps its own session store and offers its last ticket on the next
//!   handshake; the report counts full and resumed handshakes and the handshakes that offered a
//!   ticket (`offered`), so resumed ÷ offered is the share of resumptions that succeeded.
//! * `tls-idle --port P --n N [--threads T] [--hold-secs S]`: opens N connections, completes
//!   every handshake, prints `ready opened=… failed=…`, holds them idle until a line arrives on
//!   stdin (or S seconds), then prints how many the server still keeps open (`alive=…`).

use std::io::{BufRead, ErrorKind, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, NamedGroup, SignatureScheme,
    StreamOwned,
};

use crate::{Fail, MAX_REQUESTS, Opts, connect, exchange, request_bytes};

/// Accepts the server's certificate and signatures unchecked: the bench measures the server's
/// side of the handshake (it still signs, and does its key exchange), not the client's checks,
/// so the client's CPU share stays small (wrk does not check the chain either).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A session store that counts the handshakes that offered a TLS 1.3 ticket.
#[derive(Debug)]
struct CountingStore {
    inner: ClientSessionMemoryCache,
    offered: AtomicU64,
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(name, group);
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(name)
    }
    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(name, value);
    }
    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.inner.remove_tls12_session(name);
    }
    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.inner.insert_tls13_ticket(name, value);
    }
    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        let t = self.inner.take_tls13_ticket(name);
        if t.is_some() {
            self.offered.fetch_add(1, Ordering::Relaxed);
        }
        t
    }
}

fn config(store: Option<Arc<CountingStore>>) -> Arc<ClientConfig> {
    // ring (deprecated in 0.23.48 for lacking post-quantum groups) builds with cc alone; the
    // key exchange is X25519, which all the servers measured here pick too.
    // Its default order now puts secp384r1 first (slow generic arithmetic on both sides); offer
    // what browsers and OpenSSL clients (wrk) offer first: X25519, then P-256.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups =
        vec![rustls::crypto::ring::kx_group::X25519, rustls::crypto::ring::kx_group::SECP256R1];
    let provider = Arc::new(provider);
    let mut c = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
        .with_no_client_auth();
    c.resumption = match store {
        Some(s) => Resumption::store(s),
        None => Resumption::disabled(),
    };
    Arc::new(c)
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake (the client's Finished is sent).
fn handshake(port: u16, cfg: &Arc<ClientConfig>) -> Result<Tls, Fail> {
    let mut tcp = connect(port)?;
    let name = ServerName::try_from("localhost").expect("a DNS name");
    let mut conn = ClientConnection::new(cfg.clone(), name).map_err(|_| Fail::Parse)?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Err(match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => Fail::Timeout,
                _ => Fail::Handshake,
            });
        }
    }
    Ok(StreamOwned::new(conn, tcp))
}

#[derive(Default)]
struct TlsCounts {
    ok: AtomicU64,
    fails: Mutex<[u64; 7]>,
    reconnects: AtomicU64,
    full: AtomicU64,
    resumed: AtomicU64,
    offered: AtomicU64,
}

impl TlsCounts {
    fn fail(&self, f: Fail) {
        self.fails.lock().unwrap()[f as usize] += 1;
    }
}

pub fn load(o: &Opts) {
    let port = o.port();
    let path = o.str("path", "/");
    let conns = o.int("conns", 8) as usize;
    let secs = o.float("secs", 10.0);
    let close_mode = o.str("mode", "keepalive") == "close";
    let resume = o.int("resume", 0) != 0;
    let interval = Duration::from_millis(o.int("interval-ms", 0) as u64);
    let request = Arc::new(request_bytes(&path, close_mode));
    let counts = Arc::new(TlsCounts::default());
    let budget = Arc::new(AtomicU64::new(o.int("max", MAX_REQUESTS as i64) as u64));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (request, counts, budget) = (request.clone(), counts.clone(), budget.clone());
            std::thread::spawn(move || {
                let w = Worker { port, request: &request, close_mode, resume, interval, deadline };
                w.run(&budget, &counts)
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let c = &*counts;
    let f = *c.fails.lock().unwrap();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "mode={} resume={} ok={} failed={} connect={} handshake={} write={} read={} timeout={} status={} parse={} \
         reconnects={} full={} resumed={} offered={} secs={:.2} rps={:.0}",
        if close_mode { "close" } else { "keepalive" },
        u8::from(resume),
        get(&c.ok),
        f.iter().sum::<u64>(),
        f[Fail::Connect as usize],
        f[Fail::Handshake as usize],
        f[Fail::Write as usize],
        f[Fail::Read as usize],
        f[Fail::Timeout as usize],
        f[Fail::Status as usize],
        f[Fail::Parse as usize],
        get(&c.reconnects),
        get(&c.full),
        get(&c.resumed),
        get(&c.offered),
        elapsed,
        get(&c.ok) as f64 / elapsed
    );
}

struct Worker<'a> {
    port: u16,
    request: &'a [u8],
    close_mode: bool,
    resume: bool,
    interval: Duration,
    deadline: Instant,
}

impl Worker<'_> {
    fn run(&self, budget: &AtomicU64, c: &TlsCounts) {
        let store = self.resume.then(|| {
            Arc::new(CountingStore { inner: ClientSessionMemoryCache::new(4), offered: AtomicU64::new(0) })
        });
        let cfg = config(store.clone());
        let mut conn: Option<Tls> = None;
        let mut buf = Vec::with_capacity(128 * 1024);
        while Instant::now() < self.deadline {
            if budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err() {
                break;
            }
            if !self.interval.is_zero() {
                std::thread::sleep(self.interval);
            }
            let stream = match conn.as_mut() {
                Some(s) => s,
                None => {
                    let offered0 = store.as_ref().map_or(0, |s| s.offered.load(Ordering::Relaxed));
                    let r = handshake(self.port, &cfg);
                    if let Some(s) = &store {
                        c.offered.fetch_add(s.offered.load(Ordering::Relaxed) - offered0, Ordering::Relaxed);
                    }
                    match r {
                        Ok(s) => {
                            match s.conn.handshake_kind() {
                                Some(HandshakeKind::Resumed) => c.resumed.fetch_add(1, Ordering::Relaxed),
                                _ => c.full.fetch_add(1, Ordering::Relaxed),
                            };
                            conn.insert(s)
                        }
                        Err(f) => {
                            c.fail(f);
                            // As in `load`: a failed connect is not retried at full speed.
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    }
                }
            };
            match exchange(stream, self.request, &mut buf) {
                Ok(r) => {
                    if (200..300).contains(&r.status) {
                        c.ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        c.fail(Fail::Status);
                    }
                    if r.close || self.close_mode {
                        if !self.close_mode {
                            c.reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        // Read the rest (close_notify or EOF) so the tickets that came
                        // with the response are in the store; then close.
                        let mut s = conn.take().unwrap();
                        let _ = s.sock.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut b = [0u8; 512];
                        while let Ok(n) = s.read(&mut b) {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                }
                Err(f) => {
                    c.fail(f);
                    conn = None;
                }
            }
        }
    }
}

pub fn idle(o: &Opts) {
    let port = o.port();
    let n = o.int("n", 10_000) as usize;
    let threads = o.int("threads", 4).max(1) as usize;
    let hold = Duration::from_secs_f64(o.float("hold-secs", 120.0));
    let start = Instant::now();
    let cfg = config(None);
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (cfg, failed) = (cfg.clone(), failed.clone());
            let count = n / threads + usize::from(t < n % threads);
            std::thread::spawn(move || {
                let mut held = Vec::with_capacity(count);
                for _ in 0..count {
                    if start.elapsed() > Duration::from_secs(60) {
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    match handshake(port, &cfg) {
                        Ok(s) => held.push(s),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                held
            })
        })
        .collect();
    let mut held: Vec<Tls> = workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect();
    println!(
        "ready opened={} failed={} secs={:.2}",
        held.len(),
        failed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    // Wait for a line on stdin (the bench has measured), at most `hold`.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(hold);
    // Which connections does the server still hold open? (Pending data, such as session
    // tickets, means open; EOF or an error means closed.)
    let mut alive = 0;
    for s in &mut held {
        let _ = s.sock.set_nonblocking(true);
        let mut b = [0u8; 4096];
        let mut open = true;
        for _ in 0..16 {
            match s.sock.read(&mut b) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        alive += usize::from(open);
    }
    println!("alive={alive} closed={}", held.len() - alive);
}
