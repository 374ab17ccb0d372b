//! What the host must have for a container, and which systemd a container boots ([`Os`], [`Target`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where container state lives: outside any git tree and outside `/tmp`.
pub(crate) const STATE_BASE: &str = "/var/tmp/graced-e2e";
/// The program that systemd is run as.
pub(super) const SYSTEMD: &str = "/lib/systemd/systemd";
pub(super) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The environment of every command run inside (nothing of the test's own leaks in).
pub(super) const CLEAN_ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "TERM=dumb",
    "SYSTEMD_PAGER=cat",
    "SYSTEMD_COLORS=0",
    "SYSTEMD_LOG_COLOR=0",
];

/// The boot script, next to this file.
pub(crate) fn boot_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/container/harness/boot-container")
}

/// Which operating system a container boots: the overlay's lower layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Os {
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
pub(crate) enum Target {
    /// The machine's own systemd (252 on Debian 12): the `Type=notify` + waiting `ExecReload=` form.
    Host,
    /// systemd 257 from a Debian trixie tree: the `Type=notify-reload` form.
    Trixie,
}

impl Target {
    /// Short label for container names and messages.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Target::Host => "host",
            Target::Trixie => "trixie",
        }
    }
}

/// Why containers cannot run here, or `None` when they can.
pub(crate) fn unavailable() -> Option<String> {
    unavailable_for(&Os::Host)
}

/// Why containers booting `os` cannot run here, or `None` when they can.
pub(crate) fn unavailable_for(os: &Os) -> Option<String> {
    prerequisites().or_else(|| missing_systemd(os))
}

pub(super) fn missing_systemd(os: &Os) -> Option<String> {
    if os.systemd().exists() {
        return None;
    }
    Some(match os {
        Os::Host => format!("{SYSTEMD} is missing (apt-get install systemd)"),
        Os::Rootfs(root) => format!("{} has no {SYSTEMD}", root.display()),
    })
}

/// Why no container can run here (whichever systemd), or `None`.
pub(super) fn prerequisites() -> Option<String> {
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
pub(crate) fn visible(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Whether a missing prerequisite must fail the test instead of skipping it (CI runs them all).
pub(crate) fn required() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("GRACED_E2E_REQUIRE")
}

pub(super) fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_else(|| std::env::split_paths(PATH).collect())
        .into_iter()
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// The mount point of the host's cgroup2 hierarchy (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
pub(super) fn cgroup2_root() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
    })
}
