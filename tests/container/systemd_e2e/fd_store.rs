//! Scenario i: the opt-in fd store keeps the listeners across restart, crash and stop + start.

use super::*;

/// The environment variable `name` of process `pid` inside the container.
fn environ(c: &Container, pid: u32, name: &str) -> Option<String> {
    let env = c.must(&["cat", &format!("/proc/{pid}/environ")]);
    env.split('\0').find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

/// A hand-written unit for graced *without* a socket unit (it binds its own port): the
/// case the fd store is for. `store` adds FileDescriptorStoreMax=1 + Preserve=yes.
fn solo_unit(name: &str, config: &str, store: bool) -> String {
    format!(
        "[Unit]\nDescription=graced without a socket unit ({name})\nStartLimitIntervalSec=10s\nStartLimitBurst=100\n\n\
         [Service]\nType=notify-reload\nReloadSignal=SIGUSR1\nExecStart=/usr/sbin/graced -f {config}\n\
         KillMode=mixed\nKillSignal=SIGWINCH\nTimeoutStopSec=15s\nUser=graced\nRuntimeDirectory={name}\n{}",
        if store { "FileDescriptorStoreMax=1\nFileDescriptorStorePreserve=yes\n" } else { "" }
    )
}

/// i. systemd's fd store (`[server] fd_store = true`). On ≥ 254 the generated unit gets
/// FileDescriptorStoreMax= + FileDescriptorStorePreserve=yes and graced stores its
/// listeners (FDSTORE=1, FDNAME=http, the fds as SCM_RIGHTS); restarts and stop + start
/// (the socket unit staying loaded) come back with `LISTEN_FDNAMES=http:http` — one socket
/// from each — which graced uses once, and no request fails. Measured besides, for the
/// decision on the default: what a stored copy does to a restart of the socket unit, and
/// what the store is worth for a service *without* a socket unit. On < 254: no
/// directives, and the server says that it has no store.
pub(super) fn i_the_fd_store_keeps_the_listeners(target: Target) {
    let Some(c) = boot(target, "i", Duration::from_secs(300)) else { return };
    let text = config("/srv/www", "10s", HTTP).replace("[server]\n", "[server]\nfd_store = true\n");
    install(&c, &text);
    let unit = c.must(&["cat", "/etc/systemd/system/graced.service"]);
    c.must(&["systemctl", "start", "graced.socket"]);
    assert_eq!(body(&c, HTTP, "/"), "one\n");
    if c.systemd_version < 254 {
        assert!(!unit.contains("FileDescriptorStore"), "no fd store directives before 254: {unit}");
        assert_eq!(c.prop("graced.service", "FileDescriptorStoreMax"), "0");
        let journal = c.journal(&["-u", "graced.service", "-o", "cat"]);
        assert!(journal.contains("systemd offers no fd store"), "the server says so: {journal}");
        figures(
            &c,
            "i",
            "fd_store = true: no FileDescriptorStore* directives (needs ≥ 254), the server logs that \
                          it has no store, and serves as usual",
        );
        return;
    }
    assert!(unit.contains("FileDescriptorStoreMax=1\nFileDescriptorStorePreserve=yes\n"), "{unit}");
    let p = c.show("graced.service", &["FileDescriptorStoreMax", "FileDescriptorStorePreserve"]);
    assert_eq!(
        (p["FileDescriptorStoreMax"].as_str(), p["FileDescriptorStorePreserve"].as_str()),
        ("1", "yes")
    );
    wait_prop(&c, "graced.service", "NFileDescriptorStore", "1", Duration::from_secs(5));
    let fdstore = c.must(&["systemd-analyze", "fdstore", "graced.service"]);
    let entry = fdstore
        .lines()
        .find(|l| l.starts_with("http "))
        .unwrap_or_else(|| panic!("no `http` entry: {fdstore}"));
    assert!(entry.contains(" sock "), "a socket: {fdstore}");
    let first_pid = main_pid(&c);
    assert_eq!(
        environ(&c, first_pid, "LISTEN_FDNAMES").as_deref(),
        Some("http"),
        "first start: the socket's fd only"
    );
    assert_eq!(
        environ(&c, first_pid, "FDSTORE").as_deref(),
        Some("1"),
        "$FDSTORE tells graced the store's size"
    );

    // Restarts under load: both copies come back, one is used, the store stays at one fd.
    let mut report = Vec::new();
    for keep_alive in [false, true] {
        let (tally, times, total) = restart_storm(&c, keep_alive, 20);
        let mode =
            if keep_alive { "restart ×20, keep-alive" } else { "restart ×20, new connection per request" };
        report.push(describe(mode, &tally, &times, total));
        assert_eq!(tally.failed(), 0, "{mode}: {:?}, e.g. {:?}", tally.failures, tally.examples);
        assert_eq!(
            c.prop("graced.service", "NFileDescriptorStore"),
            "1",
            "re-storing the same socket adds nothing"
        );
    }
    let pid = main_pid(&c);
    assert_eq!(environ(&c, pid, "LISTEN_FDNAMES").as_deref(), Some("http:http"), "socket unit + fd store");
    assert_eq!(body(&c, HTTP, "/"), "one\n");

    // stop + start, the socket unit staying loaded: the store survives the stop. (The 41
    // starts so far came within ~10 s: reset the start limit's count, 50 in 10 s.)
    let _ = c.systemctl(&["reset-failed", "graced.service"]);
    c.must(&["systemctl", "stop", "graced.service"]);
    let stopped = c.show("graced.service", &["ActiveState", "SubState", "NFileDescriptorStore"]);
    assert_eq!(stopped["SubState"], "dead-resources-pinned", "{stopped:?}");
    assert_eq!(stopped["NFileDescriptorStore"], "1", "{stopped:?}");
    c.must(&["systemctl", "start", "graced.service"]);
    assert_eq!(environ(&c, main_pid(&c), "LISTEN_FDNAMES").as_deref(), Some("http:http"));
    let (tally, times, total) = storm(&c, HTTP, "graced.service", false, 10, &|c: &Container, i| {
        let stop = c.systemctl(&["stop", "graced.service"]);
        assert!(stop.success(), "stop {i}: {stop}");
        assert_eq!(c.prop("graced.service", "NFileDescriptorStore"), "1", "stop {i} kept the store");
        // (the client's next connection may already have activated it again)
        let start = c.systemctl(&["start", "graced.service"]);
        assert!(start.success(), "start {i}: {start}");
    });
    report.push(describe("stop + start ×10, new connection per request", &tally, &times, total));
    assert_eq!(tally.failed(), 0, "stop + start: {:?}, e.g. {:?}", tally.failures, tally.examples);

    // What a stored copy does to the socket unit: its restart cannot bind the port the
    // store keeps open (nobody accepts there meanwhile) until the store is cleaned.
    let t = Instant::now();
    let socket_restart = c.systemctl(&["restart", "graced.socket"]);
    let socket_restart_time = t.elapsed();
    let socket = c.show("graced.socket", &["ActiveState", "Result"]);
    // (logged by systemd's socket helper, "(sd-listen)"; not always under -u graced.socket)
    let in_use = (0..20).any(|_| {
        let found = c.journal(&["-o", "cat", "-g", "graced.socket: .*Address already in use"]);
        found.contains("Address already in use") || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    let hung = c.in_netns(|| http::get(addr(HTTP), "/").err().map(|f| f.kind()));
    let hazard = format!(
        "`systemctl restart graced.socket` with the listener in the store: exit {} after {}, socket {}/{}, \
         EADDRINUSE in the journal: {in_use}, a request meanwhile: {}",
        socket_restart.status,
        ms(socket_restart_time),
        socket["ActiveState"],
        socket["Result"],
        hung.unwrap_or("served")
    );
    if !socket_restart.success() {
        finding(
            &c,
            "i",
            &format!("{hazard}; recovery: stop graced.service, `systemctl clean --what=fdstore`"),
        );
        c.must(&["systemctl", "stop", "graced.service"]);
        c.must(&["systemctl", "clean", "--what=fdstore", "graced.service"]);
        let _ = c.systemctl(&["reset-failed", "graced.socket"]);
        c.must(&["systemctl", "start", "graced.socket"]);
    }
    assert_eq!(body(&c, HTTP, "/"), "one\n", "serving again");
    report.push(hazard);

    // Without a socket unit (hand-written units; graced binds its own port): restarts with
    // and without the store, and stop + start with it.
    let solo = |port: u16, store: bool| {
        let name = if store { "graced-solo" } else { "graced-solo-nostore" };
        let config_path = format!("/etc/graced/{name}.toml");
        let text = config("/srv/www", "10s", &format!("127.0.0.1:{port}"))
            .replace(&format!("pid_file = \"{PID_FILE}\""), &format!("pid_file = \"/run/{name}/graced.pid\""))
            .replace("[server]\n", &format!("[server]\nfd_store = {store}\n"));
        c.write_file(&config_path, text.as_bytes(), 0o644);
        c.write_file(
            &format!("/etc/systemd/system/{name}.service"),
            solo_unit(name, &config_path, store).as_bytes(),
            0o644,
        );
        name
    };
    let (with, without) = (solo(8090, true), solo(8091, false));
    c.must(&["systemctl", "daemon-reload"]);
    c.must(&["systemctl", "start", with, without]);
    for (name, address) in [(with, "127.0.0.1:8090"), (without, "127.0.0.1:8091")] {
        assert_eq!(body(&c, address, "/"), "one\n", "{name}");
        let unit = format!("{name}.service");
        let (tally, times, total) = storm(&c, address, &unit, false, 20, &|c: &Container, i| {
            let out = c.systemctl(&["restart", &unit]);
            assert!(out.success(), "restart {i} of {unit}: {out}");
        });
        report.push(describe(
            &format!("no socket unit, {name}: restart ×20, new connection per request"),
            &tally,
            &times,
            total,
        ));
        if name == with {
            assert_eq!(
                tally.failed(),
                0,
                "{name}: the stored listener survives restarts: {:?}",
                tally.failures
            );
            assert_eq!(c.prop(&unit, "NFileDescriptorStore"), "1");
            assert_eq!(
                environ(&c, c.prop(&unit, "MainPID").parse().unwrap(), "LISTEN_FDNAMES").as_deref(),
                Some("http")
            );
        }
    }
    let unit = format!("{with}.service");
    let kept = std::sync::Mutex::new(Vec::new());
    let (tally, times, total) = storm(&c, "127.0.0.1:8090", &unit, false, 10, &|c: &Container, i| {
        c.must(&["systemctl", "stop", &unit]);
        // nothing pins a unit without a socket: stopped, it is unloaded and its store closed
        kept.lock().unwrap().push(c.prop(&unit, "NFileDescriptorStore"));
        let start = c.systemctl(&["start", &unit]);
        assert!(start.success(), "start {i}: {start}");
    });
    report.push(format!(
        "{}; NFileDescriptorStore after each stop: {:?}",
        describe(
            &format!("no socket unit, {with}: stop + start ×10, new connection per request"),
            &tally,
            &times,
            total
        ),
        kept.lock().unwrap()
    ));
    for line in report {
        figures(&c, "i", &line);
    }
}
