//! The D-Bus helper under a real systemd (issue 6): `gracectl` → system bus → `graced-dbus` → systemd → graced.
//!
//! Boots the machine's systemd (252 on Debian 12) in an isolated container
//! (`tests/container/harness`), installs graced with its generated units, and the helper exactly as
//! `graced_unit::dbus` writes it: the bus policy (validated first), the activation file
//! and the hardened `graced-dbus.service`. Then, through `gracectl` run as root, as a
//! member of `graced-admin` and as a user outside it:
//!
//! * the first call bus-activates the helper (SystemdService=);
//! * a user outside graced-admin is denied by the bus policy (exit 4), a member succeeds;
//! * acting on dbus.service is refused (exit 2) and dbus keeps running;
//! * a reload with a broken configuration reports FILE:LINE:COL (exit 1) and graced keeps
//!   serving the old generation; a good one returns the new generation;
//! * `gracectl graceful-stop graced` lets an in-flight request finish byte-exact and
//!   returns only once the unit is inactive.
//!
//! Needs root, namespaces and overlayfs; elsewhere it prints `SKIP: reason` and passes,
//! except under CI (`CI=true`) or with `GRACED_E2E_REQUIRE=1`.
//!
//!     cargo test --test container dbus_e2e:: -- --nocapture

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use graced_testsupport::http;
use graced_testsupport::pattern::pattern;
use graced_unit::dbus as files;

use crate::harness::{self, Container, Output};
use crate::{GRACECTL, GRACED, HELPER};
const CONFIG: &str = "/etc/graced/graced.toml";
const HTTP: &str = "127.0.0.1:80";

fn addr() -> SocketAddr {
    HTTP.parse().unwrap()
}

fn config(root: &str) -> String {
    harness::graced_config(root, "20s", HTTP)
}

/// graced with its generated units, the helper with its three files, and the users:
/// `deploy` (in graced-admin) and `outsider` (not).
fn install(c: &Container) {
    c.push(GRACED.as_ref(), "/usr/sbin/graced", 0o755);
    c.push(HELPER.as_ref(), "/usr/sbin/graced-dbus", 0o755);
    c.push(GRACECTL.as_ref(), "/usr/bin/gracectl", 0o755);
    for user in [
        &["--system", "--user-group", "graced"][..],
        &["--user-group", "deploy"],
        &["--user-group", "outsider"],
    ] {
        c.must(&[&["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin"], user].concat());
    }
    c.must(&["groupadd", "--system", "graced-admin"]);
    c.must(&["usermod", "--append", "--groups", "graced-admin", "deploy"]);

    c.write_file("/srv/www/index.html", b"one\n", 0o644);
    c.write_file("/srv/www2/index.html", b"two\n", 0o644);
    c.write_file(CONFIG, config("/srv/www").as_bytes(), 0o644);
    c.generate_units(CONFIG);

    let policy = files::bus_policy(graced_dbus::DEFAULT_ADMIN_GROUP);
    files::validate_policy(&policy).expect("the generated policy validates");
    c.write_file(files::POLICY_PATH, policy.as_bytes(), 0o644);
    c.write_file(files::ACTIVATION_PATH, files::activation_file().as_bytes(), 0o644);
    let unit = "/etc/systemd/system/graced-dbus.service";
    c.write_file(unit, files::helper_service(Path::new("/usr/sbin")).as_bytes(), 0o644);
    let verify = c.exec(&["systemd-analyze", "verify", unit]);
    assert!(verify.success() && verify.stderr.trim().is_empty(), "systemd-analyze verify: {verify}");
    c.must(&["systemctl", "daemon-reload"]);
    // dbus-daemon rereads system.d by inotify; ask it explicitly so the test does not race it.
    c.must(&[
        "busctl",
        "call",
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "ReloadConfig",
    ]);
}

/// `gracectl ARGS` as `user` (root when None; `--init-groups` gives the user's groups).
fn gracectl(c: &Container, user: Option<&str>, args: &[&str]) -> Output {
    match user {
        None => c.exec(&[&["gracectl"], args].concat()),
        Some(user) => c.exec(
            &[&["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--", "gracectl"], args]
                .concat(),
        ),
    }
}

fn get(c: &Container) -> String {
    let r = c.in_netns(|| http::must_get(addr(), "/"));
    assert_eq!(r.status, 200, "GET /: {} {:?}", r.status, r.text());
    r.text()
}

#[test]
fn gracectl_drives_graced_through_the_helper() {
    let Some(c) = Container::boot_or_skip("dbus", Duration::from_secs(180)) else { return };
    install(&c);
    c.must(&["systemctl", "start", "graced.socket"]);
    assert_eq!(get(&c), "one\n");
    assert_eq!(c.prop("graced-dbus.service", "ActiveState"), "inactive", "not started before the first call");

    // Root; the call bus-activates the helper.
    let t = Instant::now();
    let out = gracectl(&c, None, &["status"]);
    let first_call = t.elapsed();
    assert_eq!(out.status, 0, "{out}");
    assert!(out.stdout.starts_with("graced.service: active (running) since "), "{out}");
    assert!(out.stdout.contains("  generation: 1\n"), "{out}");
    assert_eq!(c.prop("graced-dbus.service", "ActiveState"), "active", "activated by the call");
    let json = gracectl(&c, None, &["status", "--json"]);
    let pid = c.prop("graced.service", "MainPID");
    assert!(json.stdout.contains(&format!("\"main_pid\":{pid}")), "{json}");

    // The bus policy: outside graced-admin denied, inside admitted.
    let out = gracectl(&c, Some("outsider"), &["graceful-stop"]);
    assert_eq!(out.status, 4, "outsider: {out}");
    assert!(out.stderr.contains("access denied"), "{out}");
    assert_eq!(c.prop("graced.service", "ActiveState"), "active");
    let out = gracectl(&c, Some("deploy"), &["status"]);
    assert_eq!(out.status, 0, "deploy (graced-admin): {out}");

    // Only graced units.
    let out = gracectl(&c, None, &["graceful-stop", "dbus.service"]);
    assert_eq!(out.status, 2, "{out}");
    assert!(out.stderr.contains("not a graced unit"), "{out}");
    assert_eq!(c.prop("dbus.service", "ActiveState"), "active");

    // A broken configuration: the reload fails with FILE:LINE:COL, the old generation serves.
    let broken =
        config("/srv/www").replace("graceful_shutdown_timeout = \"20s\"", "graceful_shutdown_timeout = 20");
    let line = broken.lines().position(|l| l.contains("= 20")).unwrap() + 1;
    c.write_file(CONFIG, broken.as_bytes(), 0o644);
    let out = gracectl(&c, Some("deploy"), &["reload"]);
    assert_eq!(out.status, 1, "{out}");
    assert!(out.stderr.contains("reload failed, still serving generation 1"), "{out}");
    assert!(out.stderr.contains(&format!("{CONFIG}:{line}:")), "{out}");
    assert_eq!(get(&c), "one\n", "graced keeps serving");
    assert_eq!(c.prop("graced.service", "ActiveState"), "active");

    // A good one: the new generation.
    c.write_file(CONFIG, config("/srv/www2").as_bytes(), 0o644);
    let out = gracectl(&c, Some("deploy"), &["reload", "graced"]);
    assert_eq!(out.status, 0, "{out}");
    assert_eq!(out.stdout, "graced.service: reloaded; generation 2 serving\n", "{out}");
    assert_eq!(get(&c), "two\n");

    // Graceful stop with a request in flight.
    let big = pattern(24 << 20, 7);
    c.write_file("/srv/www2/big.bin", &big, 0o644);
    let (tx, rx) = mpsc::channel();
    let download = c
        .spawn_in_netns(move || http::slow_get(addr(), "/big.bin", 64 * 1024, Duration::from_millis(10), tx));
    rx.recv_timeout(Duration::from_secs(20)).expect("the slow download's response head");
    let t = Instant::now();
    let out = gracectl(&c, Some("deploy"), &["graceful-stop", "graced", "--timeout", "60"]);
    let stop_time = t.elapsed();
    let state = c.show("graced.service", &["ActiveState", "Result"]);
    assert_eq!(out.status, 0, "{out}");
    assert_eq!(state["ActiveState"], "inactive", "inactive when gracectl returns: {state:?}");
    assert_eq!(state["Result"], "success", "{state:?}");
    assert!(
        out.stdout.contains("stopped gracefully") && out.stdout.contains("no request was aborted"),
        "{out}"
    );
    assert!(out.stderr.contains("graced.service: graceful stop: draining 1 connections"), "progress: {out}");
    let d = download.join().unwrap();
    let response = d.response.unwrap_or_else(|f| panic!("the in-flight request failed: {f}"));
    response.assert_body(&big, "the in-flight response must be byte-exact");
    assert!(stop_time > Duration::from_millis(500), "waited for the in-flight request ({stop_time:?})");

    let out = gracectl(&c, None, &["--json", "status"]);
    assert_eq!(out.status, 3, "status of a stopped unit: {out}");
    assert!(out.stdout.contains("\"state\":\"inactive/dead\""), "{out}");

    // A unit whose KillSignal= is not WINCH: the helper sends WINCH to the main process
    // itself (KillUnit) instead of a stop job, and still waits for inactive.
    c.write_file(
        "/etc/systemd/system/graced.service.d/zz-kill-signal.conf",
        b"[Service]\nKillSignal=SIGTERM\n",
        0o644,
    );
    c.must(&["systemctl", "daemon-reload"]);
    c.must(&["systemctl", "start", "graced.service"]);
    assert_eq!(get(&c), "two\n");
    let out = gracectl(&c, None, &["graceful-stop", "graced"]);
    assert_eq!(out.status, 0, "{out}");
    let state = c.show("graced.service", &["ActiveState", "Result"]);
    assert_eq!(
        (state["ActiveState"].as_str(), state["Result"].as_str()),
        ("inactive", "success"),
        "{state:?}"
    );
    let journal = c.journal(&["-u", "graced", "-o", "cat"]);
    assert!(journal.contains("Sent signal SIGWINCH to main process"), "KillUnit(main, SIGWINCH): {journal}");

    // The helper logged who asked.
    let journal = c.journal(&["-u", "graced-dbus", "-o", "cat"]);
    let deploy_uid = c.must(&["id", "-u", "deploy"]);
    assert!(
        journal.contains(&format!("graceful stop of graced.service requested by uid {}", deploy_uid.trim())),
        "{journal}"
    );
    harness::visible(&format!(
        "FIGURES[dbus]: first call (bus activation + status) {:.0} ms; graceful-stop with a 24 MiB response in \
         flight returned after {:.0} ms, unit inactive, byte-exact",
        first_call.as_secs_f64() * 1000.0,
        stop_time.as_secs_f64() * 1000.0
    ));
}
