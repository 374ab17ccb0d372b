//! A pid file that can never go stale: "running" means "holds the file's lock", never "the file exists".
//!
//! The server takes a POSIX record lock (`fcntl(F_SETLK)`) on the pid file and keeps
//! it for its whole life; the kernel drops it the instant the process dies, however
//! it dies. Anyone can ask the kernel who holds it (`F_GETLK` returns the holder's
//! PID), so `-k` signals that PID — after pinning it with a pidfd and checking
//! again — and never the number written in the file, which after a crash may belong
//! to a stranger (httpd's "already running" bug). A POSIX lock is used rather than
//! `flock` precisely because `F_GETLK` names the holder; for the same reason it is a
//! process-associated lock, not an open-file-description one (`F_OFD_GETLK` reports
//! `l_pid = -1`). rustix's `fs::fcntl_lock` (`F_SETLK`) and `process::fcntl_getlk`
//! (`F_GETLK`, with the holder's pid) are exactly these calls, so no `unsafe` is needed.
//!
//! Invariant: the server process opens the pid file exactly once (POSIX locks are
//! released when *any* descriptor of the file is closed by the process).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, fcntl_lock};
use rustix::io::Errno;
use rustix::process::{Flock, FlockType, fcntl_getlk};

/// Why the pid file could not be taken or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PidFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("already running: {holder} holds the lock on {}", path.display())]
    AlreadyRunning { path: PathBuf, holder: ProcessInfo },
}

/// What can be said about a process, to explain a refusal. Only ever used for
/// messages: whether the server runs is decided by the lock alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// Whether a process with that pid exists (`kill(pid, 0)` is fine for a message).
    pub alive: bool,
    /// `/proc/PID/comm`, if visible (`ProtectProc=invisible` hides other users').
    pub comm: Option<String>,
    /// Start time, seconds since the epoch, if known.
    pub started: Option<u64>,
}

impl ProcessInfo {
    pub fn of(pid: u32) -> ProcessInfo {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|c| c.trim().to_owned());
        let alive = comm.is_some()
            || rustix::process::Pid::from_raw(pid as i32).is_some_and(|p| {
                !matches!(rustix::process::test_kill_process(p), Err(rustix::io::Errno::SRCH))
            });
        ProcessInfo { pid, alive, comm, started: start_time(pid) }
    }
}

impl std::fmt::Display for ProcessInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        match &self.comm {
            Some(comm) => write!(f, " ({comm}")?,
            None if self.alive => return write!(f, " (a process this user may not inspect)"),
            None => return write!(f, " (not running)"),
        }
        if let Some(started) = self.started {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(started);
            write!(f, ", started {}", httpdate::fmt_http_date(t))?;
        }
        write!(f, ")")
    }
}

/// The held pid file. Dropping it removes the file (if it is still ours) and releases the lock.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    file: File,
    removed: bool,
    /// The pid a stale file named when it was taken over.
    stale: Option<u32>,
}

impl PidFile {
    /// Creates the directory if needed, locks the file, and writes our pid into it.
    /// Refuses with [`PidFileError::AlreadyRunning`] while another process holds the lock.
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let io_err = |source| PidFileError::Io { path: path.to_owned(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        for _ in 0..5 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(io_err)?;
            if let Err(err) = fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
                if matches!(err, Errno::AGAIN | Errno::ACCESS) {
                    let holder = lock_holder(&file).map_err(io_err)?;
                    return Err(PidFileError::AlreadyRunning {
                        path: path.to_owned(),
                        holder: ProcessInfo::of(holder.unwrap_or(0)),
                    });
                }
                return Err(io_err(err.into()));
            }
            // The path may have been unlinked (a graceful stop) or replaced between our
            // open and our lock; the lock only means something on the file the path names.
            let (ours, now) = (file.metadata().map_err(io_err)?, std::fs::metadata(path));
            if !matches!(now, Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev()) {
                continue;
            }
            let mut previous = String::new();
            let _ = file.read_to_string(&mut previous);
            let previous = parse_pid(&previous).filter(|p| *p != std::process::id());
            let content = format!("{}\n", std::process::id());
            // One write at offset 0, then trim: readers see the old or the new pid on line one.
            std::os::unix::fs::FileExt::write_all_at(&file, content.as_bytes(), 0).map_err(io_err)?;
            file.set_len(content.len() as u64).map_err(io_err)?;
            return Ok(PidFile { path: path.to_owned(), file, removed: false, stale: previous });
        }
        Err(io_err(io::Error::other("the pid file keeps being replaced; is another server starting?")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid the file named when it was taken over from a process that no longer held
    /// its lock (a crash or power loss leaves such files; the caller reports it).
    pub fn stale_pid(&self) -> Option<u32> {
        self.stale
    }

    /// Removes the file now (a graceful stop does, so a new server may start) but keeps
    /// the lock until this value is dropped.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        let still_ours = match (self.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if still_ours && let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %err, "cannot remove the pid file");
        }
    }
}

impl PidFile {
    /// Releases the lock and leaves the file in place, for a successor that takes the lock
    /// next and writes its own pid (a binary upgrade). Until it does, the file names this
    /// process, which is still alive: draining.
    pub fn release(mut self) {
        self.removed = true;
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// What `-k` learns from a pid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No pid file.
    Absent,
    /// A file nobody holds the lock of: stale. `named` is the pid written in it.
    Stale { named: Option<ProcessInfo> },
    /// The lock is held by `holder`.
    Running { holder: u32, named: Option<u32> },
}

/// Asks the kernel who holds the lock on the pid file at `path`.
pub fn probe(path: &Path) -> Result<Probe, PidFileError> {
    let io_err = |source| PidFileError::Io { path: path.to_owned(), source };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Probe::Absent),
        Err(err) => return Err(io_err(err)),
    };
    let mut content = String::new();
    let _ = file.read_to_string(&mut content);
    let named = parse_pid(&content);
    Ok(match lock_holder(&file).map_err(io_err)? {
        Some(holder) => Probe::Running { holder, named },
        None => Probe::Stale { named: named.map(ProcessInfo::of) },
    })
}

fn parse_pid(content: &str) -> Option<u32> {
    content.lines().next()?.trim().parse().ok().filter(|p| *p > 0)
}

/// The pid holding a conflicting lock on `file`, if any.
fn lock_holder(file: &File) -> io::Result<Option<u32>> {
    let held = fcntl_getlk(file, &Flock::from(FlockType::WriteLock))?;
    // `pid: None` would be our own process, which never conflicts with itself.
    Ok(held.map(|lock| lock.pid.map_or(0, |pid| pid.as_raw_nonzero().get() as u32)))
}

/// Seconds since the epoch at which `pid` started, from /proc.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, in clock ticks since boot) follows the parenthesised comm.
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let ticks: u64 = after_comm.split(' ').nth(19)?.parse().ok()?;
    let hz = rustix::param::clock_ticks_per_second();
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok()))?;
    Some(boot + ticks / hz)
}

/// Where a server called `name` keeps its pid file when nothing says otherwise:
/// `$RUNTIME_DIRECTORY/NAME.pid` (systemd's `RuntimeDirectory=`; the first of several),
/// else `/run/NAME/NAME.pid` for root and `$XDG_RUNTIME_DIR/NAME/NAME.pid` (or
/// `/tmp/NAME-UID/NAME.pid`) for others. Reads the environment: call it at the edge.
pub fn default_path(name: &str) -> PathBuf {
    let file = format!("{name}.pid");
    if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY") {
        // systemd may list several directories separated by ':'; the first is ours.
        let first = dir.to_string_lossy().split(':').next().unwrap_or_default().to_owned();
        return PathBuf::from(first).join(file);
    }
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run").join(name).join(file);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join(name).join(file),
        None => PathBuf::from(format!("/tmp/{name}-{}", uid.as_raw())).join(file),
    }
}

/// This boot's id, for messages that must not be confused across reboots.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    mod props;

    #[test]
    fn acquire_writes_our_pid_and_probe_names_us_from_another_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/graced.pid");
        let pidfile = PidFile::acquire(&path).unwrap();
        assert_eq!(pidfile.stale_pid(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        // POSIX locks never conflict within one process, so F_GETLK from here reports
        // no holder: the cross-process cases are covered by the integration tests.
        assert!(matches!(probe(&path).unwrap(), Probe::Stale { .. } | Probe::Running { .. }));
        drop(pidfile);
        assert!(!path.exists(), "dropping removes the file");
        assert_eq!(probe(&path).unwrap(), Probe::Absent);
    }

    #[test]
    fn a_stale_file_is_taken_over_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("graced.pid");
        std::fs::write(&path, "999999999\n").unwrap();
        assert!(matches!(
            probe(&path).unwrap(),
            Probe::Stale { named: Some(ProcessInfo { pid: 999999999, comm: None, .. }) }
        ));
        let pidfile = PidFile::acquire(&path).unwrap();
        assert_eq!(pidfile.stale_pid(), Some(999_999_999));
    }

    #[test]
    fn process_info_describes_a_live_process() {
        let me = ProcessInfo::of(std::process::id());
        assert!(me.comm.is_some());
        assert!(me.started.is_some());
        assert!(me.to_string().starts_with(&format!("pid {} (", std::process::id())));
        assert_eq!(ProcessInfo::of(999_999_999).to_string(), "pid 999999999 (not running)");
    }
}
