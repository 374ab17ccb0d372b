//! The second real systemd: a Debian trixie tree (systemd 257), debootstrapped once and cached under `target/`.
//!
//! [`trixie`] returns the path of a complete trixie root filesystem that `boot-container`
//! uses as the overlay's lower layer (read-only; every write of a container lands in its
//! tmpfs upper layer, so one tree serves every test and every run). The tree is built with
//!
//!     debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,python3,iproute2,kmod,logrotate trixie DIR
//!
//! (`kmod`: without it 257 boots *degraded*, systemd-modules-load fails to dlopen libkmod),
//! in `target/e2e-rootfs/trixie-<hash of suite, variant and include list>/root`, and is
//! ready once the `stamp` file next to it exists (written last, by rename). A lock file
//! (`flock`) makes concurrent test processes wait for one build; within a process the
//! result is shared by every test thread, a failure included (no 50 s retry per test).
//! A partial tree (a build that died) has no stamp and is removed and rebuilt.
//!
//! debootstrap runs the packages' maintainer scripts in a chroot of the target directory
//! (systemd's postinst: machine-id, sysusers, tmpfiles *of that tree*); no systemd becomes
//! PID 1 and nothing outside the tree is written. It runs in private mount and pid
//! namespaces, so the /proc it mounts in the tree, and its processes, cannot outlive it.
//!
//! Environment:
//! * `GRACED_E2E_TRIXIE_ROOTFS=DIR` — use an existing tree instead (checked, never written).
//! * `GRACED_E2E_ROOTFS_CACHE=DIR` — cache directory (default `target/e2e-rootfs`).
//! * `GRACED_E2E_DEBIAN_MIRROR=URL` — debootstrap's mirror (e.g. a snapshot.debian.org URL
//!   for reproducible CI; default deb.debian.org).

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::host::which;
use super::{STATE_BASE, visible};

pub(crate) const SUITE: &str = "trixie";
pub(crate) const VARIANT: &str = "minbase";
/// The packages of the tree (research: systemd-trixie.md §1).
pub(crate) const INCLUDE: &[&str] =
    &["systemd", "systemd-sysv", "dbus", "curl", "python3", "iproute2", "kmod", "logrotate"];
/// Bumped when what is done to a tree after debootstrap changes (part of the cache key).
const LAYOUT: u32 = 1;
/// debootstrap is network-bound (~50 s measured); a hung mirror must not hang the suite.
const BUILD_LIMIT: Duration = Duration::from_secs(900);

/// Why there is no tree.
#[derive(Debug, Clone)]
pub(crate) enum Error {
    /// It cannot be built on this machine now (no debootstrap, no network): a SKIP on a
    /// developer machine, a failure under CI / `GRACED_E2E_REQUIRE=1`.
    Unavailable(String),
    /// The build went wrong in a way that is a bug: always a failure.
    Failed(String),
}

static TRIXIE: OnceLock<Result<PathBuf, Error>> = OnceLock::new();

/// The trixie tree's canonical path, built first if the cache has none (once per process).
pub(crate) fn trixie() -> Result<PathBuf, Error> {
    TRIXIE.get_or_init(trixie_uncached).clone()
}

/// The cache key: the tree depends on these and nothing else we choose.
pub(crate) fn key() -> String {
    let spec = format!("suite={SUITE};variant={VARIANT};include={};layout={LAYOUT}", INCLUDE.join(","));
    // FNV-1a, 64 bit: stable across Rust releases (unlike DefaultHasher).
    let hash =
        spec.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

/// `target/e2e-rootfs` (or `GRACED_E2E_ROOTFS_CACHE`).
pub(crate) fn cache_base() -> PathBuf {
    match std::env::var_os("GRACED_E2E_ROOTFS_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        // CARGO_TARGET_TMPDIR is <target dir>/tmp
        _ => {
            Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap_or(Path::new("target")).join("e2e-rootfs")
        }
    }
}

/// Checks that `root` may be a container's lower layer: a canonical directory whose path
/// the overlay options can carry, outside the state base, holding a systemd.
pub(crate) fn check_lower_layer(root: &Path) -> Result<(), String> {
    let text = root.to_str().ok_or_else(|| format!("{} is not UTF-8", root.display()))?;
    let plain = text.len() > 1
        && text.starts_with('/')
        && !text.ends_with('/')
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_./+-".contains(&b))
        && !text.split('/').any(|c| c == ".." || c == ".");
    if !plain {
        return Err(format!(
            "{text:?} cannot be an overlay lower layer (use a canonical path of letters, digits and _ . / + -; \
             set GRACED_E2E_ROOTFS_CACHE to such a directory)"
        ));
    }
    if fs::canonicalize(root).ok().as_deref() != Some(root) {
        return Err(format!("{text} is not a canonical path of a directory"));
    }
    if root.starts_with(STATE_BASE) || Path::new(STATE_BASE).starts_with(root) {
        return Err(format!("{text} overlaps the container state base {STATE_BASE}"));
    }
    let systemd = root.join("lib/systemd/systemd");
    let executable = fs::metadata(&systemd).is_ok_and(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.is_file() && m.permissions().mode() & 0o111 != 0
    });
    if !executable {
        return Err(format!("{} is missing", systemd.display()));
    }
    Ok(())
}

/// The version of the systemd package in a tree, from its dpkg database (never by running it).
pub(crate) fn systemd_package_version(root: &Path) -> Option<String> {
    let status = fs::read_to_string(root.join("var/lib/dpkg/status")).ok()?;
    status
        .split("\n\n")
        .find(|p| p.lines().any(|l| l == "Package: systemd"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("Version: ")).map(str::to_owned))
}

fn trixie_uncached() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("GRACED_E2E_TRIXIE_ROOTFS").filter(|d| !d.is_empty()) {
        let root = fs::canonicalize(&dir).map_err(|e| {
            Error::Failed(format!("GRACED_E2E_TRIXIE_ROOTFS={}: {e}", Path::new(&dir).display()))
        })?;
        check_lower_layer(&root).map_err(|e| Error::Failed(format!("GRACED_E2E_TRIXIE_ROOTFS: {e}")))?;
        return Ok(root);
    }
    let base = cache_base();
    fs::create_dir_all(&base).map_err(|e| Error::Failed(format!("cannot create {}: {e}", base.display())))?;
    let base = fs::canonicalize(&base).map_err(|e| Error::Failed(format!("{}: {e}", base.display())))?;
    let name = format!("{SUITE}-{}", key());
    let dir = base.join(&name);
    let root = dir.join("root");
    let stamp = dir.join("stamp");

    // One builder at a time, across processes; the others wait here and then reuse its tree.
    let lock_path = base.join(format!("{name}.lock"));
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::Failed(format!("cannot open {}: {e}", lock_path.display())))?;
    let waited = Instant::now();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::Failed(format!("cannot lock {}: {e}", lock_path.display())))?;
    if waited.elapsed() > Duration::from_secs(1) {
        visible(&format!("e2e: waited {:.1?} for another build of {name}", waited.elapsed()));
    }
    if stamp.is_file() {
        check_lower_layer(&root).map_err(|e| Error::Failed(format!("cached tree {}: {e}", dir.display())))?;
        return Ok(root);
    }

    if which("debootstrap").is_none() {
        return Err(Error::Unavailable(
            "debootstrap is not installed (apt-get install debootstrap); it builds the Debian trixie tree once"
                .into(),
        ));
    }
    if dir.exists() {
        remove_partial(&dir)?;
    }
    fs::create_dir_all(&dir).map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))?;
    visible(&format!(
        "e2e: building the Debian {SUITE} tree (systemd 257) in {} — debootstrap, about a minute, once",
        dir.display()
    ));
    let started = Instant::now();
    debootstrap(&dir, &root)?;
    let took = started.elapsed();
    trim(&root);
    check_lower_layer(&root).map_err(|e| Error::Failed(format!("after debootstrap: {e}")))?;
    let version = systemd_package_version(&root).unwrap_or_else(|| "?".into());
    let text = format!(
        "suite={SUITE}\nvariant={VARIANT}\ninclude={}\nsystemd={version}\ndebootstrap_seconds={:.1}\n",
        INCLUDE.join(","),
        took.as_secs_f64()
    );
    let tmp = dir.join("stamp.tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::File::open(&tmp)?.sync_all())
        .and_then(|()| fs::rename(&tmp, &stamp))
        .map_err(|e| Error::Failed(format!("cannot write {}: {e}", stamp.display())))?;
    visible(&format!("e2e: built the {SUITE} tree (systemd {version}) in {:.1} s", took.as_secs_f64()));
    Ok(root)
}

/// Removes what a build that died left (no stamp), after checking nothing is mounted in it.
fn remove_partial(dir: &Path) -> Result<(), Error> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    if mounts.lines().filter_map(|l| l.split_whitespace().nth(4)).any(|m| m.starts_with(&prefix)) {
        return Err(Error::Failed(format!("something is mounted below {}; not removing it", dir.display())));
    }
    visible(&format!("e2e: removing the unfinished tree {}", dir.display()));
    fs::remove_dir_all(dir).map_err(|e| Error::Failed(format!("cannot remove {}: {e}", dir.display())))
}

/// Runs debootstrap in private mount + pid namespaces; its output goes to `DIR/debootstrap.log`.
fn debootstrap(dir: &Path, root: &Path) -> Result<(), Error> {
    let log_path = dir.join("debootstrap.log");
    let log =
        fs::File::create(&log_path).map_err(|e| Error::Failed(format!("{}: {e}", log_path.display())))?;
    let log_err = log.try_clone().map_err(|e| Error::Failed(e.to_string()))?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--"])
        .arg("debootstrap")
        .arg(format!("--variant={VARIANT}"))
        .arg(format!("--include={}", INCLUDE.join(",")))
        .arg(SUITE)
        .arg(root);
    if let Some(mirror) = std::env::var_os("GRACED_E2E_DEBIAN_MIRROR").filter(|m| !m.is_empty()) {
        cmd.arg(mirror);
    }
    cmd.env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C");
    for proxy in ["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"] {
        if let Some(v) = std::env::var_os(proxy) {
            cmd.env(proxy, v);
        }
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
    // SAFETY: prctl is async-signal-safe; the build dies with the test process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::Failed(format!("cannot run unshare debootstrap: {e}")))?;
    let deadline = Instant::now() + BUILD_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() > deadline => {
                // unshare --kill-child takes debootstrap (PID 1 of its pid namespace) and all below it down
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(Error::Failed(format!("waiting for debootstrap: {e}"))),
        }
    };
    if status.is_some_and(|s| s.success()) {
        return Ok(());
    }
    let mut text = String::new();
    let _ = fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut text));
    let tail: Vec<&str> = text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
    let what = match status {
        None => format!("debootstrap did not finish within {BUILD_LIMIT:?}"),
        Some(s) => format!("debootstrap failed ({s})"),
    };
    let message = format!("{what}; log {}:\n{}", log_path.display(), tail.join("\n"));
    let network = [
        "Failed getting release file",
        "Couldn't download",
        "unable to resolve host",
        "Temporary failure in name resolution",
        "Could not resolve",
        "Network is unreachable",
        "Connection refused",
        "Connection timed out",
        "No route to host",
    ];
    if status.is_none() || network.iter().any(|n| text.contains(n)) {
        Err(Error::Unavailable(format!("the Debian archive is unreachable: {message}")))
    } else {
        Err(Error::Failed(message))
    }
}

/// Drops the downloaded packages and index files (~105 MB of the 312 MB): nothing in a
/// container needs them.
fn trim(root: &Path) {
    for (dir, keep) in [("var/cache/apt/archives", ".deb"), ("var/lib/apt/lists", "")] {
        let Ok(entries) = fs::read_dir(root.join(dir)) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let file = e.file_type().is_ok_and(|t| t.is_file());
            if file && name != "lock" && name.ends_with(keep) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}
