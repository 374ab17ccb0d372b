//! End-to-end tests under two real systemds (issues 5 and 9): the generated, hardened units of graced, driven by systemctl.
//!
//! Every scenario runs twice: `host::*` boots the machine's own systemd (252 on Debian 12,
//! the `Type=notify` + waiting `ExecReload=` unit form), `trixie::*` boots systemd 257 from
//! a Debian trixie tree (the `Type=notify-reload` + `ReloadSignal=` + `ExecReload=graced -k
//! graceful --wait --signalled` form; the tree is debootstrapped once and cached under `target/e2e-rootfs`, see
//! `tests/container/harness/rootfs.rs`). Each test boots its systemd as PID 1 of an isolated
//! container (`tests/container/harness`), installs the freshly built `graced` and `graced-generator`,
//! writes `/etc/graced/graced.toml`, creates the `graced` user, generates the units *inside*
//! with `graced unit --systemd-version auto` (so the unit form matches the systemd that
//! runs them), and asserts what systemd and a client in the container's network namespace
//! see. The units are used exactly as generated (scenario h); the one exception is the
//! `TimeoutStopSec=` drop-in of the EXTEND_TIMEOUT_USEC test in scenario d.
//!
//! Needs root, namespaces and overlayfs; elsewhere every test prints `SKIP: reason` and
//! passes, except under CI (`CI=true`) or with `GRACED_E2E_REQUIRE=1`, where they must run.
//! Each test prints its measured figures as `FIGURES[x@VERSION]: …` lines, past the output capture.
//! A machine that cannot build the trixie tree (no debootstrap, no network) SKIPs the
//! `trixie::` tests the same way, except under CI / `GRACED_E2E_REQUIRE=1`.
//!
//!     cargo test --test container systemd_e2e:: -- --nocapture --test-threads=1
//!     cargo test --test container systemd_e2e::trixie:: -- --test-threads=1     # only systemd 257
//!
//! Scenario l (`upgrade.rs`) measures a binary upgrade under load against `systemctl restart`.
//! Scenario m (`logrotate.rs`) needs `logrotate` in the tree: on the host's systemd it must
//! be installed (`.ci/run` does); the trixie tree is built with it.
//!
//! Scenario n (`acme.rs`) pushes the host's pebble into the tree (`.ci/run` installs it).
//!
//! Scenario j (`https.rs`) makes the container's mounts shared first, as on a booted
//! machine: systemd's `LoadCredential=` needs shared propagation (see `https::share_mounts`).
//!
//! Scenario o (`faults.rs`) injects faults while clients run: SIGKILL during a reload and
//! during a drain, SIGSTOP under the watchdog, journald stopped and frozen.
//!
//! The scenarios live in one file per topic; the helpers they share are here and in `load.rs`.

mod acme;
mod activation_reload;
mod faults;
mod fd_store;
mod generator_hardening;
mod http2;
mod https;
mod load;
mod logrotate;
mod pid_files_journal;
mod restarts;
mod stop;
mod unit_forms;
mod upgrade;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use graced::logging::message_id;
use graced_testsupport::http::{self, KeepAlive};
use graced_testsupport::pattern::pattern;

use crate::harness::{self, Container, Target, graced_config as config};
use crate::{GENERATOR, GRACED};
use acme::n_acme_certificates_from_pebble;
use activation_reload::{
    a_socket_activation_starts_the_service_on_the_first_request, b_reload_tells_the_truth,
};
use faults::o_faults_under_systemd_refuse_no_connection;
use fd_store::i_the_fd_store_keeps_the_listeners;
use generator_hardening::{
    g_the_generator_turns_instance_configs_into_units, h_the_hardened_unit_serves_files,
    harness_watchdog_tears_down_a_hung_test,
};
use http2::k_http2_streams_survive_reloads_and_stops;
use https::j_https_with_a_root_only_key;
use load::{StopFlag, describe, restart_storm, storm};
use logrotate::m_logrotate_under_load_loses_no_line;
use pid_files_journal::{e_stale_pid_files_never_block_a_start, f_the_journal_tells_the_story};
use restarts::c_restarts_under_load_lose_no_request;
use stop::d_stop_drains_in_flight_requests;
use upgrade::l_binary_upgrade_under_load;

const CONFIG: &str = "/etc/graced/graced.toml";
const PID_FILE: &str = "/run/graced/graced.pid";
const HTTP: &str = "127.0.0.1:80";

/// Boots the container of `target` for the scenario `tag`, or SKIPs (see the harness).
fn boot(target: Target, tag: &str, limit: Duration) -> Option<Container> {
    let tag = match target {
        Target::Host => tag.to_owned(),
        Target::Trixie => format!("tx-{tag}"),
    };
    Container::boot_or_skip_on(target, &tag, limit)
}

/// `FIGURES[tag@VERSION]: text`, past the output capture.
fn figures(c: &Container, tag: &str, text: &str) {
    harness::visible(&format!("FIGURES[{tag}@{}]: {text}", c.systemd_version));
}

/// `FINDING[tag@VERSION]: text`: something measured that is not a failure of the contract.
fn finding(c: &Container, tag: &str, text: &str) {
    harness::visible(&format!("FINDING[{tag}@{}]: {text}", c.systemd_version));
}

/// The reload form `graced unit` must pick for the systemd a container runs.
fn notify_reload(c: &Container) -> bool {
    c.systemd_version >= 253
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A configuration with a type error: `graceful_shutdown_timeout` is a number, not a
/// duration string. Returns the text and the `FILE:LINE:COL` the error must name.
fn broken_config(root: &str) -> (String, String) {
    let text = config(root, "30s", HTTP)
        .replace("graceful_shutdown_timeout = \"30s\"", "graceful_shutdown_timeout = 30");
    let (line, col) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("= 30").map(|c| (i + 1, c + 3)))
        .expect("the broken line");
    (text, format!("{CONFIG}:{line}:{col}"))
}

/// Installs graced into a booted container: the binaries, the `graced` user, two sites
/// (/srv/www → "one", /srv/www2 → "two"), the configuration, and the units generated
/// inside by `graced unit --systemd-version auto`; then `systemctl daemon-reload`.
fn install(c: &Container, config_text: &str) {
    let t = Instant::now();
    c.push(GRACED.as_ref(), "/usr/sbin/graced", 0o755);
    c.push(GENERATOR.as_ref(), "/usr/lib/systemd/system-generators/graced-generator", 0o755);
    c.must(&[
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "graced",
    ]);
    c.write_file("/srv/www/index.html", b"one\n", 0o644);
    c.write_file("/srv/www2/index.html", b"two\n", 0o644);
    c.write_file(CONFIG, config_text.as_bytes(), 0o644);
    let check = c.exec(&["/usr/sbin/graced", "-t", "-f", CONFIG]);
    assert!(check.success(), "graced -t: {check}");
    c.generate_units(CONFIG);
    // `auto` asked this systemd: the files are exactly those for its version number.
    let explicit = generated_units(c, CONFIG, &c.systemd_version.to_string());
    assert!(!explicit.is_empty());
    for (name, text) in &explicit {
        let written = c.must(&["cat", &format!("/etc/systemd/system/{name}")]);
        assert_eq!(&written, text, "{name}: --systemd-version auto must equal {}", c.systemd_version);
    }
    c.must(&["systemctl", "daemon-reload"]);
    eprintln!("e2e[{}]: installed graced in {:.2?} (boot {:.2?})", c.name, t.elapsed(), c.boot_time);
    assert_generated_unit_unchanged(c);
}

/// `graced unit --systemd-version VERSION -f CONFIG` run inside, as file name → text.
fn generated_units(c: &Container, config: &str, version: &str) -> BTreeMap<String, String> {
    let out = c.must(&["/usr/sbin/graced", "unit", "--systemd-version", version, "--out", "-", "-f", config]);
    let mut files = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in out.split_inclusive('\n') {
        let marker = line.trim_end().strip_prefix("---").and_then(|l| l.strip_suffix("---"));
        match marker {
            Some(name) if !name.is_empty() && !name.contains(' ') => {
                files.extend(current.take());
                current = Some((name.to_owned(), String::new()));
            }
            _ => current.as_mut().expect("output starts with ---NAME---").1.push_str(line),
        }
    }
    files.extend(current);
    files
}

/// Scenario h: the unit systemd runs is the one `graced unit` wrote for this systemd —
/// hardened, no drop-ins, and the reload form of its version: < 253 `Type=notify` + a
/// waiting `ExecReload=`, ≥ 253 `Type=notify-reload` + `ReloadSignal=SIGUSR1` +
/// `ExecReload=graced -k graceful --wait --signalled` (the outcome of the reload the signal
/// started, which can fail the reload job). A configuration with certificate and key files
/// (`LoadCredential=` lines) gets `Type=notify` and `ExecReload=+graced -k graceful --wait`
/// on every version: root opens the files and hands them over before the reload starts.
fn assert_generated_unit_unchanged(c: &Container) {
    let p = c.show(
        "graced.service",
        &[
            "FragmentPath",
            "DropInPaths",
            "Type",
            "ReloadSignal",
            "ExecReload",
            "ExecReloadEx",
            "User",
            "PrivateNetwork",
            "ProtectSystem",
            "NoNewPrivileges",
            "KillSignal",
            "StartLimitBurst",
            "RuntimeDirectory",
            "CapabilityBoundingSet",
        ],
    );
    assert_eq!(p["FragmentPath"], "/etc/systemd/system/graced.service", "{p:?}");
    assert_eq!(p["DropInPaths"], "", "the generated unit must run without drop-ins: {p:?}");
    let file = c.must(&["cat", "/etc/systemd/system/graced.service"]);
    if file.lines().any(|l| l.starts_with("LoadCredential=")) {
        assert_eq!(p["Type"], "notify", "TLS files: Type=notify on every version: {p:?}");
        assert!(
            p["ExecReload"].contains(&format!("argv[]=/usr/sbin/graced -k graceful --wait -f {CONFIG} ")),
            "TLS files: a waiting ExecReload= that hands them over: {p:?}"
        );
        assert!(p["ExecReloadEx"].contains("flags=privileged"), "`ExecReload=+…`: run as root: {p:?}");
    } else if notify_reload(c) {
        assert_eq!(p["Type"], "notify-reload", "{p:?}");
        assert_eq!(p.get("ReloadSignal").map(String::as_str), Some("10"), "SIGUSR1: {p:?}");
        assert!(
            p["ExecReload"]
                .contains(&format!("argv[]=/usr/sbin/graced -k graceful --wait --signalled -f {CONFIG} ")),
            "≥ 253 form: ExecReload= waits for the signalled reload's outcome: {p:?}"
        );
    } else {
        assert_eq!(p["Type"], "notify", "{p:?}");
        assert!(p["ExecReload"].contains("-k graceful --wait"), "252 form: a waiting ExecReload=: {p:?}");
    }
    assert_eq!(p["User"], "graced");
    assert_eq!(p["PrivateNetwork"], "yes");
    assert_eq!(p["ProtectSystem"], "strict");
    assert_eq!(p["NoNewPrivileges"], "yes");
    assert_eq!(p["KillSignal"], "28", "SIGWINCH: graceful stop");
    assert_eq!(p["StartLimitBurst"], "50");
    assert_eq!(p["RuntimeDirectory"], "graced");
    assert_eq!(p["CapabilityBoundingSet"], "");
    let for_version = format!("for systemd {}.", c.systemd_version);
    assert!(file.starts_with("# Generated by `graced unit`") && file.contains(&for_version), "{file}");
}

/// Waits until `unit` has `prop` = `want` (at most `limit`); returns how long it took.
fn wait_prop(c: &Container, unit: &str, prop: &str, want: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let v = c.prop(unit, prop);
        if v == want {
            return t.elapsed();
        }
        assert!(t.elapsed() < limit, "{unit}: {prop}={v}, waited {limit:?} for {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main_pid(c: &Container) -> u32 {
    c.prop("graced.service", "MainPID").parse().unwrap()
}

/// GET in the container's network namespace; panics unless a complete response arrives.
fn get(c: &Container, address: &str, path: &str) -> http::Response {
    let (a, p) = (addr(address), path.to_owned());
    c.in_netns(move || http::must_get(a, &p))
}

/// The body of a 200 response to GET `path`; anything else fails the test, a 500 with the
/// server's own account of it from the journal.
fn body(c: &Container, address: &str, path: &str) -> String {
    let r = get(c, address, path);
    if r.status == 500 {
        panic!("GET http://{address}{path} → 500 Internal Server Error; {}", server_errors(c));
    }
    assert_eq!(r.status, 200, "GET {path}: {} {:?}", r.status, r.text());
    r.text()
}

/// What graced logged at warning level or above, with the error and the source line.
fn server_errors(c: &Container) -> String {
    let errors: Vec<String> = c
        .journal_json(&["-u", "graced*", "-p", "warning"])
        .into_iter()
        .filter(|e| e.get("SYSLOG_IDENTIFIER").map(String::as_str) == Some("graced"))
        .map(|e| {
            let field = |k: &str| e.get(k).cloned().unwrap_or_default();
            format!(
                "{} ERROR={} at {}:{}",
                field("MESSAGE"),
                field("ERROR"),
                field("CODE_FILE"),
                field("CODE_LINE")
            )
        })
        .collect();
    let openat2 = errors.iter().any(|e| e.contains("os error 38"));
    format!(
        "graced's journal: {errors:?}{}",
        if openat2 {
            " — the known bug shown by h_the_hardened_unit_serves_files: RestrictSUIDSGID=yes in the generated \
             unit makes openat2(2) fail with ENOSYS, and crates/http/src/files/beneath.rs has no fallback"
        } else {
            ""
        }
    )
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Every scenario against both systemds.

/// `host::NAME` and `trixie::NAME` tests, each calling the scenario `NAME(target)`.
macro_rules! on_both_systemds {
    ($($name:ident),* $(,)?) => {
        /// The machine's own systemd (252 on Debian 12).
        mod host {
            $(#[test] fn $name() { super::$name(super::Target::Host) })*
        }
        /// systemd 257 from the cached Debian trixie tree.
        mod trixie {
            $(#[test] fn $name() { super::$name(super::Target::Trixie) })*
        }
    };
}

on_both_systemds!(
    a_socket_activation_starts_the_service_on_the_first_request,
    b_reload_tells_the_truth,
    c_restarts_under_load_lose_no_request,
    d_stop_drains_in_flight_requests,
    e_stale_pid_files_never_block_a_start,
    f_the_journal_tells_the_story,
    g_the_generator_turns_instance_configs_into_units,
    h_the_hardened_unit_serves_files,
    i_the_fd_store_keeps_the_listeners,
    j_https_with_a_root_only_key,
    k_http2_streams_survive_reloads_and_stops,
    l_binary_upgrade_under_load,
    m_logrotate_under_load_loses_no_line,
    n_acme_certificates_from_pebble,
    o_faults_under_systemd_refuse_no_connection,
    harness_watchdog_tears_down_a_hung_test,
);
