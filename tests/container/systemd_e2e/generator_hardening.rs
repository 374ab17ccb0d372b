//! Scenarios g and h, and the harness's watchdog: the generator turns instance configs into units; the hardened unit serves files.

use super::*;

/// g. The systemd generator: an instance configuration in /etc/graced/instances becomes
/// graced@NAME units on `systemctl daemon-reload`, enabled (wanted by sockets.target) and
/// serving; a broken one is reported and skipped without stopping the others.
pub(super) fn g_the_generator_turns_instance_configs_into_units(target: Target) {
    let Some(c) = boot(target, "g", Duration::from_secs(120)) else { return };
    install(&c, &config("/srv/www", "10s", HTTP));
    c.must(&["systemctl", "start", "graced.socket"]);
    let instance = include_str!("../../e2e/site2.toml");
    c.write_file("/etc/graced/instances/site2.toml", instance.as_bytes(), 0o644);
    let broken = include_str!("../../e2e/broken.toml");
    let broken_at = broken.lines().position(|l| l.starts_with("access_log")).unwrap() + 1;
    c.write_file("/etc/graced/instances/broken.toml", broken.as_bytes(), 0o644);
    let t = Instant::now();
    let reload = c.systemctl(&["daemon-reload"]);
    let reload_time = t.elapsed();
    assert!(reload.success(), "a broken instance must not fail daemon-reload: {reload}");

    let p = c.show("graced@site2.socket", &["LoadState", "UnitFileState", "SourcePath", "FragmentPath"]);
    assert_eq!(p["LoadState"], "loaded", "{p:?}");
    assert_eq!(p["UnitFileState"], "generated", "{p:?}");
    assert_eq!(p["SourcePath"], "/etc/graced/instances/site2.toml", "{p:?}");
    assert!(p["FragmentPath"].starts_with("/run/systemd/generator/"), "{p:?}");
    let wants = c.prop("sockets.target", "Wants");
    assert!(
        wants.split_whitespace().any(|u| u == "graced@site2.socket"),
        "enabled: sockets.target wants it: {wants}"
    );
    assert_eq!(c.prop("graced@broken.socket", "LoadState"), "not-found", "the broken instance is skipped");
    // What a boot does: sockets.target pulls the enabled socket in.
    c.must(&["systemctl", "start", "sockets.target"]);
    let s = c.show("graced@site2.socket", &["ActiveState", "SubState"]);
    assert_eq!((s["ActiveState"].as_str(), s["SubState"].as_str()), ("active", "listening"), "{s:?}");
    assert_eq!(body(&c, "127.0.0.1:8081", "/"), "two\n", "the instance serves its own site");
    assert_eq!(body(&c, HTTP, "/"), "one\n", "the main server is unaffected");
    let svc = c.show(
        "graced@site2.service",
        &["ActiveState", "SubState", "StatusText", "DropInPaths", "RuntimeDirectory"],
    );
    assert_eq!((svc["ActiveState"].as_str(), svc["SubState"].as_str()), ("active", "running"), "{svc:?}");
    assert!(svc["StatusText"].starts_with("generation 1; "), "{svc:?}");
    // h for the generator's units too: exactly as generated, in this systemd's reload form.
    assert_eq!(svc["DropInPaths"], "", "{svc:?}");
    let unit = c.must(&["cat", "/run/systemd/generator/graced@site2.service"]);
    if notify_reload(&c) {
        let form = "Type=notify-reload\nNotifyAccess=main\nReloadSignal=SIGUSR1\n";
        assert!(unit.contains(form), "{unit}");
        assert!(
            unit.contains(
                "ExecReload=/usr/sbin/graced -k graceful --wait --signalled -f /etc/graced/instances/site2.toml\n"
            ),
            "{unit}"
        );
    } else {
        assert!(unit.contains("ExecReload=/usr/sbin/graced -k graceful --wait"), "{unit}");
    }
    let for_version = format!("for systemd {}.", c.systemd_version);
    assert!(unit.contains(&for_version), "the generator asked this systemd its version: {unit}");
    assert!(unit.contains("RestrictSUIDSGID=yes") && unit.contains("PrivateNetwork=yes"), "hardened: {unit}");
    let refused = c.in_netns(|| http::get(addr("127.0.0.1:8082"), "/").err().map(|f| f.kind()));
    assert_eq!(refused, Some("refused"), "nothing listens for the broken instance");

    // Where the broken instance is reported: systemd logs the generator's failure to the
    // journal; the generator's own reason goes to /dev/kmsg, which a container lacks, and
    // then to the journal's socket (systemd 252 points a generator's stderr at /dev/null).
    let journal = c.journal(&["-o", "cat", "-p", "err"]);
    let failure = "/usr/lib/systemd/system-generators/graced-generator failed with exit status 1.";
    assert!(journal.contains(failure), "the generator's failure is in the journal:\n{journal}");
    let reasons = c.journal(&["-o", "cat", "-t", "graced-generator", "-p", "err"]);
    let reason_in_journal = reasons.contains("broken.toml");
    assert!(reason_in_journal, "the generator's reason, with its position, is in the journal:\n{reasons}");
    let reason_on_console = c.console_log().contains("broken.toml");
    let dry = c.exec(&["/usr/lib/systemd/system-generators/graced-generator", "--dryrun"]);
    let position = format!("/etc/graced/instances/broken.toml:{broken_at}:");
    assert!(dry.stderr.contains(&position), "the generator names {position}…: {dry}");
    figures(
        &c,
        "g",
        &format!(
            "daemon-reload with 2 instance configs (1 broken) took {}; graced@site2.socket generated, \
         wanted by sockets.target, listening on 127.0.0.1:8081 and serving; broken instance skipped; journal: \
         {failure:?}; the generator's reason ({}) in the journal: {reason_in_journal}, on the console: \
         {reason_on_console} (no /dev/kmsg in the container; stderr is /dev/null)",
            ms(reload_time),
            dry.stderr.lines().find(|l| l.contains(&position)).unwrap_or_default().trim()
        ),
    );
}

/// h. The hardened unit, exactly as generated: it verifies, its exposure is low, and the
/// server under it serves files (no drop-in may weaken it). Regression: under
/// `RestrictSUIDSGID=yes` systemd's seccomp filter answers openat2 with ENOSYS, and every
/// file request was a 500 until `files::open_beneath` learned to resolve by walking.
pub(super) fn h_the_hardened_unit_serves_files(target: Target) {
    let Some(c) = boot(target, "h", Duration::from_secs(120)) else { return };
    // Debug logging shows what graced does with a large file (below).
    install(&c, &config("/srv/www", "10s", HTTP).replace("[server]\n", "[server]\nlog_level = \"debug\"\n"));
    let verify = c.exec(&[
        "systemd-analyze",
        "verify",
        "/etc/systemd/system/graced.service",
        "/etc/systemd/system/graced.socket",
    ]);
    assert!(verify.success() && verify.stderr.trim().is_empty(), "systemd-analyze verify: {verify}");
    let security =
        c.exec(&["systemd-analyze", "security", "--offline=true", "/etc/systemd/system/graced.service"]);
    let exposure = security
        .stdout
        .lines()
        .find_map(|l| l.split("Overall exposure level for graced.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level: {security}"));
    assert!(exposure <= 1.0, "the generated unit is hardened (exposure {exposure}): {security}");
    c.must(&["systemctl", "start", "graced.socket"]);
    c.write_file("/srv/www/sub/page.txt", b"page\n", 0o644);
    let index = get(&c, HTTP, "/");
    let page = get(&c, HTTP, "/sub/page.txt");
    let missing = get(&c, HTTP, "/nope");
    if index.status == 500 || page.status == 500 {
        let restrict = c.prop("graced.service", "RestrictSUIDSGID");
        panic!(
            "GRACED BUG: under the generated unit every file request is a 500 (GET / → {}, GET /sub/page.txt → {}, \
             GET /nope → {}). RestrictSUIDSGID={restrict}: systemd's seccomp filter for RestrictSUIDSGID=yes \
             answers openat2(2) with ENOSYS (it cannot inspect openat2's mode argument), and crates/http/src/files/beneath.rs \
             opens every file with openat2(RESOLVE_BENEATH) with no fallback. Exposure {exposure}. {}",
            index.status,
            page.status,
            missing.status,
            server_errors(&c)
        );
    }
    assert_eq!((index.status, index.text().as_str()), (200, "one\n"));
    assert_eq!((page.status, page.text().as_str()), (200, "page\n"));
    assert_eq!(missing.status, 404);
    // A file over 128 KiB goes out a MiB at a time with sendfile, each MiB probed first with
    // preadv2(RWF_NOWAIT). The container's root is overlayfs, which answers such a read
    // with EOPNOTSUPP, so graced sends the file as it is; had the unit's seccomp filter
    // refused preadv2 (EPERM), graced would read every MiB in first.
    let large = pattern(3 << 20, 11);
    c.write_file("/srv/www/large.bin", &large, 0o644);
    let got = get(&c, HTTP, "/large.bin");
    assert_eq!(got.status, 200);
    got.assert_body(&large, "the large file");
    let journal = c.journal(&["-u", "graced.service"]);
    let read_ins = journal.matches("reading a window of a file into the page cache").count();
    assert_eq!(
        read_ins, 0,
        "the probe did not get an answer from the file system under the unit:\n{journal}"
    );
    assert!(journal.contains("the file system cannot tell whether a large file is in memory"), "{journal}");
    figures(
        &c,
        "h",
        &format!(
            "systemd-analyze verify clean; exposure {exposure} (--offline=true); files served (3 MiB: probed, \
             sent as is), no drop-ins"
        ),
    );
}

/// The harness itself: a test that hangs is torn down by the watchdog when its time limit
/// expires, and the container leaves nothing behind (process, cgroup, state directory).
pub(super) fn harness_watchdog_tears_down_a_hung_test(target: Target) {
    let Some(c) = boot(target, "wd", Duration::from_secs(6)) else { return };
    let (pid, state, cgroup) = (c.pid(), c.state_dir().to_owned(), c.cgroup_dir().to_owned());
    let t = Instant::now();
    let hung = c.try_exec(&["sleep", "600"], None);
    let killed_after = t.elapsed();
    assert!(hung.is_err() && c.timed_out(), "the watchdog must end the hung command");
    assert!(killed_after < Duration::from_secs(15), "{killed_after:?}");
    let version = c.systemd_version;
    drop(c);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_ne!(comm.trim(), "systemd", "the container's systemd (pid {pid}) is gone");
    assert!(!state.exists(), "{} removed", state.display());
    assert!(!cgroup.exists(), "{} removed", cgroup.display());
    harness::visible(&format!(
        "FIGURES[harness@{version}]: a hung command was ended by the watchdog {} after it started",
        ms(killed_after)
    ));
}
