//! Who the container's systemd is (checked before every command and signal), and the handle the watchdog kills it through.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Who the container's systemd is: checked before every command and signal.
pub(super) struct Identity {
    pub(super) pid: i32,
    pub(super) starttime: u64,
    pub(super) host_mnt_ns: PathBuf,
    pub(super) host_pid_ns: PathBuf,
}

impl Identity {
    /// Ok when `pid` still is the container's systemd: same start time, `comm` systemd,
    /// other mount and pid namespaces than ours, and an overlayfs root.
    pub(super) fn verify(&self) -> Result<(), String> {
        let pid = self.pid;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).map_err(|e| format!("pid {pid}: {e}"))?;
        if comm.trim() != "systemd" {
            return Err(format!("pid {pid} is {:?}, not systemd", comm.trim()));
        }
        if starttime(pid) != Some(self.starttime) {
            return Err(format!("pid {pid} has another start time: a recycled PID"));
        }
        let ns = |kind: &str| fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok();
        if ns("mnt").is_none_or(|n| n == self.host_mnt_ns) {
            return Err(format!("pid {pid} is in the host's mount namespace"));
        }
        if ns("pid").is_none_or(|n| n == self.host_pid_ns) {
            return Err(format!("pid {pid} is in the host's pid namespace"));
        }
        match root_fstype(pid).as_deref() {
            Some("overlay") => Ok(()),
            other => Err(format!("pid {pid} has root filesystem {other:?}, not our overlay")),
        }
    }
}

/// Field 22 of /proc/PID/stat (start time in clock ticks), read past the `(comm)`.
pub(super) fn starttime(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The filesystem type of `/` as process `pid` sees it.
pub(super) fn root_fstype(pid: i32) -> Option<String> {
    let info = fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(4) != Some(&"/") {
            return None;
        }
        let dash = f.iter().position(|x| *x == "-")?;
        f.get(dash + 1).map(|s| s.to_string())
    })
}

/// The parts of a container the watchdog thread needs too.
pub(super) struct Handle {
    pub(super) name: String,
    pub(super) identity: Identity,
    pub(super) pidfd: OwnedFd,
    pub(super) killed: AtomicBool,
}

impl Handle {
    pub(super) fn alive(&self) -> bool {
        let mut fds = [libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: poll on one valid pollfd; a pidfd turns readable when the process exits.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        n == 0
    }

    /// SIGKILL to the container's PID 1, after checking it is ours; idempotent.
    pub(super) fn kill(&self, why: &str) {
        if self.killed.swap(true, Ordering::SeqCst) || !self.alive() {
            return;
        }
        match self.identity.verify() {
            Ok(()) => {
                if let Err(err) =
                    rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL)
                {
                    eprintln!("e2e[{}]: cannot kill the container ({why}): {err}", self.name);
                }
            }
            Err(err) => eprintln!("e2e[{}]: NOT killing pid {}: {err}", self.name, self.identity.pid),
        }
    }
}
