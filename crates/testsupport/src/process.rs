//! The real binaries as children of the test: kill-on-drop, a running server, stderr capture, exit codes, `/proc` readings.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{Client, Response};

/// Environment variables a test's own environment must not leak into a child.
pub const SCRUB: &[&str] = &[
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

/// A process the test started, killed and reaped when dropped (also during a panic).
///
/// By default the kill is SIGKILL; [`Reaped::terminate_first`] sends SIGTERM and waits a
/// grace period first, for a process that must clean up (a pid file outside the test's
/// temporary directory).
pub struct Reaped {
    child: Option<Child>,
    grace: Option<Duration>,
}

impl Reaped {
    pub fn new(child: Child) -> Reaped {
        Reaped { child: Some(child), grace: None }
    }

    /// Dropping sends SIGTERM, then SIGKILL if the process has not exited after `grace`.
    pub fn terminate_first(child: Child, grace: Duration) -> Reaped {
        Reaped { child: Some(child), grace: Some(grace) }
    }

    pub fn pid(&self) -> u32 {
        self.id()
    }

    /// The child, no longer killed on drop.
    pub fn into_inner(mut self) -> Child {
        self.child.take().expect("the child is there until dropped")
    }
}

impl Deref for Reaped {
    type Target = Child;

    fn deref(&self) -> &Child {
        self.child.as_ref().expect("the child is there until dropped")
    }
}

impl DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the child is there until dropped")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(grace) = self.grace
            && let Ok(None) = child.try_wait()
        {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A running server listening on 127.0.0.1:`port`; killed when dropped.
pub struct Server {
    pub child: Reaped,
    pub port: u16,
}

impl Server {
    pub fn new(child: Child, port: u16) -> Server {
        Server { child: Reaped::new(child), port }
    }

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
        kill(self.pid(), signal);
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

/// Sends `signal` to `pid`.
#[track_caller]
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a pid this test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal}) failed");
}

/// The exit code, or a panic naming the signal that killed the process.
#[track_caller]
pub fn code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| panic!("killed by signal {:?}", status.signal()))
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

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC with.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
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

/// user + system CPU time of a process, in seconds.
pub fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let utime: u64 = fields[11].parse().unwrap(); // field 14
    let stime: u64 = fields[12].parse().unwrap(); // field 15
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (utime + stime) as f64 / ticks
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

/// Builds `example` of the workspace package `package` with the `cargo` that runs the tests
/// and returns its executable, as cargo's own `--message-format=json` report names it (no
/// guess about the target directory, the profile or `CARGO_TARGET_DIR`).
pub fn build_example(package: &str, example: &str) -> PathBuf {
    let output = Command::new(env!("CARGO"))
        .args(["build", "-p", package, "--example", example, "--message-format=json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "building the example {example} of {package} failed");
    let report = String::from_utf8(output.stdout).expect("cargo reports UTF-8");
    let artifact = format!(r#""name":"{example}""#);
    let line = report
        .lines()
        .find(|l| l.contains(r#""reason":"compiler-artifact""#) && l.contains(&artifact))
        .expect("cargo reports the example's artifact");
    let (_, rest) = line.split_once(r#""executable":""#).expect("the artifact has an executable");
    PathBuf::from(rest.split('"').next().expect("a quoted path").replace(r"\\", r"\"))
}
