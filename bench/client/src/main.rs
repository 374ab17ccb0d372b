//! bench-client: the measuring half of `bench/run` (std only; a few libc calls declared by hand).
//!
//! Subcommands (every loop is bounded in time and in count; traffic goes to 127.0.0.1 only):
//!
//! * `load`      — N blocking connections sending GETs, keep-alive or one connection per request.
//!   It never retries. A request is a failure unless it got a complete 2xx response; the one
//!   exception is a keep-alive connection the server closed after a `Connection: close`
//!   response: it is reconnected before the next request, which is not a failure.
//! * `signal`    — sends a signal to a pid R times a second for S seconds (reload storms).
//! * `restarts`  — runs a server as its child and restarts it R times a second for S seconds
//!   (stop signal, wait for the exit, start the next one, wait for its first 200). With
//!   `--hold PORT` it is the socket holder systemd would be: it binds the port once and passes
//!   it to every server as fd 3 (`LISTEN_FDS=1`, `LISTEN_PID`, `LISTEN_FDNAMES=http`).
//! * `latency`   — reload latency: swaps a config, signals, and probes until every request sees it.
//! * `startstop` — start-up to the first 200, idle memory, and graceful stop time, N times.
//! * `mem`       — RSS and PSS summed over a process and all its descendants.
//! * `tls-load`  — `load` over TLS 1.3 (rustls): keep-alive, or a new connection (a full or a
//!   resumed handshake) per request; counts full and resumed handshakes (see tls.rs).
//! * `tls-idle`  — opens N TLS connections, completes their handshakes and holds them idle.
//!
//! The TLS subcommands use rustls with ring (crates.io, in Cargo.lock); everything else is std.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod tls;

mod sys {
    unsafe extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
        pub fn dup2(old: i32, new: i32) -> i32;
        pub fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    }
    pub const F_DUPFD_CLOEXEC: i32 = 1030;
}

/// A hard cap on the requests any one `load` run makes, whatever its duration.
const MAX_REQUESTS: u64 = 50_000_000;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!(
            "usage: bench-client load|signal|restarts|latency|startstop|mem|tls-load|tls-idle [--key value]... [-- CMD ARGS]"
        );
        std::process::exit(2);
    }
    let sub = args.remove(0);
    let opts = Opts::parse(args);
    match sub.as_str() {
        "load" => load(&opts),
        "signal" => signal_storm(&opts),
        "restarts" => restarts(&opts),
        "latency" => latency(&opts),
        "startstop" => startstop(&opts),
        "tls-load" => tls::load(&opts),
        "tls-idle" => tls::idle(&opts),
        "mem" => {
            let (rss, pss, n) = tree_mem(opts.int("pid", 0) as i32);
            println!("rss_kib={rss} pss_kib={pss} procs={n}");
        }
        other => {
            eprintln!("unknown subcommand {other}");
            std::process::exit(2);
        }
    }
}

struct Opts {
    pairs: Vec<(String, String)>,
    command: Vec<String>,
}

impl Opts {
    fn parse(args: Vec<String>) -> Opts {
        let mut pairs = Vec::new();
        let mut it = args.into_iter();
        let mut command = Vec::new();
        while let Some(a) = it.next() {
            if a == "--" {
                command = it.collect();
                break;
            }
            let key = a.strip_prefix("--").unwrap_or_else(|| panic!("expected --key, got {a}")).to_owned();
            let value = it.next().unwrap_or_else(|| panic!("--{key} needs a value"));
            pairs.push((key, value));
        }
        Opts { pairs, command }
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn str(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_owned()
    }
    fn int(&self, key: &str, default: i64) -> i64 {
        self.get(key).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("--{key}: not a number")))
    }
    fn float(&self, key: &str, default: f64) -> f64 {
        self.get(key).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("--{key}: not a number")))
    }
    fn signal(&self, key: &str, default: &str) -> i32 {
        let name = self.str(key, default);
        match name.trim_start_matches("SIG") {
            "HUP" => 1,
            "INT" => 2,
            "QUIT" => 3,
            "KILL" => 9,
            "USR1" => 10,
            "USR2" => 12,
            "TERM" => 15,
            "WINCH" => 28,
            n => n.parse().unwrap_or_else(|_| panic!("unknown signal {name}")),
        }
    }
    fn port(&self) -> u16 {
        self.int("port", 0) as u16
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { sys::kill(pid, sig) == 0 }
}

// ---------------------------------------------------------------- HTTP/1.1 exchange

#[derive(Clone, Copy, Debug)]
enum Fail {
    Connect,
    Write,
    /// EOF or a reset before the response was complete.
    Read,
    Timeout,
    Status,
    Parse,
    /// The TLS handshake failed (alert, reset or EOF during it); `tls-*` only.
    Handshake,
}

struct Response {
    status: u16,
    close: bool,
    body_start: usize,
    body_len: usize,
}

fn io_fail(e: &std::io::Error, kind: Fail) -> Fail {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Fail::Timeout,
        _ => kind,
    }
}

fn connect(port: u16) -> Result<TcpStream, Fail> {
    let s = TcpStream::connect_timeout(&addr(port), IO_TIMEOUT).map_err(|e| io_fail(&e, Fail::Connect))?;
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    Ok(s)
}

/// Sends `request` and reads one response (Content-Length framed) into `buf`.
fn exchange<S: Read + Write>(stream: &mut S, request: &[u8], buf: &mut Vec<u8>) -> Result<Response, Fail> {
    stream.write_all(request).map_err(|e| io_fail(&e, Fail::Write))?;
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        let n = stream.read(&mut chunk).map_err(|e| io_fail(&e, Fail::Read))?;
        if n == 0 {
            return Err(Fail::Read);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(Fail::Parse);
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Fail::Parse)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or(Fail::Parse)?;
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(Fail::Parse)?;
    let mut len = 0usize;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            len = value.parse().map_err(|_| Fail::Parse)?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Fail::Parse); // not used by any server for static files here
        }
    }
    if status_line.starts_with("HTTP/1.0") {
        close = true;
    }
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).map_err(|e| io_fail(&e, Fail::Read))?;
        if n == 0 {
            return Err(Fail::Read);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Response { status, close, body_start: head_end, body_len: len })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn request_bytes(path: &str, close: bool) -> Vec<u8> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench-client\r\n{conn}\r\n").into_bytes()
}

/// Waits for the server to close a connection after a `Connection: close` response.
fn await_close(stream: &mut TcpStream) {
    let mut b = [0u8; 512];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    while let Ok(n) = stream.read(&mut b) {
        if n == 0 {
            break;
        }
    }
}

/// One GET with a fresh connection: the status, or None.
fn get_once(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr(port), timeout).ok()?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let mut buf = Vec::new();
    exchange(&mut s, &request_bytes(path, true), &mut buf).ok().map(|r| r.status)
}

/// Polls with GETs until a 200 (or the deadline). Returns when it came.
fn wait_200(port: u16, path: &str, limit: Duration, pause: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if get_once(port, path, Duration::from_secs(5)) == Some(200) {
            return Some(Instant::now());
        }
        std::thread::sleep(pause);
    }
    None
}

// ---------------------------------------------------------------- load

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    connect: AtomicU64,
    write: AtomicU64,
    read: AtomicU64,
    timeout: AtomicU64,
    status: AtomicU64,
    parse: AtomicU64,
    reconnects: AtomicU64,
}

impl Counts {
    fn fail(&self, f: Fail) {
        let c = match f {
            Fail::Connect => &self.connect,
            Fail::Write => &self.write,
            Fail::Read => &self.read,
            Fail::Timeout => &self.timeout,
            Fail::Status => &self.status,
            Fail::Parse | Fail::Handshake => &self.parse,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

fn load(o: &Opts) {
    let port = o.port();
    let path = o.str("path", "/");
    let conns = o.int("conns", 8) as usize;
    let secs = o.float("secs", 10.0);
    let close_mode = o.str("mode", "keepalive") == "close";
    let request = Arc::new(request_bytes(&path, close_mode));
    let counts = Arc::new(Counts::default());
    let budget = Arc::new(AtomicU64::new(o.int("max", MAX_REQUESTS as i64) as u64));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (request, counts, budget) = (request.clone(), counts.clone(), budget.clone());
            std::thread::spawn(move || load_worker(port, &request, close_mode, deadline, &budget, &counts))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let c = &*counts;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let failed =
        get(&c.connect) + get(&c.write) + get(&c.read) + get(&c.timeout) + get(&c.status) + get(&c.parse);
    println!(
        "mode={} ok={} failed={} connect={} write={} read={} timeout={} status={} parse={} reconnects={} secs={:.2} rps={:.0}",
        if close_mode { "close" } else { "keepalive" },
        get(&c.ok),
        failed,
        get(&c.connect),
        get(&c.write),
        get(&c.read),
        get(&c.timeout),
        get(&c.status),
        get(&c.parse),
        get(&c.reconnects),
        elapsed,
        get(&c.ok) as f64 / elapsed
    );
}

fn load_worker(
    port: u16,
    request: &[u8],
    close_mode: bool,
    deadline: Instant,
    budget: &AtomicU64,
    c: &Counts,
) {
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(128 * 1024);
    while Instant::now() < deadline {
        if budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err() {
            break;
        }
        let stream = match conn.as_mut() {
            Some(s) => s,
            None => match connect(port) {
                Ok(s) => conn.insert(s),
                Err(f) => {
                    c.fail(f);
                    // A refused connection fails at once: pause so the count means
                    // "requests a client would have made", not "how fast we can spin".
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match exchange(stream, request, &mut buf) {
            Ok(r) => {
                if (200..300).contains(&r.status) {
                    c.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.fail(Fail::Status);
                }
                if r.close || close_mode {
                    if !close_mode {
                        c.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut s = conn.take().unwrap();
                    await_close(&mut s);
                }
            }
            Err(f) => {
                c.fail(f);
                conn = None;
            }
        }
    }
}

// ---------------------------------------------------------------- signal storm

fn signal_storm(o: &Opts) {
    let pid = o.int("pid", 0) as i32;
    let sig = o.signal("sig", "USR1");
    let rate = o.float("rate", 20.0);
    let secs = o.float("secs", 20.0);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut failed = 0u64;
    let total = (rate * secs).round() as u64;
    for k in 0..total {
        let at = start + Duration::from_secs_f64(k as f64 / rate);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if kill(pid, sig) {
            sent += 1;
        } else {
            failed += 1;
        }
    }
    println!("sent={sent} failed={failed} secs={:.2}", start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------- restarts

struct Spawner {
    command: Vec<String>,
    held: Option<TcpListener>,
    log: Option<std::fs::File>,
}

impl Spawner {
    fn spawn(&self) -> Child {
        let mut cmd;
        if let Some(listener) = &self.held {
            // systemd's way: the socket as fd 3, LISTEN_PID = the pid that execs graced.
            cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg("LISTEN_PID=$$ exec \"$0\" \"$@\"").args(&self.command);
            cmd.env("LISTEN_FDS", "1").env("LISTEN_FDNAMES", "http");
            let fd = listener.as_raw_fd();
            // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let high = sys::fcntl(fd, sys::F_DUPFD_CLOEXEC, 64);
                    if high < 0 || sys::dup2(high, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        } else {
            cmd = Command::new(&self.command[0]);
            cmd.args(&self.command[1..]);
        }
        cmd.stdin(Stdio::null());
        match &self.log {
            Some(f) => {
                cmd.stdout(f.try_clone().unwrap()).stderr(f.try_clone().unwrap());
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        cmd.spawn().unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.command))
    }
}

/// Sends `sig` and waits for the exit; SIGKILL after `limit`. Returns (time to exit, forced).
fn stop_child(child: &mut Child, sig: i32, limit: Duration) -> (Duration, bool) {
    let pid = child.id() as i32;
    let done = Arc::new(AtomicBool::new(false));
    let forced = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (done, forced) = (done.clone(), forced.clone());
        std::thread::spawn(move || {
            let until = Instant::now() + limit;
            while Instant::now() < until {
                if done.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if !done.load(Ordering::Acquire) {
                forced.store(true, Ordering::Release);
                kill(pid, 9);
            }
        })
    };
    let t0 = Instant::now();
    kill(pid, sig);
    let _ = child.wait();
    let took = t0.elapsed();
    done.store(true, Ordering::Release);
    let _ = watchdog.join();
    (took, forced.load(Ordering::Acquire))
}

fn open_log(o: &Opts) -> Option<std::fs::File> {
    o.get("log").map(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).expect("log file"))
}

fn restarts(o: &Opts) {
    let port = o.port();
    let rate = o.float("rate", 5.0);
    let secs = o.float("secs", 20.0);
    let stop_sig = o.signal("stop-sig", "WINCH");
    let ready_path = o.str("ready-path", "/");
    let held = o.get("hold").map(|_| TcpListener::bind(addr(port)).expect("cannot bind the held port"));
    let spawner = Spawner { command: o.command.clone(), held, log: open_log(o) };
    let mut child = spawner.spawn();
    if wait_200(port, &ready_path, Duration::from_secs(10), Duration::from_millis(1)).is_none() {
        kill(child.id() as i32, 9);
        let _ = child.wait();
        eprintln!("the first server did not answer 200");
        std::process::exit(1);
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_millis(o.int("delay-ms", 0) as u64));
    let start = Instant::now();
    let total = (rate * secs).round() as u64;
    let (mut done, mut forced, mut not_ready) = (0u64, 0u64, 0u64);
    let mut stops = Vec::new();
    let mut gaps = Vec::new();
    for k in 1..=total {
        let at = start + Duration::from_secs_f64(k as f64 / rate);
        // Restarts that cannot keep up with the rate are not made up for after the window.
        if at.max(Instant::now()) > start + Duration::from_secs_f64(secs) + Duration::from_millis(1) {
            break;
        }
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (took, was_forced) = stop_child(&mut child, stop_sig, Duration::from_secs(10));
        let exited = Instant::now();
        forced += was_forced as u64;
        stops.push(took);
        child = spawner.spawn();
        match wait_200(port, &ready_path, Duration::from_secs(10), Duration::from_millis(1)) {
            Some(t) => gaps.push(t - exited),
            None => not_ready += 1,
        }
        done += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Keep the last server up until the clients are done.
    std::thread::sleep(Duration::from_millis(o.int("tail-ms", 0) as u64));
    let (took, was_forced) = stop_child(&mut child, stop_sig, Duration::from_secs(10));
    forced += was_forced as u64;
    stops.push(took);
    println!(
        "restarts={done} forced_kills={forced} not_ready={not_ready} secs={elapsed:.2} stop_ms_median={:.2} stop_ms_max={:.2} exit_to_200_ms_median={:.2} exit_to_200_ms_max={:.2}",
        ms(median(&mut stops)),
        ms(stops.iter().max().copied().unwrap_or_default()),
        ms(median(&mut gaps)),
        ms(gaps.iter().max().copied().unwrap_or_default()),
    );
}

fn median(v: &mut [Duration]) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------- reload latency

struct Probe {
    /// Nanoseconds since the iteration's base instant.
    sent: i64,
    received: i64,
    new: bool,
}

fn latency(o: &Opts) {
    let port = o.port();
    let pid = o.int("pid", 0) as i32;
    let sig = o.signal("sig", "USR1");
    let n = o.int("n", 20) as usize;
    let path = o.str("path", "/v.txt");
    let target = o.str("conf", "");
    let variants = [o.str("conf-a", ""), o.str("conf-b", "")];
    let bodies = [o.str("body-a", "A\n"), o.str("body-b", "B\n")];
    let fresh = o.int("probers-new", 2) as usize;
    let kept = o.int("probers-keepalive", 1) as usize;
    let settle = Duration::from_millis(o.int("settle-ms", 300) as u64);
    let quiet = Duration::from_millis(o.int("quiet-ms", 200) as u64);
    let max_wait = Duration::from_millis(o.int("max-ms", 5000) as u64);
    for i in 0..n {
        // Iteration i switches to variant (i+1)%2: the server started on variant 0.
        let want = (i + 1) % 2;
        let tmp = format!("{target}.bench-tmp");
        std::fs::copy(&variants[want], &tmp).expect("copy config");
        std::fs::rename(&tmp, &target).expect("rename config");
        std::thread::sleep(settle);
        let base = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let signalled = Arc::new(AtomicI64::new(i64::MAX));
        let last_old = Arc::new(AtomicI64::new(i64::MIN));
        let seen_new = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Vec::<Probe>::new()));
        let new_body = bodies[want].clone().into_bytes();
        let threads: Vec<_> = (0..fresh + kept)
            .map(|t| {
                let keepalive = t >= fresh;
                let (stop, signalled, last_old, seen_new, failures, samples) = (
                    stop.clone(),
                    signalled.clone(),
                    last_old.clone(),
                    seen_new.clone(),
                    failures.clone(),
                    samples.clone(),
                );
                let new_body = new_body.clone();
                let path = path.clone();
                std::thread::spawn(move || {
                    let request = request_bytes(&path, !keepalive);
                    let mut local = Vec::new();
                    let mut conn: Option<TcpStream> = None;
                    let mut buf = Vec::new();
                    let mut budget = 2_000_000u32;
                    while !stop.load(Ordering::Acquire) && budget > 0 {
                        budget -= 1;
                        let sent = base.elapsed().as_nanos() as i64;
                        let stream = match conn.as_mut() {
                            Some(s) => s,
                            None => match connect(port) {
                                Ok(s) => conn.insert(s),
                                Err(_) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                    std::thread::sleep(Duration::from_millis(1));
                                    continue;
                                }
                            },
                        };
                        match exchange(stream, &request, &mut buf) {
                            Ok(r) if r.status == 200 => {
                                let received = base.elapsed().as_nanos() as i64;
                                let body = &buf[r.body_start..r.body_start + r.body_len];
                                let new = body == new_body.as_slice();
                                if new {
                                    seen_new.store(true, Ordering::Release);
                                } else if sent >= signalled.load(Ordering::Acquire) {
                                    last_old.fetch_max(received, Ordering::AcqRel);
                                }
                                local.push(Probe { sent, received, new });
                                if r.close || !keepalive {
                                    conn = None;
                                }
                            }
                            _ => {
                                failures.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                            }
                        }
                    }
                    samples.lock().unwrap().extend(local);
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        let t_sig = base.elapsed().as_nanos() as i64;
        signalled.store(t_sig, Ordering::Release);
        kill(pid, sig);
        let sig_at = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(1));
            let now = base.elapsed().as_nanos() as i64;
            let quiet_since = last_old.load(Ordering::Acquire).max(t_sig);
            if seen_new.load(Ordering::Acquire)
                && sig_at.elapsed() >= Duration::from_millis(50)
                && now - quiet_since >= quiet.as_nanos() as i64
            {
                break;
            }
            if sig_at.elapsed() >= max_wait {
                break;
            }
        }
        stop.store(true, Ordering::Release);
        for t in threads {
            let _ = t.join();
        }
        let mut all = std::mem::take(&mut *samples.lock().unwrap());
        all.sort_by_key(|p| p.sent);
        let first = all.iter().filter(|p| p.new).map(|p| p.received).min();
        // The earliest send time after which every request got the new config.
        let last_old_sent = all.iter().filter(|p| !p.new).map(|p| p.sent).max().unwrap_or(i64::MIN);
        let suffix = all.iter().filter(|p| p.sent > last_old_sent).map(|p| p.sent).min();
        let probes_after = all.iter().filter(|p| p.sent >= t_sig).count();
        match (first, suffix) {
            (Some(first), Some(suffix)) => {
                let first_us = (first - t_sig) as f64 / 1000.0;
                let all_us = ((suffix - t_sig) as f64 / 1000.0).max(first_us);
                println!(
                    "iteration={i} first_us={first_us:.1} all_us={all_us:.1} probes_after_signal={probes_after} failed_probes={}",
                    failures.load(Ordering::Relaxed)
                );
            }
            _ => println!(
                "iteration={i} first_us=nan all_us=nan probes_after_signal={probes_after} failed_probes={}",
                failures.load(Ordering::Relaxed)
            ),
        }
    }
}

// ---------------------------------------------------------------- start-up, idle memory, stop

fn startstop(o: &Opts) {
    let port = o.port();
    let path = o.str("path", "/");
    let n = o.int("n", 10);
    let stop_sig = o.signal("stop-sig", "WINCH");
    let idle = Duration::from_millis(o.int("idle-ms", 500) as u64);
    let spawner = Spawner { command: o.command.clone(), held: None, log: open_log(o) };
    for i in 0..n {
        let t0 = Instant::now();
        let mut child = spawner.spawn();
        let Some(t200) = wait_200(port, &path, Duration::from_secs(10), Duration::from_micros(100)) else {
            kill(child.id() as i32, 9);
            let _ = child.wait();
            println!("iteration={i} startup_ms=nan");
            continue;
        };
        std::thread::sleep(idle);
        let (rss, pss, procs) = tree_mem(child.id() as i32);
        let (stop, forced) = stop_child(&mut child, stop_sig, Duration::from_secs(10));
        println!(
            "iteration={i} startup_ms={:.3} stop_ms={:.3} forced={forced} idle_rss_kib={rss} idle_pss_kib={pss} procs={procs}",
            ms(t200 - t0),
            ms(stop)
        );
        // Let the port and the kernel settle before the next start.
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------- memory of a process tree

fn descendants(pid: i32, out: &mut Vec<i32>) {
    out.push(pid);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            if !out.contains(&c) {
                descendants(c, out);
            }
        }
    }
}

fn kib_field(text: &str, field: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (RSS KiB, PSS KiB, processes) summed over `pid` and its descendants.
fn tree_mem(pid: i32) -> (u64, u64, usize) {
    let mut pids = Vec::new();
    descendants(pid, &mut pids);
    let mut rss = 0;
    let mut pss = 0;
    for p in &pids {
        rss += kib_field(&std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default(), "VmRSS:");
        pss += kib_field(
            &std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).unwrap_or_default(),
            "Pss:",
        );
    }
    (rss, pss, pids.len())
}
