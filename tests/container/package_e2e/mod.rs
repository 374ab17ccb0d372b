//! Packaging (issue 7): the .deb and the .rpm, built by `packaging/build-deb` and
//! `packaging/build-rpm`, checked as files and installed under a real systemd.
//!
//! * `dbus_files_match_the_library` (no root): packaging/dbus/ — the D-Bus helper's files
//!   the packages ship until `graced unit` can write them — equals crates/unit/src/dbus/.
//! * `deb_…`: builds the .deb twice (the second with a bumped version), checks `dpkg-deb -c`
//!   (every path, mode and owner) and lintian (no errors), then in the container of
//!   tests/container/harness: `dpkg -i` → graced.socket enabled and active, the demo page served,
//!   `systemctl reload graced`, the catalog text in `journalctl -x`, `gracectl status` through
//!   the bus-activated helper; `dpkg -i` of the newer build while two clients request without
//!   pause (zero failed requests, counted); `dpkg --purge` → nothing left: no unit, no
//!   enablement link, no file owned by graced, no runtime directory, no process.
//! * `rpm_…`: builds the .rpm twice, checks `rpm -qplv` and `rpm -qp --scripts`, then
//!   `rpm -i --nodeps --force-debian` in the container → preset-enabled socket, start,
//!   serve, reload, catalog, gracectl; `rpm -U` under load (zero failures); `rpm -e` →
//!   nothing left.
//!
//! The release binaries are built once (`cargo build --release`, reused when fresh) and
//! packaged as they are. Needs root, namespaces and overlayfs for the container, curl and
//! help2man, and debhelper + lintian (deb) or rpm (rpm) on the host; elsewhere the tests print
//! `SKIP: reason` and pass, except under CI (`CI=true`) or with `GRACED_E2E_REQUIRE=1`,
//! where they fail. Figures are printed as `FIGURES[deb|rpm]: …` lines.
//!
//!     cargo test --test container package_e2e:: -- --nocapture
//!
//! The host side (prerequisites, builds, static checks) is here; the container side in
//! `installed.rs`.

mod installed;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graced_testsupport::http::{self, KeepAlive};
use graced_unit::dbus as files;

use crate::GRACED;
use crate::harness::{self, Container};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const HTTP: &str = "127.0.0.1:80";

/// The D-Bus helper's files as the packages install them (relative to /), from the library.
fn dbus_files() -> Vec<(&'static str, String)> {
    files::bundle(graced_dbus::DEFAULT_ADMIN_GROUP, Path::new("/usr/sbin"))
        .expect("the bus policy validates")
        .into_iter()
        .map(|(path, text)| (path.trim_start_matches('/'), text))
        .collect()
}

/// `graced unit --dbus` (what `packaging/install` runs) writes exactly the library's files,
/// laid out as installed.
#[test]
fn graced_unit_dbus_writes_the_helper_files_as_installed() {
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(GRACED)
        .args(["unit", "--dbus", "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    for (rel, text) in dbus_files() {
        let written = fs::read_to_string(out.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(written, text, "{rel}");
    }
}

// ---------------------------------------------------------------------------------------
// Host side: prerequisites, builds, static checks.

/// Whether a missing prerequisite must fail the test instead of skipping it (the harness's rule).
fn required() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("GRACED_E2E_REQUIRE")
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// `None` when the test can run; else prints `SKIP: …` (or fails under CI) and the test returns.
fn prerequisites(tag: &str, tools: &[(&str, &str)]) -> Option<()> {
    let reason = harness::unavailable().or_else(|| {
        tools
            .iter()
            .find(|(tool, _)| !have(tool))
            .map(|(tool, package)| format!("`{tool}` is not installed (apt-get install {package})"))
    });
    match reason {
        None => Some(()),
        Some(reason) if required() => {
            panic!("{tag} must run here (CI / GRACED_E2E_REQUIRE), but: {reason}")
        }
        Some(reason) => {
            harness::visible(&format!("SKIP: {tag}: {reason}"));
            None
        }
    }
}

/// The package tests share debian/ (built in place), the release build and two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs a host command; panics with its output unless it succeeds. Returns stdout.
fn host(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// target/ (cargo's target directory for this build).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_path_buf()
}

/// `cargo build --release --locked --bins`, once per test run (a no-op when fresh); returns
/// the binaries' directory and how long the build took.
fn release_binaries() -> (PathBuf, Duration) {
    static BUILT: Mutex<Option<(PathBuf, Duration)>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = built.as_ref() {
        return (b.0.clone(), Duration::ZERO);
    }
    let t = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = target_dir();
    host(
        &cargo,
        &["build", "--release", "--locked", "--bins"],
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    let b = (target.join("release"), t.elapsed());
    *built = Some(b.clone());
    b
}

/// A built package.
struct Package {
    path: PathBuf,
    version: String,
    took: Duration,
}

/// Runs `packaging/build-deb` or `packaging/build-rpm` with `args` on the prebuilt binaries.
fn build(script: &str, bins: &Path, out: &Path, args: &[&str]) -> (PathBuf, Duration) {
    let t = Instant::now();
    let out_arg = out.to_str().unwrap();
    let stdout = host(
        &format!("{ROOT}/packaging/{script}"),
        &[&["--out", out_arg], args].concat(),
        &[("GRACED_BIN_DIR", bins.to_str().unwrap())],
    );
    let path = PathBuf::from(stdout.lines().last().expect("the script prints the package path").trim());
    assert!(path.is_file(), "{script} said {}, which is not a file", path.display());
    (path, t.elapsed())
}

fn work_dir(kind: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package_e2e").join(kind);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// What every package must contain besides documentation: (mode, path), owner root:root.
const PAYLOAD: &[(&str, &str)] = &[
    ("-rwxr-xr-x", "/usr/sbin/graced"),
    ("-rwxr-xr-x", "/usr/sbin/graced-dbus"),
    ("-rwxr-xr-x", "/usr/sbin/graced-acme"),
    ("-rwxr-xr-x", "/usr/bin/gracectl"),
    ("-rwxr-xr-x", "/usr/lib/systemd/system-generators/graced-generator"),
    ("-rw-r--r--", "/usr/lib/systemd/system/graced.service"),
    ("-rw-r--r--", "/usr/lib/systemd/system/graced.socket"),
    ("-rw-r--r--", "/usr/lib/systemd/system/graced-dbus.service"),
    ("-rw-r--r--", "/usr/lib/systemd/system/graced-acme.service"),
    ("-rw-r--r--", "/usr/lib/systemd/system/graced-acme.timer"),
    ("-rw-r--r--", "/usr/share/dbus-1/system.d/org.graced.Control1.conf"),
    ("-rw-r--r--", "/usr/share/dbus-1/system-services/org.graced.Control1.service"),
    ("-rw-r--r--", "/etc/graced/graced.toml"),
    ("-rw-r--r--", "/etc/logrotate.d/graced"),
    ("-rw-r--r--", "/usr/lib/sysusers.d/graced.conf"),
    ("-rw-r--r--", "/usr/lib/systemd/catalog/graced.catalog"),
    ("-rw-r--r--", "/usr/share/graced/www/index.html"),
    ("-rw-r--r--", "/usr/share/graced/www/style.css"),
    ("-rw-r--r--", "/usr/share/man/man8/graced.8.gz"),
    ("-rw-r--r--", "/usr/share/man/man8/graced-dbus.8.gz"),
    ("-rw-r--r--", "/usr/share/man/man8/graced-acme.8.gz"),
    ("-rw-r--r--", "/usr/share/man/man1/gracectl.1.gz"),
    ("-rw-r--r--", "/usr/share/bash-completion/completions/graced"),
    ("-rw-r--r--", "/usr/share/fish/vendor_completions.d/graced.fish"),
];

/// Compares a listing (path → (mode, owner)) with PAYLOAD + `extra`: every expected file
/// with its mode and root:root, and nothing else. Returns the number of files.
fn check_listing(
    kind: &str,
    listing: &BTreeMap<String, (String, String)>,
    extra: &[(&str, String)],
) -> usize {
    let mut expected: BTreeMap<String, &str> = PAYLOAD.iter().map(|(m, p)| (p.to_string(), *m)).collect();
    expected.extend(extra.iter().map(|(m, p)| (p.clone(), *m)));
    let mut problems = Vec::new();
    for (path, mode) in &expected {
        match listing.get(path) {
            None => problems.push(format!("missing {path}")),
            Some((m, owner)) if m != mode || owner != "root/root" => {
                problems.push(format!("{path}: {m} {owner}, want {mode} root/root"))
            }
            Some(_) => {}
        }
    }
    for (path, (mode, owner)) in listing {
        if mode.starts_with('d') {
            assert_eq!(owner, "root/root", "{kind}: directory {path}");
        } else if !expected.contains_key(path) {
            problems.push(format!("unexpected {mode} {owner} {path}"));
        }
    }
    assert!(problems.is_empty(), "{kind} contents:\n{}", problems.join("\n"));
    listing.values().filter(|(m, _)| !m.starts_with('d')).count()
}

/// `dpkg-deb -c`: path → (mode, owner/group).
fn deb_listing(deb: &Path) -> BTreeMap<String, (String, String)> {
    host("dpkg-deb", &["-c", deb.to_str().unwrap()], &[])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f[5].trim_start_matches('.').trim_end_matches('/');
            (if path.is_empty() { "/" } else { path }.to_owned(), (f[0].to_owned(), f[1].to_owned()))
        })
        .collect()
}

/// `rpm -qplv`: path → (mode, owner/group).
fn rpm_listing(rpm: &Path) -> BTreeMap<String, (String, String)> {
    host("rpm", &["-qplv", rpm.to_str().unwrap()], &[])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[8].to_owned(), (f[0].to_owned(), format!("{}/{}", f[2], f[3])))
        })
        .collect()
}

/// lintian on the .deb: panics on errors; returns the warnings (and the overridden tags).
fn lintian(deb: &Path) -> (Vec<String>, usize) {
    let out = Command::new("lintian")
        .args(["--display-level", ">=warning", "--show-overrides", deb.to_str().unwrap()])
        .output()
        .expect("run lintian");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(
        errors.is_empty() && out.status.success(),
        "lintian errors:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings = text.lines().filter(|l| l.starts_with("W: ")).map(str::to_owned).collect();
    (warnings, text.lines().filter(|l| l.starts_with("O: ")).count())
}
