//! Helpers for the lifecycle, activation and pid-file tests: a notify collector, a slow client, stderr capture.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{BIN, NotifySocket, Server, Site};

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC with.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Sends `signal` to `pid`.
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a pid this test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal}) failed");
}

/// The exit code, or a panic naming the signal that killed the process.
pub fn code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| panic!("killed by signal {:?}", status.signal()))
}

/// Environment variables a test's own environment must not leak into graced.
const SCRUB: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "JOURNAL_STREAM",
    "RUNTIME_DIRECTORY",
];

/// Removes the variables that would leak the test's own environment into a child.
pub fn scrub(command: &mut Command) -> &mut Command {
    for key in SCRUB {
        command.env_remove(key);
    }
    command
}

/// A process the test started, killed and reaped when dropped.
pub struct Reaped(pub std::process::Child);

impl Reaped {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `graced -f CONFIG` with `env`, without probing the port (a probe connection would
/// show up in STATUS=); wait for READY=1 on a [`Notes`] instead.
pub fn spawn(site: &Site, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(BIN);
    command
        .arg("-f")
        .arg(site.config_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for key in SCRUB {
        command.env_remove(key);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    Server { child: command.spawn().unwrap(), port: site.port }
}

/// Runs `graced ARGS -f CONFIG` to completion with a clean environment.
pub fn run(site: &Site, args: &[&str]) -> (i32, String) {
    let mut command = Command::new(BIN);
    command.args(args).arg("-f").arg(site.config_path());
    for key in SCRUB {
        command.env_remove(key);
    }
    let out = command.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (code(out.status), text)
}

/// Everything a child writes to stderr, read continuously (a full pipe would block it).
pub struct StderrLog {
    text: Arc<Mutex<String>>,
    /// Set by the reader once it has seen end of file: everything the child wrote is in `text`.
    ended: Arc<AtomicBool>,
}

impl StderrLog {
    pub fn capture(server: &mut Server) -> StderrLog {
        let stderr = server.child.stderr.take().expect("stderr is piped");
        Self::from_reader(stderr)
    }

    pub fn from_reader(reader: impl Read + Send + 'static) -> StderrLog {
        let text = Arc::new(Mutex::new(String::new()));
        let ended = Arc::new(AtomicBool::new(false));
        let (sink, end) = (text.clone(), ended.clone());
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut line = String::new();
            while let Ok(n) = reader.read_line(&mut line) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
            end.store(true, Ordering::Release);
        });
        StderrLog { text, ended }
    }

    /// What the child has written so far (the reader may still be behind the child).
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Everything the child wrote, for use once it has exited: waits (bounded) until the
    /// reader has drained the pipe to end of file. A child's exit does not mean the reader
    /// thread has read its last lines yet; asserting on `text()` right after `wait_exit`
    /// can see nothing at all.
    pub fn complete(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.ended.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.text()
    }

    /// Waits (bounded) until the text contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.text().contains(needle)
    }
}

/// A fake systemd notify socket read by a thread, so graced never blocks on a full
/// queue (`net.unix.max_dgram_qlen` is 10 here) and every datagram is timestamped.
pub struct Notes {
    socket: NotifySocket,
    rx: Receiver<(Instant, Vec<String>)>,
    stop: Arc<AtomicBool>,
}

impl Notes {
    pub fn new() -> Notes {
        let socket = NotifySocket::new();
        let reader = socket.socket.try_clone().unwrap();
        reader.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16384];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(n) = reader.recv(&mut buf) {
                    let lines = String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned).collect();
                    if tx.send((Instant::now(), lines)).is_err() {
                        break;
                    }
                }
            }
        });
        Notes { socket, rx, stop }
    }

    pub fn env_value(&self) -> String {
        self.socket.env_value()
    }

    /// The next datagram of any kind.
    pub fn next_any(&self, timeout: Duration) -> Option<(Instant, Vec<String>)> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next datagram that is not a watchdog ping or a bare periodic STATUS=.
    pub fn next_event(&self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((_, lines)) = self.next_any(left) else {
                panic!("no notify datagram (other than WATCHDOG=1 or a bare STATUS=) within {timeout:?}")
            };
            if !is_background(&lines) {
                return lines;
            }
        }
    }

    /// Datagrams until one has a line starting with `needle` (returned); panics after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Vec<String> {
        self.wait_for_all(needle, timeout).pop().unwrap()
    }

    /// Every datagram up to and including the first with a line starting with `needle`.
    pub fn wait_for_all(&self, needle: &str, timeout: Duration) -> Vec<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((_, lines)) = self.next_any(left) else {
                panic!("no notify datagram with {needle:?} within {timeout:?}; saw {seen:?}")
            };
            let hit = lines.iter().any(|l| l.starts_with(needle));
            seen.push(lines);
            if hit {
                return seen;
            }
        }
    }

    /// Everything already received or arriving within `quiet` of the previous one
    /// (at most 5 s in all: watchdog pings never stop).
    pub fn drain(&self, quiet: Duration) -> Vec<(Instant, Vec<String>)> {
        let cap = Instant::now() + Duration::from_secs(5);
        let mut all = Vec::new();
        while Instant::now() < cap {
            match self.next_any(quiet) {
                Some(d) => all.push(d),
                None => break,
            }
        }
        all
    }

    /// Every datagram arriving within `window` from now.
    pub fn collect_for(&self, window: Duration) -> Vec<(Instant, Vec<String>)> {
        let end = Instant::now() + window;
        let mut all = Vec::new();
        while let Some(d) = self.next_any(end.saturating_duration_since(Instant::now())) {
            all.push(d);
        }
        all
    }
}

impl Drop for Notes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// WATCHDOG=1 alone, or STATUS= alone (the periodic summary).
pub fn is_background(lines: &[String]) -> bool {
    lines == ["WATCHDOG=1"] || (lines.len() == 1 && lines[0].starts_with("STATUS="))
}

/// Matches `line` against `pattern`, where `{n}` stands for a decimal number and `{*}`
/// for any text (up to the next literal part); returns the captured texts.
pub fn match_line(line: &str, pattern: &str) -> Option<Vec<String>> {
    let mut captures = Vec::new();
    let mut rest = line;
    let mut pat = pattern;
    loop {
        let next = [pat.find("{n}"), pat.find("{*}")].into_iter().flatten().min();
        let Some(at) = next else {
            return (rest == pat).then_some(captures);
        };
        let literal = &pat[..at];
        rest = rest.strip_prefix(literal)?;
        let kind = &pat[at..at + 3];
        pat = &pat[at + 3..];
        let end = if kind == "{n}" {
            rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())
        } else {
            let next_literal_end =
                [pat.find("{n}"), pat.find("{*}")].into_iter().flatten().min().unwrap_or(pat.len());
            let literal = &pat[..next_literal_end];
            if literal.is_empty() {
                rest.len()
            } else if next_literal_end == pat.len() {
                // The tail must match exactly: take the last occurrence.
                rest.rfind(literal)?
            } else {
                rest.find(literal)?
            }
        };
        if kind == "{n}" && end == 0 {
            return None;
        }
        captures.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
}

/// Asserts a datagram's lines, in order, against patterns (see [`match_line`]);
/// returns every capture, in order.
#[track_caller]
pub fn assert_datagram(lines: &[String], patterns: &[&str]) -> Vec<String> {
    assert_eq!(lines.len(), patterns.len(), "datagram {lines:?} does not have the lines {patterns:?}");
    let mut captures = Vec::new();
    for (line, pattern) in lines.iter().zip(patterns) {
        match match_line(line, pattern) {
            Some(c) => captures.extend(c),
            None => panic!("datagram {lines:?}: line {line:?} does not match {pattern:?}"),
        }
    }
    captures
}

/// Writes `relative` in the site with `len` pseudo-random bytes and returns them.
pub fn write_big_file(site: &Site, relative: &str, len: usize, seed: u64) -> Vec<u8> {
    let data = crate::common::pattern(len, seed);
    std::fs::write(site.path(relative), &data).unwrap();
    data
}

/// Asserts equality of two large byte strings without printing them.
#[track_caller]
pub fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!("{what}: got {} bytes, want {}; first difference at {first:?}", got.len(), want.len());
    }
}

/// A TCP connection to 127.0.0.1:`port` whose receive buffer is small (set before connect,
/// so the kernel does not autotune it): a slow reader really holds the response in flight.
pub fn connect_small_rcvbuf(port: u16) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor we create and then hand to TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let size: libc::c_int = 16 * 1024;
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect to {port}: {}", std::io::Error::last_os_error());
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }
}

/// True when a connection to 127.0.0.1:`port` is refused.
pub fn refused(port: u16) -> bool {
    matches!(TcpStream::connect(("127.0.0.1", port)), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
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

pub const SLOW: u8 = 0;
pub const FAST: u8 = 1;
pub const STALL: u8 = 2;

/// How a slow download ended.
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
    /// Sends `GET path` (keep-alive) on a new small-buffer connection and starts reading slowly.
    pub fn start(port: u16, path: &str) -> SlowGet {
        let stream = connect_small_rcvbuf(port);
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
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    outcome.status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((n, v)) = line.split_once(':') {
            outcome.headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
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

/// Socket inodes among a process's open descriptors.
pub fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The inode of a socket this process holds.
pub fn inode_of(fd: &impl std::os::fd::AsRawFd) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap().ino()
}

/// Whether `/proc/PID` exists and its command is `comm`.
pub fn process_is(pid: u32, comm: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
}

/// Replaces `from` by `to` in the site's config file (asserting it was there).
pub fn edit_config(site: &Site, from: &str, to: &str) {
    let text = std::fs::read_to_string(site.config_path()).unwrap();
    assert!(text.contains(from), "config has no {from:?}:\n{text}");
    std::fs::write(site.config_path(), text.replace(from, to)).unwrap();
}

/// A config text read back, for messages.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
