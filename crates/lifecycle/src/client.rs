//! The `-k COMMAND [--wait]` side, composed of the pid file, the signal table and the control socket: finds the running server by its pid-file lock and asks it.
//!
//! The server is the process the kernel says holds the pid file's lock — never the
//! number written in the file. The holder is pinned with a pidfd and the lock is
//! checked again before any signal, so a PID recycled in between cannot be hit.
//! `--wait` uses the control socket for reloads (the answer is the result) and the
//! pidfd for stops (readable when the process has exited).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::command::{Command, Request};
use crate::control;
use crate::handover::HandedFile;
use crate::pidfile::{self, Probe, ProcessInfo};
use crate::signal::signal_for;

/// Whether `-k` returns once the server was asked, or once the work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Return once the signal is sent.
    No,
    /// Reloads: return with the server's answer (the reload's outcome) over the control
    /// socket; stops: return when the process has exited. At most this long.
    UpTo(Duration),
}

/// What a `-k` command achieved, for the message and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; the text says what happened.
    Done(String),
    /// The server answered that it failed (a reload with a broken configuration).
    Failed(String),
    /// No server holds the pid file's lock.
    NotRunning(String),
    /// The server did not answer within the wait (`reopen-logs --wait`: requests on the
    /// old files are still running; they stay open).
    TimedOut(String),
}

/// Why the command could not be carried out at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(transparent)]
    PidFile(#[from] pidfile::PidFileError),
    #[error("cannot signal pid {pid}: {source}")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {}: {source}", path.display())]
    Control {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {pid} is still running after {}", humantime::format_duration(*.waited))]
    StillRunning { pid: u32, waited: Duration },
}

impl Outcome {
    /// The exit status for it, as LSB init scripts have them: 0 done, 1 failed, 3 not
    /// running; 75 timed out (sysexits' EX_TEMPFAIL: try again later).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Done(_) => 0,
            Outcome::Failed(_) => 1,
            Outcome::NotRunning(_) => 3,
            Outcome::TimedOut(_) => 75,
        }
    }

    /// The text: what happened, or why not.
    pub fn text(&self) -> &str {
        match self {
            Outcome::Done(text)
            | Outcome::Failed(text)
            | Outcome::NotRunning(text)
            | Outcome::TimedOut(text) => text,
        }
    }
}

/// How long a reload that hands over files waits for its answer without `--wait`.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a client waits for a running server's control socket to appear.
const CONTROL_SOCKET_WAIT: Duration = Duration::from_secs(10);

/// Whether `holder` still holds the pid file's lock (the server did not exit meanwhile).
fn holds_lock(pid_path: &Path, holder: u32) -> bool {
    matches!(pidfile::probe(pid_path), Ok(Probe::Running { holder: now, .. }) if now == holder)
}

/// Sends `command` to the server whose pid file is `pid_path`.
pub fn send(pid_path: &Path, command: Command, wait: Wait) -> Result<Outcome, ClientError> {
    send_with_files(pid_path, command, wait, Vec::new())
}

/// [`send`], passing `files` with a reload or restart: they go over the control socket
/// (a signal cannot carry them), so the answer is awaited even without `--wait`.
pub fn send_with_files(
    pid_path: &Path,
    command: Command,
    wait: Wait,
    files: Vec<HandedFile>,
) -> Result<Outcome, ClientError> {
    let holder = match probe_settled(pid_path)? {
        Probe::Absent => {
            return Ok(Outcome::NotRunning(format!("not running: no pid file at {}", pid_path.display())));
        }
        Probe::Stale { named } => {
            let who = named.map_or("no valid pid".to_owned(), |p| p.to_string());
            return Ok(Outcome::NotRunning(format!(
                "not running: {} is stale — it names {who}, which does not hold its lock, so it is not \
                 the server; nothing was signalled",
                pid_path.display()
            )));
        }
        Probe::Running { holder, named } => {
            if named.is_some_and(|n| n != holder) {
                tracing::warn!(
                    holder,
                    ?named,
                    "the pid file's content disagrees with its lock holder; trusting the lock"
                );
            }
            holder
        }
    };
    if matches!(command, Command::Reload | Command::Restart | Command::Upgrade) {
        match wait {
            Wait::UpTo(timeout) => return ask(pid_path, holder, Request::Command(command), &files, timeout),
            Wait::No if !files.is_empty() => {
                return ask(pid_path, holder, Request::Command(command), &files, HANDOVER_TIMEOUT);
            }
            Wait::No => {}
        }
    }
    // Pin the process, then make sure it still holds the lock: a PID freed and reused
    // between the probe and the pin cannot hold our lock.
    let pidfd = match rustix::process::Pid::from_raw(holder as i32)
        .ok_or_else(|| std::io::Error::other("pid 0"))
        .and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).map_err(Into::into)
        }) {
        Ok(fd) => fd,
        Err(source) => return Err(ClientError::Signal { pid: holder, source }),
    };
    match pidfile::probe(pid_path)? {
        Probe::Running { holder: again, .. } if again == holder => {}
        _ => return Ok(Outcome::NotRunning(format!("not running: pid {holder} exited just now"))),
    }
    let entry = signal_for(command);
    let signal = rustix::process::Signal::from_named_raw(entry.number).expect("a valid signal number");
    rustix::process::pidfd_send_signal(&pidfd, signal)
        .map_err(|e| ClientError::Signal { pid: holder, source: e.into() })?;
    let sent = format!("sent SIG{} to {}", entry.name, ProcessInfo::of(holder));
    let Wait::UpTo(timeout) = wait else {
        return Ok(Outcome::Done(sent));
    };
    // Stop or graceful stop: the pidfd becomes readable when the process exits.
    let started = Instant::now();
    let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
    let timespec =
        rustix::time::Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: timeout.subsec_nanos() as i64 };
    match rustix::event::poll(&mut fds, Some(&timespec)) {
        Ok(n) if n > 0 => Ok(Outcome::Done(format!(
            "{sent}; it exited after {}",
            humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64))
        ))),
        _ => Err(ClientError::StillRunning { pid: holder, waited: timeout }),
    }
}

fn ask(
    pid_path: &Path,
    holder: u32,
    request: Request,
    files: &[HandedFile],
    timeout: Duration,
) -> Result<Outcome, ClientError> {
    let path = control::socket_path(pid_path);
    let started = Instant::now();
    let response = loop {
        match control::request(&path, request, files, timeout) {
            // The server holds the lock but has not bound its control socket yet (it is
            // starting: the lock comes first, and a socket-activated listener accepts even
            // before that), or a successor is taking it over in a binary upgrade: wait.
            Err(err)
                if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused)
                    && started.elapsed() < timeout.min(CONTROL_SOCKET_WAIT)
                    && holds_lock(pid_path, holder) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other,
        }
    };
    let control::Response { server_pid: peer, reply } =
        response.map_err(|source| ClientError::Control { path: path.clone(), source })?;
    if peer != holder {
        return Err(ClientError::Control {
            path,
            source: std::io::Error::other(format!(
                "answered by pid {peer}, but pid {holder} holds the pid file's lock; refusing to trust it"
            )),
        });
    }
    Ok(match reply {
        Ok(text) => Outcome::Done(format!("pid {holder}: {text}")),
        Err(text) => Outcome::Failed(format!("pid {holder}: {text}")),
    })
}

/// Waits for the outcome of the reload a signal already asked for (what `ExecReload=`
/// runs under `Type=notify-reload`, after systemd sent `ReloadSignal=`).
pub fn await_reload(pid_path: &Path, timeout: Duration) -> Result<Outcome, ClientError> {
    match probe_settled(pid_path)? {
        Probe::Running { holder, .. } => ask(pid_path, holder, Request::AwaitReload, &[], timeout),
        Probe::Absent | Probe::Stale { .. } => Ok(Outcome::NotRunning("not running".into())),
    }
}

/// How long a pid file may name a live process that holds no lock before `-k` calls it
/// stale: a binary upgrade moves the lock from the old process to the new one, and
/// between the two (well under a millisecond) nobody holds it.
const HAND_OVER_WINDOW: Duration = Duration::from_secs(1);

/// [`pidfile::probe`], looked at again while the file names a live process without a
/// lock holder (a hand-over in progress) — at most [`HAND_OVER_WINDOW`].
fn probe_settled(pid_path: &Path) -> Result<Probe, ClientError> {
    let deadline = Instant::now() + HAND_OVER_WINDOW;
    loop {
        let probe = pidfile::probe(pid_path)?;
        match &probe {
            Probe::Stale { named: Some(info) } if info.alive && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => return Ok(probe),
        }
    }
}

/// How long `reopen-logs` without `--wait` waits for the server to say it reopened.
const REOPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the running server to reopen its log files; with [`Wait::UpTo`], the answer comes
/// once every request writing to the old files has finished and they are flushed and closed.
pub fn reopen_logs(pid_path: &Path, wait: Wait) -> Result<Outcome, ClientError> {
    let holder = match probe_settled(pid_path)? {
        Probe::Running { holder, .. } => holder,
        Probe::Absent | Probe::Stale { .. } => return Ok(Outcome::NotRunning("not running".into())),
    };
    let (request, timeout) = match wait {
        Wait::UpTo(timeout) => (Request::ReopenLogs { wait: true }, timeout),
        Wait::No => (Request::ReopenLogs { wait: false }, REOPEN_TIMEOUT),
    };
    match ask(pid_path, holder, request, &[], timeout) {
        Err(ClientError::Control { source, .. }) if source.kind() == std::io::ErrorKind::TimedOut => {
            Ok(Outcome::TimedOut(format!(
                "pid {holder}: the old log files are not closed yet after {}: requests that write to \
                 them are still running (they stay open until those finish)",
                humantime::format_duration(timeout)
            )))
        }
        other => other,
    }
}

/// Asks the running server for its status line.
pub fn status(pid_path: &Path, timeout: Duration) -> Result<Outcome, ClientError> {
    match probe_settled(pid_path)? {
        Probe::Running { holder, .. } => ask(pid_path, holder, Request::Status, &[], timeout),
        Probe::Absent | Probe::Stale { .. } => Ok(Outcome::NotRunning("not running".into())),
    }
}
