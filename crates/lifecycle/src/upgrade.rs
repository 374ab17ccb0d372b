//! Zero-downtime binary upgrade: the running server starts the installed binary with its listeners, and both sides of the hand-shake that follows; composes `activation`.
//!
//! The old process (O) starts its successor (N) from the path it was itself started
//! from, passing the listening sockets as fds 3… (`LISTEN_FDS`, `LISTEN_FDNAMES`, as
//! systemd would; `LISTEN_PID` is left out because O learns N's pid only after the fork)
//! and one end of a socketpair, whose fd number is in [`UPGRADE_FD`]. On it, one line
//! at a time:
//!
//! ```text
//! N → O   ready            N serves: configuration loaded, accept loops running
//!         error TEXT       N cannot serve (TEXT: why, one line); it exits
//! O → N   main             O has told systemd MAINPID=N and released the pid file's lock
//! N → O   serving          N holds the lock, answers the control socket, sent READY=1
//! ```
//!
//! N's death closes its end, so O never waits past a crash; O's death closes O's end,
//! so an N that was never told `main` gives up. What O and N tell systemd, and when, is
//! the caller's part (see graced's ARCHITECTURE.md, "Binary upgrade").
//!
//! Written by hand: the fd mapping is a `pre_exec` of a few async-signal-safe calls
//! (`fcntl(F_DUPFD_CLOEXEC)`, `dup2`), which no maintained crate offers on tokio's terms.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::activation::{self, ActivationError, Inherited, SD_LISTEN_FDS_START};
use crate::listener::Listener;

/// The environment variable that carries the hand-shake socket's fd number to N.
pub const UPGRADE_FD: &str = "UPGRADE_FD";
/// The environment variable that tells N where O's listeners came from.
pub const UPGRADE_ORIGIN: &str = "UPGRADE_LISTENERS";

/// Where the listeners handed over originally came from: it decides, in N as in O,
/// whether a reload may bind new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// systemd's socket units (or fd store).
    Systemd,
    /// Bound by the server itself.
    Bound,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Systemd => "systemd",
            Origin::Bound => "bound",
        }
    }
}

/// Why an upgrade did not happen (O keeps serving) or could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    #[error("cannot start {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the new binary (pid {pid}) reported: {text}")]
    Reported { pid: u32, text: String },
    #[error("the new binary (pid {pid}) {status} before it was ready")]
    Exited { pid: u32, status: String },
    #[error("the new binary (pid {pid}) was not ready within {}; it was killed", humantime::format_duration(*.waited))]
    NotReady { pid: u32, waited: Duration },
    #[error("the new binary (pid {pid}) sent {line:?}, not a hand-shake line")]
    Protocol { pid: u32, line: String },
    #[error("hand-shake with the new binary (pid {pid}): {source}")]
    Io {
        pid: u32,
        #[source]
        source: io::Error,
    },
}

/// O's side: the successor it started, until it took over or was killed.
pub struct Successor {
    child: std::process::Child,
    lines: BufReader<UnixStream>,
}

/// Starts `path` with `args` as O's successor, handing it `listeners` (fds 3…, named)
/// and the hand-shake socket. `remove` names environment variables N must not inherit
/// (systemd's `WATCHDOG_PID`: it names O). Needs a tokio runtime.
pub fn spawn(
    path: &Path,
    args: &[OsString],
    listeners: &[Listener],
    origin: Origin,
    remove: &[&str],
) -> Result<Successor, UpgradeError> {
    let spawn_err = |source| UpgradeError::Spawn { path: path.to_owned(), source };
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(spawn_err)?;
    let mut sources: Vec<RawFd> = listeners.iter().map(|l| l.socket.as_raw_fd()).collect();
    sources.push(theirs.as_raw_fd());
    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    let mut command = std::process::Command::new(path);
    command
        .args(args)
        .env_remove("LISTEN_PID")
        .env("LISTEN_FDS", listeners.len().to_string())
        .env("LISTEN_FDNAMES", names.join(":"))
        .env(UPGRADE_FD, (SD_LISTEN_FDS_START + listeners.len() as i32).to_string())
        .env(UPGRADE_ORIGIN, origin.as_str());
    for key in remove {
        command.env_remove(key);
    }
    let mut scratch: Vec<RawFd> = vec![-1; sources.len()];
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe
    // calls (fcntl, dup2) on fds that stay open in the parent until spawn returns; it
    // allocates nothing (`scratch` is allocated before the fork).
    unsafe {
        command.pre_exec(move || map_fds(&sources, &mut scratch));
    }
    let child = command.spawn().map_err(spawn_err)?;
    drop(theirs); // N's end lives only in N: its death is our EOF
    ours.set_nonblocking(true).map_err(spawn_err)?;
    let stream = UnixStream::from_std(ours).map_err(spawn_err)?;
    Ok(Successor { child, lines: BufReader::new(stream) })
}

/// In the child: `sources[i]` becomes fd `3 + i`, without CLOEXEC. Every source is first
/// copied above the target range (close-on-exec), so a source that already sits at a
/// target number (systemd's listeners are at 3…) is never overwritten before it is copied.
fn map_fds(sources: &[RawFd], scratch: &mut [RawFd]) -> io::Result<()> {
    let above = SD_LISTEN_FDS_START + sources.len() as i32;
    for (slot, &fd) in scratch.iter_mut().zip(sources) {
        // SAFETY: fcntl on an fd the parent holds open.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above) };
        if copy < 0 {
            return Err(io::Error::last_os_error());
        }
        *slot = copy;
    }
    for (i, &copy) in scratch.iter().enumerate() {
        // SAFETY: dup2 onto a number this child is about to hand to the new program.
        if unsafe { libc::dup2(copy, SD_LISTEN_FDS_START + i as i32) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Successor {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until N says it serves, at most `timeout`. Any other outcome (an error line,
    /// its exit, silence) is the error; the caller then [`abandon`](Self::abandon)s it.
    pub async fn ready(&mut self, timeout: Duration) -> Result<(), UpgradeError> {
        let pid = self.pid();
        match tokio::time::timeout(timeout, self.line()).await {
            Err(_) => Err(UpgradeError::NotReady { pid, waited: timeout }),
            Ok(Err(source)) => Err(UpgradeError::Io { pid, source }),
            Ok(Ok(None)) => Err(UpgradeError::Exited { pid, status: self.exit_status().await }),
            Ok(Ok(Some(line))) if line == "ready" => Ok(()),
            Ok(Ok(Some(line))) => match line.strip_prefix("error ") {
                Some(text) => Err(UpgradeError::Reported { pid, text: text.to_owned() }),
                None => Err(UpgradeError::Protocol { pid, line }),
            },
        }
    }

    /// Tells N it is the main process now (after systemd was told and the pid file's lock
    /// released), and waits at most `timeout` for it to confirm it serves as such.
    pub async fn hand_over(&mut self, timeout: Duration) -> Result<(), UpgradeError> {
        let pid = self.pid();
        let io = |source| UpgradeError::Io { pid, source };
        self.lines.get_mut().write_all(b"main\n").await.map_err(io)?;
        match tokio::time::timeout(timeout, self.line()).await {
            Err(_) => Err(UpgradeError::NotReady { pid, waited: timeout }),
            Ok(Err(source)) => Err(io(source)),
            Ok(Ok(Some(line))) if line == "serving" => Ok(()),
            Ok(Ok(Some(line))) => Err(UpgradeError::Protocol { pid, line }),
            Ok(Ok(None)) => Err(UpgradeError::Exited { pid, status: "exited".into() }),
        }
    }

    /// Kills N (it failed) and reaps it.
    pub async fn abandon(mut self) {
        let _ = self.child.kill();
        let _ = tokio::task::spawn_blocking(move || self.child.wait()).await;
    }

    /// N took over: it is no longer ours to wait for (it outlives us).
    pub fn release(self) {}

    async fn line(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        match self.lines.read_line(&mut line).await? {
            0 => Ok(None),
            _ => Ok(Some(line.trim_end().to_owned())),
        }
    }

    /// How N ended ("exited with status 1", "was killed by signal 9"), once its end closed.
    async fn exit_status(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return describe(status),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(None) => return "closed the hand-shake".into(),
                Err(err) => return format!("could not be waited for ({err})"),
            }
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}

/// N's side: the hand-shake with the process that started it.
pub struct Predecessor {
    stream: std::os::unix::net::UnixStream,
    pub origin: Origin,
}

/// What a process was started with: systemd's sockets, or its predecessor's and the hand-shake.
pub struct Start {
    pub inherited: Inherited,
    pub predecessor: Option<Predecessor>,
}

/// Takes the sockets this process was started with: from a predecessor when
/// [`UPGRADE_FD`] is set, else from systemd ([`activation::take_from_env`]).
///
/// # Safety
/// As [`activation::take_from_env`]: once, first thing in `main`.
pub unsafe fn take_from_env() -> Result<Start, ActivationError> {
    let fd = std::env::var(UPGRADE_FD).ok().and_then(|v| v.parse::<RawFd>().ok());
    let Some(fd) = fd.filter(|&fd| fd >= SD_LISTEN_FDS_START && fd_is_open(fd)) else {
        // SAFETY: passed on from the caller.
        return Ok(Start { inherited: unsafe { activation::take_from_env() }?, predecessor: None });
    };
    // SAFETY: our parent passed the listeners as LISTEN_FDS names them.
    let inherited = unsafe { activation::take_listen_fds() }?;
    // SAFETY: the parent passed the hand-shake socket at this number; nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let stream = std::os::unix::net::UnixStream::from(owned);
    let _ = rustix::io::fcntl_setfd(&stream, rustix::io::FdFlags::CLOEXEC);
    let origin = match std::env::var(UPGRADE_ORIGIN).as_deref() {
        Ok("bound") => Origin::Bound,
        _ => Origin::Systemd,
    };
    Ok(Start { inherited, predecessor: Some(Predecessor { stream, origin }) })
}

/// Whether `fd` is an open descriptor (a stale `UPGRADE_FD` inherited by a process that
/// was not started by a predecessor must not make it adopt random fds).
fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the flags of a number; an unopened one fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

impl Predecessor {
    /// N serves (accept loops running): O may hand over.
    pub fn ready(&mut self) -> io::Result<()> {
        self.send("ready")
    }

    /// N cannot serve; `text` says why (one line). N exits after this.
    pub fn failed(&mut self, text: &str) {
        let _ = self.send(&format!("error {}", text.replace('\n', " ")));
    }

    /// Waits until O says N is the main process (`Ok(false)`: O closed the hand-shake
    /// first — it gave up on N, or died). Needs a tokio runtime.
    pub async fn wait_main(&self, timeout: Duration) -> io::Result<bool> {
        let mut stream = self.stream.try_clone()?;
        tokio::task::spawn_blocking(move || read_main(&mut stream, timeout))
            .await
            .map_err(io::Error::other)?
    }

    /// N holds the pid file and answers the control socket; the hand-shake is over.
    pub fn serving(mut self) -> io::Result<()> {
        self.send("serving")
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        use std::io::Write;
        self.stream.write_all(format!("{line}\n").as_bytes())
    }
}

/// Reads one line from O; `true` if it is `main`.
fn read_main(stream: &mut std::os::unix::net::UnixStream, timeout: Duration) -> io::Result<bool> {
    use std::io::Read;
    stream.set_read_timeout(Some(timeout))?;
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return Ok(false),
            Ok(_) if byte[0] == b'\n' => return Ok(line == b"main"),
            Ok(_) => line.push(byte[0]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// A process that keeps the unit's control group non-empty for as long as this process
/// lives: `sleep infinity`, killed by the kernel when this process's main thread ends
/// (`PR_SET_PDEATHSIG`).
///
/// Why: after a hand-over the new main process is not systemd's child. On `systemctl
/// stop`/`restart` systemd (252 and 257 alike, measured) sends `KillSignal=` to such a
/// main process but does not wait for it: with no other process in the control group it
/// sends SIGKILL at once, cutting every response in flight. With one more process in the
/// group it waits for the group to empty — for the drain. `sleep` ignores SIGWINCH (its
/// default disposition), so it stays until the main process has exited.
///
/// Call it from the thread that lives as long as the process (`main`, or a runtime's
/// `block_on` on it): the death signal follows the thread that forked.
pub fn spawn_sentinel() -> io::Result<std::process::Child> {
    let parent = std::process::id() as libc::pid_t;
    let mut command = std::process::Command::new("sleep");
    command
        .arg("infinity")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the death signal was armed.
            if libc::getppid() != parent {
                return Err(io::Error::other("the parent exited"));
            }
            Ok(())
        });
    }
    command.spawn()
}
