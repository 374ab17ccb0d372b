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
//!
//! Files: `host.rs` (what the host must have; [`Os`], [`Target`]), `boot.rs` (booting and
//! the namespaces), `identity.rs` (who the container's systemd is; the kill handle),
//! `state.rs` (state directories and cgroups, leftovers of earlier runs), `journal.rs`
//! (`journalctl -o json`), `rootfs.rs` (the trixie tree), `boot-container` (the script
//! run as the container's first process).

mod boot;
mod host;
mod identity;
mod journal;
mod rootfs;
mod state;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use host::{CLEAN_ENV, PATH};
pub(crate) use host::{STATE_BASE, Target, required, unavailable, visible};
use identity::Handle;
use state::{cgroup_has_processes, remove_cgroup_tree, tail};

/// What a command run inside returned.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    /// Exit status (128 + signal when killed).
    pub(crate) status: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.status == 0
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

/// A booted container; dropping it kills it and cleans up.
pub(crate) struct Container {
    pub(crate) name: String,
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
    pub(crate) boot_time: Duration,
    /// The booted systemd's version (first line of `systemctl --version` inside).
    pub(crate) systemd_version: u32,
    started: Instant,
}

impl Container {
    /// The container's systemd as the host sees it.
    pub(crate) fn pid(&self) -> i32 {
        self.handle.identity.pid
    }

    /// Runs `argv` inside the container (all its namespaces, a clean environment).
    pub(crate) fn exec(&self, argv: &[&str]) -> Output {
        self.exec_input(argv, None)
    }

    /// Runs `argv` inside with `input` on its stdin; panics if the container is gone.
    pub(crate) fn exec_input(&self, argv: &[&str], input: Option<&[u8]>) -> Output {
        self.try_exec(argv, input).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Runs `argv` inside; `Err` when the container is not (or no longer) there, e.g.
    /// because the watchdog killed it meanwhile.
    pub(crate) fn try_exec(&self, argv: &[&str], input: Option<&[u8]>) -> Result<Output, String> {
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
    pub(crate) fn generate_units(&self, config: &str) {
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
    pub(crate) fn must(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(out.success(), "e2e[{}]: {argv:?} failed: {out}", self.name);
        out.stdout
    }

    /// `sh -c SCRIPT` inside.
    pub(crate) fn sh(&self, script: &str) -> Output {
        self.exec(&["/bin/sh", "-c", script])
    }

    /// `sh -c SCRIPT` inside, which must succeed; returns stdout.
    pub(crate) fn must_sh(&self, script: &str) -> String {
        self.must(&["/bin/sh", "-c", script])
    }

    /// Writes `contents` to `path` inside (parents created), atomically (temp name + rename).
    pub(crate) fn write_file(&self, path: &str, contents: &[u8], mode: u32) {
        let script = "set -e; mkdir -p \"$(dirname \"$1\")\"; t=\"$1.e2e-tmp.$$\"; cat > \"$t\"; \
                      chmod \"$2\" \"$t\"; mv -f \"$t\" \"$1\"";
        let out =
            self.exec_input(&["/bin/sh", "-c", script, "sh", path, &format!("{mode:o}")], Some(contents));
        assert!(out.success(), "e2e[{}]: cannot write {path}: {out}", self.name);
    }

    /// Copies a host file (e.g. a freshly built binary) to `dest` inside.
    pub(crate) fn push(&self, src: &Path, dest: &str, mode: u32) {
        let data = fs::read(src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
        self.write_file(dest, &data, mode);
    }

    pub(crate) fn systemctl(&self, args: &[&str]) -> Output {
        self.exec(&[&["systemctl", "--no-pager"], args].concat())
    }

    /// `systemctl show -p P1,P2 UNIT` as a map.
    pub(crate) fn show(&self, unit: &str, props: &[&str]) -> BTreeMap<String, String> {
        let out = self.systemctl(&["show", unit, "-p", &props.join(",")]);
        assert!(out.success(), "systemctl show {unit}: {out}");
        out.stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// One property of a unit.
    pub(crate) fn prop(&self, unit: &str, prop: &str) -> String {
        self.show(unit, &[prop]).remove(prop).unwrap_or_default()
    }

    /// `journalctl --no-pager ARGS` (after a `journalctl --sync`, so nothing is in flight).
    pub(crate) fn journal(&self, args: &[&str]) -> String {
        let _ = self.exec(&["journalctl", "--sync"]);
        let out = self.exec(&[&["journalctl", "--no-pager"], args].concat());
        assert!(out.success() || out.status == 1, "journalctl {args:?}: {out}");
        out.stdout
    }

    /// `journalctl -o json ARGS`, one flat JSON object per entry.
    pub(crate) fn journal_json(&self, args: &[&str]) -> Vec<BTreeMap<String, String>> {
        let text = self.journal(&[&["-o", "json"], args].concat());
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| journal::parse_entry(l).unwrap_or_else(|e| panic!("journal JSON {l:?}: {e}")))
            .collect()
    }

    pub(crate) fn busctl(&self, args: &[&str]) -> Output {
        self.exec(&[&["busctl", "--no-pager"], args].concat())
    }

    /// What the container's systemd (and generators) wrote to its console.
    pub(crate) fn console_log(&self) -> String {
        String::from_utf8_lossy(&self.console.lock().unwrap()).into_owned()
    }

    /// Runs `f` in a new thread that joined the container's network namespace (127.0.0.1
    /// there is the container's loopback), and returns its result.
    pub(crate) fn in_netns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn_in_netns(f).join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Like [`Container::in_netns`], but returns the thread's handle at once.
    pub(crate) fn spawn_in_netns<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
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
    pub(crate) fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The container's cgroup on the host (the root of its cgroup namespace).
    pub(crate) fn cgroup_dir(&self) -> &Path {
        &self.cgroup
    }

    /// Whether the watchdog killed the container.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::SeqCst)
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

/// The graced configuration the e2e tests install: the default site's document root, the
/// graceful-stop drain time, one listener "http" on `listen`, the pid file in
/// /run/graced, the access log to the journal, running as user `graced`.
pub(crate) fn graced_config(root: &str, drain: &str, listen: &str) -> String {
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
