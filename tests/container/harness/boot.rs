//! Booting a container: the state directory, cgroup and console, `unshare` → `boot-container`, finding and pinning its systemd, the watchdog.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::host::{
    Os, PATH, Target, boot_script, cgroup2_root, missing_systemd, prerequisites, required, visible,
};
use super::identity::{Handle, Identity, starttime};
use super::state::{cgroup_has_processes, check_state_dir, remove_cgroup_tree, sweep_leftovers};
use super::{Container, STATE_BASE, rootfs};

impl Container {
    /// Boots a container, or prints `SKIP: reason` and returns `None` where containers
    /// cannot run (not root, no namespaces, no overlayfs). Under CI (`CI=true`) or with
    /// `GRACED_E2E_REQUIRE=1` a missing prerequisite fails instead.
    pub(crate) fn boot_or_skip(tag: &str, limit: Duration) -> Option<Container> {
        Container::boot_or_skip_on(Target::Host, tag, limit)
    }

    /// Like [`Container::boot_or_skip`] for `target`. For [`Target::Trixie`] the cached
    /// trixie tree is used, built first if needed (debootstrap, ~50 s, once); where it
    /// cannot be built (no debootstrap, no network) the test prints SKIP — or fails under
    /// CI / `GRACED_E2E_REQUIRE=1`. A build that fails for any other reason fails the test.
    pub(crate) fn boot_or_skip_on(target: Target, tag: &str, limit: Duration) -> Option<Container> {
        let skip = |reason: String| {
            if required() {
                panic!("the real-systemd tests must run here (CI / GRACED_E2E_REQUIRE), but: {reason}");
            }
            visible(&format!("SKIP: {tag} ({}): {reason}", target.label()));
        };
        if let Some(reason) = prerequisites() {
            skip(reason);
            return None;
        }
        let os = match target {
            Target::Host => Os::Host,
            Target::Trixie => match rootfs::trixie() {
                Ok(root) => Os::Rootfs(root),
                Err(rootfs::Error::Unavailable(reason)) => {
                    skip(format!("no systemd 257 tree: {reason}"));
                    return None;
                }
                Err(rootfs::Error::Failed(reason)) => panic!("cannot build the trixie tree: {reason}"),
            },
        };
        if let Some(reason) = missing_systemd(&os) {
            skip(reason);
            return None;
        }
        match Container::boot_os(tag, limit, &os) {
            Ok(c) => Some(c),
            Err(err) => panic!("cannot boot the test container {tag} ({}): {err}", target.label()),
        }
    }

    /// Boots the systemd of `os` in a new container named `TAG-<test pid>`; the watchdog
    /// kills it after `limit`.
    pub(crate) fn boot_os(tag: &str, limit: Duration, os: &Os) -> Result<Container, String> {
        let started = Instant::now();
        if let Os::Rootfs(root) = os {
            rootfs::check_lower_layer(root)?;
        }
        let name = format!("{tag}-{}", std::process::id());
        let valid = name.len() <= 32
            && name
                .bytes()
                .enumerate()
                .all(|(i, b)| b.is_ascii_alphanumeric() || (i > 0 && b"_.-".contains(&b)));
        if !valid {
            return Err(format!("bad container name {name:?}"));
        }
        sweep_leftovers();
        let state = PathBuf::from(STATE_BASE).join(&name);
        check_state_dir(&state)?;
        let _ = fs::remove_dir_all(&state);
        fs::create_dir_all(state.join("ovl")).map_err(|e| format!("{}: {e}", state.display()))?;
        fs::write(state.join("owner"), std::process::id().to_string()).map_err(|e| e.to_string())?;

        let cg_root = cgroup2_root().ok_or("no cgroup2")?;
        let cgroup = cg_root.join("graced-e2e").join(&name);
        if cgroup.exists() {
            if cgroup_has_processes(&cgroup) {
                return Err(format!("cgroup {} still has processes", cgroup.display()));
            }
            remove_cgroup_tree(&cgroup);
        }
        fs::create_dir_all(&cgroup).map_err(|e| format!("cannot create cgroup {}: {e}", cgroup.display()))?;
        fs::write(state.join("cgroup"), cgroup.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;

        // The console: a pty whose slave becomes /dev/console and systemd's stdio.
        let (master, slave, slave_name) = open_pty().map_err(|e| format!("openpty: {e}"))?;
        let console = Arc::new(Mutex::new(Vec::new()));
        let console_thread = {
            let console = console.clone();
            let log_path = state.join("console.log");
            let mut master = fs::File::from(master);
            std::thread::spawn(move || {
                let mut log = fs::OpenOptions::new().create(true).append(true).open(log_path).ok();
                let mut buf = [0u8; 16384];
                // EIO once every slave descriptor is closed: the container is gone.
                while let Ok(n @ 1..) = master.read(&mut buf) {
                    console.lock().unwrap().extend_from_slice(&buf[..n]);
                    if let Some(log) = log.as_mut() {
                        let _ = log.write_all(&buf[..n]);
                    }
                }
            })
        };

        let host_mnt_ns = fs::read_link("/proc/self/ns/mnt").map_err(|e| e.to_string())?;
        let host_pid_ns = fs::read_link("/proc/self/ns/pid").map_err(|e| e.to_string())?;
        let (pid_tx, pid_rx) = mpsc::channel::<Result<(u32, OwnedFd), String>>();
        let (exit_tx, exit_rx) = mpsc::channel::<Option<ExitStatus>>();
        // The keeper thread spawns unshare and reaps it. It must outlive unshare: the
        // parent-death signal fires when the *thread* that forked exits.
        {
            let state = state.clone();
            let name = name.clone();
            let cgroup = cgroup.clone();
            let host_mnt_ns = host_mnt_ns.clone();
            let lower = match os {
                Os::Host => None,
                Os::Rootfs(root) => Some(root.clone()),
            };
            std::thread::spawn(move || {
                let spawned = spawn_unshare(
                    &name,
                    &state,
                    &cgroup,
                    &slave,
                    &slave_name,
                    &host_mnt_ns,
                    lower.as_deref(),
                );
                drop(slave);
                let mut child = match spawned {
                    Ok(child) => child,
                    Err(err) => {
                        let _ = pid_tx.send(Err(err));
                        let _ = exit_tx.send(None);
                        return;
                    }
                };
                // Pinned before anyone can reap it, so a kill can never reach another process.
                let pinned = rustix::process::Pid::from_raw(child.id() as i32)
                    .ok_or_else(|| "pid 0".to_owned())
                    .and_then(|pid| {
                        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
                            .map_err(|e| format!("pidfd_open(unshare): {e}"))
                    });
                match pinned {
                    Ok(fd) => {
                        let _ = pid_tx.send(Ok((child.id(), fd)));
                    }
                    Err(err) => {
                        let _ = child.kill();
                        let _ = pid_tx.send(Err(err));
                    }
                }
                let status = child.wait().ok();
                let _ = exit_tx.send(status);
            });
        }
        let (unshare_pid, unshare_fd) = pid_rx.recv().map_err(|e| e.to_string())??;

        // From here until the container is ours, any failure kills unshare (through its
        // pidfd), and `--kill-child` takes whatever it started down with it.
        let found = find_systemd(unshare_pid, &cgroup, &exit_rx).and_then(|pid| {
            let st = starttime(pid).ok_or("no start time")?;
            let identity = Identity { pid, starttime: st, host_mnt_ns, host_pid_ns };
            let raw = rustix::process::Pid::from_raw(pid).ok_or("pid 0")?;
            let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
                .map_err(|e| format!("pidfd_open({pid}): {e}"))?;
            // Belt and braces: the root must be the overlay, or it is killed at once.
            identity.verify().map_err(|e| format!("identity check failed right after boot: {e}"))?;
            Ok((identity, pidfd))
        });
        let (identity, pidfd) = match found {
            Ok(found) => found,
            Err(err) => {
                let _ = rustix::process::pidfd_send_signal(&unshare_fd, rustix::process::Signal::KILL);
                let _ = exit_rx.recv_timeout(Duration::from_secs(10));
                std::thread::sleep(Duration::from_millis(100));
                let console = String::from_utf8_lossy(&console.lock().unwrap()).into_owned();
                return Err(format!("{err}; the container was killed\n--- console\n{console}"));
            }
        };
        drop(unshare_fd);
        let (pid, st) = (identity.pid, identity.starttime);
        let handle = Arc::new(Handle { name: name.clone(), identity, pidfd, killed: AtomicBool::new(false) });
        fs::write(state.join("pid"), pid.to_string()).map_err(|e| e.to_string())?;
        fs::write(state.join("starttime"), st.to_string()).map_err(|e| e.to_string())?;
        let netns = fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?.into();

        let timed_out = Arc::new(AtomicBool::new(false));
        let watchdog_stop = Arc::new((Mutex::new(false), Condvar::new()));
        let watchdog = {
            let (handle, timed_out, stop) = (handle.clone(), timed_out.clone(), watchdog_stop.clone());
            std::thread::spawn(move || {
                let (lock, cvar) = &*stop;
                let deadline = started + limit;
                let mut stopped = lock.lock().unwrap();
                while !*stopped {
                    let now = Instant::now();
                    if now >= deadline {
                        eprintln!(
                            "e2e[{}]: WATCHDOG: the test exceeded its limit of {limit:?}; killing the container",
                            handle.name
                        );
                        timed_out.store(true, Ordering::SeqCst);
                        handle.kill("watchdog");
                        return;
                    }
                    stopped = cvar.wait_timeout(stopped, deadline - now).unwrap().0;
                }
            })
        };

        let mut container = Container {
            name,
            state,
            cgroup,
            handle,
            netns,
            console,
            timed_out,
            watchdog_stop,
            watchdog: Some(watchdog),
            keeper: Some(exit_rx),
            console_thread: Some(console_thread),
            boot_time: Duration::ZERO,
            systemd_version: 0,
            started,
        };
        if let Err(err) = container.wait_running() {
            return Err(format!("{err}\n--- console\n{}", container.console_log()));
        }
        container.boot_time = started.elapsed();
        let version = container.exec(&["systemctl", "--version"]);
        container.systemd_version = version
            .stdout
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("systemd "))
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("cannot read the container's systemd version: {version}"))?;
        // systemd brings lo up itself; make sure (clients use 127.0.0.1 in the container's netns).
        if container.in_netns(|| !loopback_is_up()) {
            container.in_netns(set_loopback_up).map_err(|e| format!("cannot bring lo up: {e}"))?;
        }
        let mut units = vec!["systemd-journald.socket"];
        if container.exec(&["test", "-e", "/lib/systemd/system/dbus.socket"]).success() {
            units.extend(["dbus.socket", "dbus.service"]);
        }
        let start = container.systemctl(&[&["start"], &units[..]].concat());
        if !start.success() {
            return Err(format!("cannot start journald/dbus: {start}"));
        }
        Ok(container)
    }

    fn wait_running(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut state = String::new();
        while Instant::now() < deadline {
            let out = self.exec(&["systemctl", "is-system-running"]);
            state = out.stdout.trim().to_owned();
            if state == "running" || state == "degraded" {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!("the container's systemd did not finish booting (state {state:?})"))
    }
}

/// Waits for unshare's child (the namespace's PID 1) to become systemd, moving unshare
/// itself out of the container's cgroup once it has forked (the namespace init inherited
/// that cgroup, which belongs to the container alone). Returns systemd's host PID.
fn find_systemd(
    unshare_pid: u32,
    cgroup: &Path,
    exited: &mpsc::Receiver<Option<ExitStatus>>,
) -> Result<i32, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut moved = false;
    loop {
        let children = fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
            .unwrap_or_default();
        if let Some(child) = children.split_whitespace().next().and_then(|c| c.parse::<i32>().ok()) {
            if !moved {
                let parent = cgroup.parent().expect("cgroup parent").join("cgroup.procs");
                fs::write(&parent, unshare_pid.to_string())
                    .map_err(|e| format!("cannot move unshare out of the container cgroup: {e}"))?;
                moved = true;
            }
            if fs::read_to_string(format!("/proc/{child}/comm")).is_ok_and(|c| c.trim() == "systemd") {
                return Ok(child);
            }
        }
        if let Ok(status) = exited.try_recv() {
            return Err(format!("the container did not boot (unshare: {status:?})"));
        }
        if Instant::now() > deadline {
            return Err("systemd did not appear within 20s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd, String)> {
    let (mut master, mut slave) = (-1, -1);
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: openpty writes two fds and a NUL-terminated name (buffer large enough for /dev/pts/N).
    let rc = unsafe {
        libc::openpty(&mut master, &mut slave, name.as_mut_ptr(), std::ptr::null(), std::ptr::null())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openpty returned two fresh descriptors that nothing else owns.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    }
    // SAFETY: `name` is NUL-terminated by openpty.
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
    Ok((master, slave, name))
}

/// `sh` joins the container's cgroup, then becomes `unshare … boot-container NAME`, in
/// its own session, with the pty as stdio and a parent-death SIGKILL.
fn spawn_unshare(
    name: &str,
    state: &Path,
    cgroup: &Path,
    slave: &OwnedFd,
    slave_name: &str,
    host_mnt_ns: &Path,
    lower: Option<&Path>,
) -> Result<std::process::Child, String> {
    let script = boot_script();
    if !script.is_file() {
        return Err(format!("{} is missing", script.display()));
    }
    let stdio =
        || -> Result<Stdio, String> { Ok(Stdio::from(slave.try_clone().map_err(|e| e.to_string())?)) };
    let procs = cgroup.join("cgroup.procs");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("echo $$ > \"$1\" && shift && exec \"$@\"")
        .arg("e2e-launch")
        .arg(&procs)
        .args([
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--cgroup",
        ])
        .args(["--propagation", "private"])
        .arg(&script)
        .arg(name)
        .env_clear()
        .env("PATH", PATH)
        .env("GRACED_E2E_STATE", state)
        .env("GRACED_E2E_HOST_MNTNS", host_mnt_ns)
        .env("GRACED_E2E_CONSOLE", slave_name)
        .stdin(stdio()?)
        .stdout(stdio()?)
        .stderr(stdio()?);
    if let Some(lower) = lower {
        cmd.env("GRACED_E2E_ROOTFS", lower);
    }
    let parent = std::process::id() as i32;
    // SAFETY: only async-signal-safe calls (setsid, prctl, getppid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the test process is gone"));
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| format!("cannot spawn unshare: {e}"))
}

/// Whether `lo` is up in the calling thread's network namespace.
fn loopback_is_up() -> bool {
    ifflags("lo").is_ok_and(|f| f & libc::IFF_UP as i16 != 0)
}

fn ifflags(name: &str) -> std::io::Result<i16> {
    // any datagram socket will do for the interface ioctls
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    // SAFETY: ifreq is plain data; SIOCGIFFLAGS fills ifr_flags.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in name.bytes().enumerate() {
            req.ifr_name[i] = b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(req.ifr_ifru.ifru_flags)
    }
}

/// `ip link set lo up`, without needing iproute2.
fn set_loopback_up() -> Result<(), String> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    // SAFETY: as in `ifflags`; SIOCSIFFLAGS reads ifr_flags.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as i16;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    Ok(())
}
