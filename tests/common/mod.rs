//! Test helpers: run the real `graced` binary on loopback, speak raw HTTP/1.1 to it, read sd_notify datagrams.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[path = "../support/mod.rs"]
mod support;
#[allow(unused_imports)] // not every test crate uses each
pub use support::{Response, pattern};

pub const BIN: &str = env!("CARGO_BIN_EXE_graced");

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A temporary directory with a document root (`www/`) and a config file.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Site {
    /// `www/index.html` = "hello\n"; the config listens on a free port with its pid file inside the dir.
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        std::fs::write(dir.path().join("www/index.html"), "hello\n").unwrap();
        let site = Site { dir, port: free_port() };
        site.write_config("");
        site
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("graced.toml")
    }

    pub fn pid_path(&self) -> PathBuf {
        self.path("run/graced.pid")
    }

    /// Writes the standard config with `extra` appended (more tables, e.g. `[limits]`).
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "[server]\npid_file = \"{pid}\"\naccess_log = \"off\"\ngraceful_shutdown_timeout = \"5s\"\n\n\
             [[listen]]\nname = \"http\"\naddress = \"127.0.0.1:{port}\"\n\n[[site]]\nroot = \"www\"\n{extra}",
            pid = self.pid_path().display(),
            port = self.port,
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Writes the config with the `[server]` table replaced by `server` (without the header).
    pub fn write_config_with_server(&self, server: &str, extra: &str) {
        let text = format!(
            "[server]\npid_file = \"{pid}\"\n{server}\n\n[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:{port}\"\n\n\
             [[site]]\nroot = \"www\"\n{extra}",
            pid = self.pid_path().display(),
            port = self.port,
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// `graced -f CONFIG` with `env`, stdout/stderr captured; waits until the port accepts.
    pub fn start(&self, env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(BIN);
        command
            .arg("-f")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let server = Server { child, port: self.port };
        server.wait_listening(Duration::from_secs(10));
        server
    }

    /// `graced ARGS -f CONFIG`, run to completion.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN).args(args).arg("-f").arg(self.config_path()).output().unwrap()
    }
}

/// A running `graced`.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn wait_listening(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "graced did not listen on {} in time", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0, "kill failed");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "graced did not exit in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything it wrote to stderr (call after it exited).
    pub fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            err.read_to_string(&mut text).unwrap();
        }
        text
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// One request on a fresh connection with `Connection: close`.
    pub fn get(&self, path: &str) -> Response {
        self.connect()
            .request(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 client on one connection (keep-alive unless the request says otherwise).
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
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

    pub fn try_read_response(&mut self, head_only: bool) -> std::io::Result<Response> {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = Response { status, headers, body: Vec::new() };
        let no_body = head_only || status == 304 || status == 204 || (100..200).contains(&status);
        if !no_body {
            let len: usize = response.header("content-length").map_or(0, |v| v.parse().unwrap());
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body)?;
            response.body = body;
        }
        Ok(response)
    }

    pub fn read_response(&mut self, head_only: bool) -> Response {
        self.try_read_response(head_only).unwrap()
    }

    /// True when the server closed the connection (EOF or reset) within `timeout`;
    /// false when the connection is still open (or sent unexpected bytes).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream().set_read_timeout(Some(timeout)).unwrap();
        let mut byte = [0u8; 1];
        let closed = match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        self.stream().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        closed
    }
}

/// A stand-in for systemd's notify socket: a datagram socket the test reads.
pub struct NotifySocket {
    pub socket: UnixDatagram,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    pub fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket { socket, path, _dir: dir }
    }

    pub fn env_value(&self) -> String {
        self.path.to_str().unwrap().to_owned()
    }

    /// The next datagram, as its lines, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<String>> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = vec![0u8; 8192];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned).collect())
    }

    /// Datagrams until one contains `needle` (returned), skipping others; panics after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no notify datagram with {needle:?} within {timeout:?}");
            if let Some(lines) = self.recv(left)
                && lines.iter().any(|l| l == needle || l.starts_with(needle))
            {
                return lines;
            }
        }
    }
}

/// Open file descriptors of a process.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
