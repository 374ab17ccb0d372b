//! Real-systemd test containers: boots the machine's systemd — or the one of another OS tree — as PID 1 of an isolated container and drives it.
//!
//! The container recipe is the one of the shared `sdbox` tool (see `boot-container`, which
//! builds the sandbox inside the new namespaces and is the only place systemd is executed);
//! this module is its host side, in Rust, so the tests own the whole life cycle:
//!
//! * [`Container::boot`] makes a state directory under `/var/tmp/graced-e2e/` (never in the
//!   git tree, never under `/tmp`, which a stray systemd would wipe), a cgroup of its own
//!   (`<cgroup2>/graced-e2e/NAME`, the container's cgroup-namespace root), a pty for the
//!   console, and spawns `unshare --pid --fork --kill-child --mount --uts --ipc --net
//!   --cgroup` → `boot-container`. It then finds the container's systemd, checks it is ours
//!   (comm, new mount and pid namespaces, overlay root), records its start time, pins it
//!   with a pidfd and waits for `systemctl is-system-running`.
//! * Every command and every kill re-checks that identity first (start time + overlay root),
//!   so a recycled PID can never make a command run in the host's namespaces or a signal
//!   hit a stranger; signals go through the pidfd.
//! * Teardown always happens: `Drop` (also during a panic), a watchdog thread that kills the
//!   container when the test exceeds its time limit, and — should the test process itself
//!   die — `PR_SET_PDEATHSIG` on `unshare` plus `--kill-child`, which take the container's
//!   PID 1 (and with it every process inside) down.
//!
//! Commands run inside with `nsenter` into all of the container's namespaces, with a clean
//! environment; network clients run in threads of the test process that joined the
//! container's network namespace ([`Container::in_netns`]).
//!
//! Which systemd boots ([`Os`]): the machine's own (overlay lower layer `/`), or the one of
//! a complete OS tree given as the lower layer instead — [`Target::Trixie`] is Debian 13
//! with systemd 257, debootstrapped once and cached under `target/` ([`rootfs`]). The tree
//! is read-only to the container exactly like `/` is; nothing else changes.

#![allow(dead_code)]

pub mod http;
#[path = "../support/mod.rs"]
mod support;
#[allow(unused_imports)] // not every test crate uses each
pub use support::pattern;
pub mod json;
pub mod rootfs;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where container state lives: outside any git tree and outside `/tmp`.
pub const STATE_BASE: &str = "/var/tmp/graced-e2e";
/// The program that systemd is run as.
const SYSTEMD: &str = "/lib/systemd/systemd";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The environment of every command run inside (nothing of the test's own leaks in).
const CLEAN_ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "TERM=dumb",
    "SYSTEMD_PAGER=cat",
    "SYSTEMD_COLORS=0",
    "SYSTEMD_LOG_COLOR=0",
];

/// The boot script, next to this file.
pub fn boot_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/boot-container")
}

/// Which operating system a container boots: the overlay's lower layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Os {
    /// The machine's own root filesystem and systemd (Debian 12: 252).
    Host,
    /// A complete OS tree (canonical path), e.g. the cached trixie tree; its systemd boots.
    Rootfs(PathBuf),
}

impl Os {
    /// The systemd binary as the host sees it (checked, never executed on the host).
    fn systemd(&self) -> PathBuf {
        match self {
            Os::Host => PathBuf::from(SYSTEMD),
            // relative links (lib -> usr/lib) resolve inside the tree
            Os::Rootfs(root) => root.join(SYSTEMD.trim_start_matches('/')),
        }
    }
}

/// The systemd generations the end-to-end suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The machine's own systemd (252 on Debian 12): the `Type=notify` + waiting `ExecReload=` form.
    Host,
    /// systemd 257 from a Debian trixie tree: the `Type=notify-reload` form.
    Trixie,
}

impl Target {
    /// Short label for container names and messages.
    pub fn label(self) -> &'static str {
        match self {
            Target::Host => "host",
            Target::Trixie => "trixie",
        }
    }
}

/// Why containers cannot run here, or `None` when they can.
pub fn unavailable() -> Option<String> {
    unavailable_for(&Os::Host)
}

/// Why containers booting `os` cannot run here, or `None` when they can.
pub fn unavailable_for(os: &Os) -> Option<String> {
    prerequisites().or_else(|| missing_systemd(os))
}

fn missing_systemd(os: &Os) -> Option<String> {
    if os.systemd().exists() {
        return None;
    }
    Some(match os {
        Os::Host => format!("{SYSTEMD} is missing (apt-get install systemd)"),
        Os::Rootfs(root) => format!("{} has no {SYSTEMD}", root.display()),
    })
}

/// Why no container can run here (whichever systemd), or `None`.
fn prerequisites() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root (the real-systemd tests need root for namespaces and mounts)".into());
    }
    for tool in ["unshare", "nsenter", "mount", "mknod", "pivot_root", "useradd"] {
        if which(tool).is_none() {
            return Some(format!("`{tool}` is not installed (util-linux / passwd)"));
        }
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.split_whitespace().last() == Some("overlay")) {
        return Some("the kernel has no overlayfs".into());
    }
    if cgroup2_root().is_none() {
        return Some("no cgroup2 hierarchy is mounted".into());
    }
    // Can we make namespaces at all (a container without CAP_SYS_ADMIN cannot)?
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "--net", "--uts", "--ipc", "--cgroup", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(out) if out.status.success() => None,
        Ok(out) => {
            Some(format!("unshare cannot create namespaces: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
        Err(err) => Some(format!("cannot run unshare: {err}")),
    }
}

/// Writes a line straight to stderr, past the test harness's output capture, so SKIP
/// notices and measured figures show in a plain `cargo test` too.
pub fn visible(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Whether a missing prerequisite must fail the test instead of skipping it (CI runs them all).
pub fn required() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("GRACED_E2E_REQUIRE")
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_else(|| std::env::split_paths(PATH).collect())
        .into_iter()
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// The mount point of the host's cgroup2 hierarchy (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
    })
}

/// What a command run inside returned.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status (128 + signal when killed).
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Who the container's systemd is: checked before every command and signal.
struct Identity {
    pid: i32,
    starttime: u64,
    host_mnt_ns: PathBuf,
    host_pid_ns: PathBuf,
}

impl Identity {
    /// Ok when `pid` still is the container's systemd: same start time, `comm` systemd,
    /// other mount and pid namespaces than ours, and an overlayfs root.
    fn verify(&self) -> Result<(), String> {
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
fn starttime(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The filesystem type of `/` as process `pid` sees it.
fn root_fstype(pid: i32) -> Option<String> {
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
struct Handle {
    name: String,
    identity: Identity,
    pidfd: OwnedFd,
    killed: AtomicBool,
}

impl Handle {
    fn alive(&self) -> bool {
        let mut fds = [libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: poll on one valid pollfd; a pidfd turns readable when the process exits.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        n == 0
    }

    /// SIGKILL to the container's PID 1, after checking it is ours; idempotent.
    fn kill(&self, why: &str) {
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

/// A booted container; dropping it kills it and cleans up.
pub struct Container {
    pub name: String,
    state: PathBuf,
    cgroup: PathBuf,
    handle: Arc<Handle>,
    netns: OwnedFd,
    console: Arc<Mutex<Vec<u8>>>,
    timed_out: Arc<AtomicBool>,
    watchdog_stop: Arc<(Mutex<bool>, Condvar)>,
    watchdog: Option<JoinHandle<()>>,
    keeper: Option<mpsc::Receiver<Option<ExitStatus>>>,
    console_thread: Option<JoinHandle<()>>,
    /// How long the boot took (up to `systemctl is-system-running` saying running).
    pub boot_time: Duration,
    /// The booted systemd's version (first line of `systemctl --version` inside).
    pub systemd_version: u32,
    /// What was booted.
    pub os: Os,
    started: Instant,
}

impl Container {
    /// Boots a container, or prints `SKIP: reason` and returns `None` where containers
    /// cannot run (not root, no namespaces, no overlayfs). Under CI (`CI=true`) or with
    /// `GRACED_E2E_REQUIRE=1` a missing prerequisite fails instead.
    pub fn boot_or_skip(tag: &str, limit: Duration) -> Option<Container> {
        Container::boot_or_skip_on(Target::Host, tag, limit)
    }

    /// Like [`Container::boot_or_skip`] for `target`. For [`Target::Trixie`] the cached
    /// trixie tree is used, built first if needed (debootstrap, ~50 s, once); where it
    /// cannot be built (no debootstrap, no network) the test prints SKIP — or fails under
    /// CI / `GRACED_E2E_REQUIRE=1`. A build that fails for any other reason fails the test.
    pub fn boot_or_skip_on(target: Target, tag: &str, limit: Duration) -> Option<Container> {
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

    /// Boots the machine's systemd in a new container named `TAG-<test pid>`; the watchdog
    /// kills it after `limit`.
    pub fn boot(tag: &str, limit: Duration) -> Result<Container, String> {
        Container::boot_os(tag, limit, &Os::Host)
    }

    /// Boots the systemd of `os` in a new container named `TAG-<test pid>`; the watchdog
    /// kills it after `limit`.
    pub fn boot_os(tag: &str, limit: Duration, os: &Os) -> Result<Container, String> {
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
            os: os.clone(),
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

    /// The container's systemd as the host sees it.
    pub fn pid(&self) -> i32 {
        self.handle.identity.pid
    }

    /// Runs `argv` inside the container (all its namespaces, a clean environment).
    pub fn exec(&self, argv: &[&str]) -> Output {
        self.exec_input(argv, None)
    }

    /// Runs `argv` inside with `input` on its stdin; panics if the container is gone.
    pub fn exec_input(&self, argv: &[&str], input: Option<&[u8]>) -> Output {
        self.try_exec(argv, input).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Runs `argv` inside; `Err` when the container is not (or no longer) there, e.g.
    /// because the watchdog killed it meanwhile.
    pub fn try_exec(&self, argv: &[&str], input: Option<&[u8]>) -> Result<Output, String> {
        if self.timed_out.load(Ordering::SeqCst) {
            return Err(format!(
                "e2e[{}]: the watchdog killed the container (time limit exceeded)",
                self.name
            ));
        }
        if let Err(err) = self.check() {
            return Err(format!("e2e[{}]: refusing to run {argv:?}: {err}", self.name));
        }
        let pid = self.pid().to_string();
        // The command joins a cgroup *inside* the container's tree, so the container's
        // systemd sees it (`systemctl status` works, nothing lands in the host's cgroup).
        let join = "mkdir -p /sys/fs/cgroup/graced-e2e-exec 2>/dev/null; \
                    echo $$ > /sys/fs/cgroup/graced-e2e-exec/cgroup.procs 2>/dev/null; exec \"$@\"";
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &pid, "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "--", "env", "-i"])
            .args(CLEAN_ENV)
            .args(["/bin/sh", "-c", join, "e2e-exec"])
            .args(argv)
            .env_clear()
            .env("PATH", PATH)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot run nsenter: {e}"))?;
        let writer = input.map(|data| {
            let mut stdin = child.stdin.take().expect("stdin");
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            })
        });
        let out = child.wait_with_output().map_err(|e| format!("nsenter: {e}"))?;
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        if self.timed_out.load(Ordering::SeqCst) {
            return Err(format!(
                "e2e[{}]: the watchdog killed the container (time limit exceeded) while running {argv:?}",
                self.name
            ));
        }
        let status = out
            .status
            .code()
            .unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0));
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Writes graced's units for `config` into /etc/systemd/system with the installed
    /// `/usr/sbin/graced`, for the systemd that runs here (`--systemd-version auto`: 252
    /// gets the waiting `ExecReload=` form, ≥ 253 notify-reload); panics if it fails.
    pub fn generate_units(&self, config: &str) {
        self.must(&[
            "/usr/sbin/graced",
            "unit",
            "--systemd-version",
            "auto",
            "--out",
            "/etc/systemd/system",
            "-f",
            config,
        ]);
    }

    /// Runs `argv` and panics (showing its output) unless it exits 0; returns stdout.
    pub fn must(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(out.success(), "e2e[{}]: {argv:?} failed: {out}", self.name);
        out.stdout
    }

    /// `sh -c SCRIPT` inside.
    pub fn sh(&self, script: &str) -> Output {
        self.exec(&["/bin/sh", "-c", script])
    }

    /// `sh -c SCRIPT` inside, which must succeed; returns stdout.
    pub fn must_sh(&self, script: &str) -> String {
        self.must(&["/bin/sh", "-c", script])
    }

    /// Writes `contents` to `path` inside (parents created), atomically (temp name + rename).
    pub fn write_file(&self, path: &str, contents: &[u8], mode: u32) {
        let script = "set -e; mkdir -p \"$(dirname \"$1\")\"; t=\"$1.e2e-tmp.$$\"; cat > \"$t\"; \
                      chmod \"$2\" \"$t\"; mv -f \"$t\" \"$1\"";
        let out =
            self.exec_input(&["/bin/sh", "-c", script, "sh", path, &format!("{mode:o}")], Some(contents));
        assert!(out.success(), "e2e[{}]: cannot write {path}: {out}", self.name);
    }

    /// Copies a host file (e.g. a freshly built binary) to `dest` inside.
    pub fn push(&self, src: &Path, dest: &str, mode: u32) {
        let data = fs::read(src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
        self.write_file(dest, &data, mode);
    }

    pub fn systemctl(&self, args: &[&str]) -> Output {
        self.exec(&[&["systemctl", "--no-pager"], args].concat())
    }

    /// `systemctl show -p P1,P2 UNIT` as a map.
    pub fn show(&self, unit: &str, props: &[&str]) -> BTreeMap<String, String> {
        let out = self.systemctl(&["show", unit, "-p", &props.join(",")]);
        assert!(out.success(), "systemctl show {unit}: {out}");
        out.stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// One property of a unit.
    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.show(unit, &[prop]).remove(prop).unwrap_or_default()
    }

    /// `journalctl --no-pager ARGS` (after a `journalctl --sync`, so nothing is in flight).
    pub fn journal(&self, args: &[&str]) -> String {
        let _ = self.exec(&["journalctl", "--sync"]);
        let out = self.exec(&[&["journalctl", "--no-pager"], args].concat());
        assert!(out.success() || out.status == 1, "journalctl {args:?}: {out}");
        out.stdout
    }

    /// `journalctl -o json ARGS`, one flat JSON object per entry.
    pub fn journal_json(&self, args: &[&str]) -> Vec<BTreeMap<String, String>> {
        let text = self.journal(&[&["-o", "json"], args].concat());
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| json::parse_flat_object(l).unwrap_or_else(|e| panic!("journal JSON {l:?}: {e}")))
            .collect()
    }

    pub fn busctl(&self, args: &[&str]) -> Output {
        self.exec(&[&["busctl", "--no-pager"], args].concat())
    }

    /// What the container's systemd (and generators) wrote to its console.
    pub fn console_log(&self) -> String {
        String::from_utf8_lossy(&self.console.lock().unwrap()).into_owned()
    }

    /// Runs `f` in a new thread that joined the container's network namespace (127.0.0.1
    /// there is the container's loopback), and returns its result.
    pub fn in_netns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn_in_netns(f).join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Like [`Container::in_netns`], but returns the thread's handle at once.
    pub fn spawn_in_netns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        if let Err(err) = self.check() {
            panic!("e2e[{}]: {err}", self.name);
        }
        let fd = self.netns.try_clone().expect("dup netns fd");
        std::thread::spawn(move || {
            // SAFETY: setns(2) with a namespace fd we own; it only affects this new thread.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns(CLONE_NEWNET): {}", std::io::Error::last_os_error());
            drop(fd);
            f()
        })
    }

    fn check(&self) -> Result<(), String> {
        if !self.handle.alive() {
            return Err("the container is not running any more".into());
        }
        self.handle.identity.verify()
    }

    /// The container's state directory on the host (console.log, pid, starttime).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The container's cgroup on the host (the root of its cgroup namespace).
    pub fn cgroup_dir(&self) -> &Path {
        &self.cgroup
    }

    /// Whether the watchdog killed the container.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::SeqCst)
    }

    /// Kills the container now (idempotent); `Drop` does the rest.
    pub fn kill(&self) {
        self.handle.kill("kill");
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed && self.handle.alive() && !self.timed_out() {
            // Evidence for the failure, bounded in time: the watchdog still runs.
            let dump = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let failed_units = self.systemctl(&["list-units", "--failed", "--no-legend"]).stdout;
                let journal = self.exec(&["journalctl", "--no-pager", "-n", "150", "-o", "short-monotonic"]);
                (failed_units, journal.stdout)
            }));
            if let Ok((units, journal)) = dump {
                eprintln!(
                    "e2e[{}]: failed units:\n{units}\ne2e[{}]: journal tail:\n{journal}",
                    self.name, self.name
                );
            }
        }
        self.handle.kill("teardown");
        {
            let (lock, cvar) = &*self.watchdog_stop;
            *lock.lock().unwrap() = true;
            cvar.notify_all();
        }
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        // unshare exits when its child (systemd) is gone; the keeper reaps it.
        if let Some(rx) = self.keeper.take()
            && rx.recv_timeout(Duration::from_secs(10)).is_err()
        {
            eprintln!("e2e[{}]: unshare did not exit within 10s", self.name);
        }
        if let Some(t) = self.console_thread.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while cgroup_has_processes(&self.cgroup) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        remove_cgroup_tree(&self.cgroup);
        if self.cgroup.exists() {
            eprintln!("e2e[{}]: warning: could not remove {}", self.name, self.cgroup.display());
        }
        if failed {
            let _ = fs::write(self.state.join("console.tail"), tail(&self.console_log(), 100));
            eprintln!(
                "e2e[{}]: kept {} (console.log) for inspection; removed by the next run",
                self.name,
                self.state.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.state);
        }
        eprintln!("e2e[{}]: torn down after {:.1?}", self.name, self.started.elapsed());
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

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Refuses state directories that a stray systemd or a commit could reach.
fn check_state_dir(state: &Path) -> Result<(), String> {
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
fn sweep_leftovers() {
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

fn cgroup_has_processes(cg: &Path) -> bool {
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
fn remove_cgroup_tree(cg: &Path) {
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

/// The graced configuration the e2e tests install: the default site's document root, the
/// graceful-stop drain time, one listener "http" on `listen`, the pid file in
/// /run/graced, the access log to the journal, running as user `graced`.
pub fn graced_config(root: &str, drain: &str, listen: &str) -> String {
    format!(
        "# graced e2e test configuration\n\
         [server]\n\
         graceful_shutdown_timeout = \"{drain}\"\n\
         pid_file = \"/run/graced/graced.pid\"\n\
         access_log = \"journal\"\n\
         user = \"graced\"\n\
         group = \"graced\"\n\
         \n\
         [[listen]]\n\
         name = \"http\"\n\
         address = \"{listen}\"\n\
         \n\
         [[site]]\n\
         root = \"{root}\"\n\
         index = [\"index.html\"]\n"
    )
}
