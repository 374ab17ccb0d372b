//! State directories and cgroups: where a container's state may live, and what earlier runs left behind.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::STATE_BASE;
use super::identity::Identity;

pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Refuses state directories that a stray systemd or a commit could reach.
pub(super) fn check_state_dir(state: &Path) -> Result<(), String> {
    if !state.starts_with(STATE_BASE) || state.components().any(|c| c.as_os_str() == "..") {
        return Err(format!("state dir {} is not under {STATE_BASE}", state.display()));
    }
    let mut probe = state.to_path_buf();
    while probe.pop() {
        if probe.join(".git").exists() {
            return Err(format!("state dir {} is inside a git work tree", state.display()));
        }
    }
    Ok(())
}

/// Removes state left by earlier test runs whose process is gone (their containers died
/// with them: parent-death signal + `--kill-child`; killed here if not, after the identity check).
pub(super) fn sweep_leftovers() {
    let Ok(entries) = fs::read_dir(STATE_BASE) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner = fs::read_to_string(dir.join("owner")).ok().and_then(|s| s.trim().parse::<i32>().ok());
        if owner.is_some_and(|o| Path::new(&format!("/proc/{o}")).exists()) {
            continue; // a live test run (maybe another one) owns it
        }
        // No owner yet: a test booting right now (it writes `owner` just after creating the
        // directory; tests boot in parallel), unless the directory is old.
        let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if owner.is_none() && age.is_none_or(|age| age < Duration::from_secs(600)) {
            continue;
        }
        let pid = fs::read_to_string(dir.join("pid")).ok().and_then(|s| s.trim().parse::<i32>().ok());
        let st = fs::read_to_string(dir.join("starttime")).ok().and_then(|s| s.trim().parse::<u64>().ok());
        if let (Some(pid), Some(st)) = (pid, st) {
            let identity = Identity {
                pid,
                starttime: st,
                host_mnt_ns: fs::read_link("/proc/self/ns/mnt").unwrap_or_default(),
                host_pid_ns: fs::read_link("/proc/self/ns/pid").unwrap_or_default(),
            };
            // Pin it with a pidfd, then check again: the signal can only reach what was checked.
            if identity.verify().is_ok()
                && let Some(raw) = rustix::process::Pid::from_raw(pid)
                && let Ok(fd) = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
                && identity.verify().is_ok()
            {
                eprintln!("e2e: killing a leftover container (pid {pid}) of {}", dir.display());
                let _ = rustix::process::pidfd_send_signal(fd.as_fd(), rustix::process::Signal::KILL);
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        if let Some(cg) = fs::read_to_string(dir.join("cgroup")).ok().map(PathBuf::from)
            && cg.to_string_lossy().contains("/graced-e2e/")
            && !cgroup_has_processes(&cg)
        {
            remove_cgroup_tree(&cg);
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

pub(super) fn cgroup_has_processes(cg: &Path) -> bool {
    let mut stack = vec![cg.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty()) {
            return true;
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            stack.extend(entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
        }
    }
    false
}

/// rmdir of a cgroup subtree, deepest first.
pub(super) fn remove_cgroup_tree(cg: &Path) {
    fn walk(dir: &Path) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path());
                }
            }
        }
        let _ = fs::remove_dir(dir);
    }
    walk(cg);
}
