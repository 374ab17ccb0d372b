//! Scenario o: faults injected under a real systemd while clients run — SIGKILL during a reload and during a drain, a hung server (SIGSTOP) that the watchdog restarts, journald stopped and frozen.

use super::*;
use load::{LoadClient, Tally, during, storm_with};
use stop::start_slow_download;

/// How many clients run through every fault, each a new connection per request.
const CLIENTS: usize = 2;

/// `CLIENTS` clients, each requesting `/` on a new connection every 5 ms (bounded: 120 s),
/// timing every request.
fn clients() -> Vec<LoadClient> {
    (0..CLIENTS)
        .map(|_| -> LoadClient {
            Box::new(|stop: StopFlag| {
                let mut tally = Tally::default();
                let end = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    tally.connections += 1;
                    let t = Instant::now();
                    tally.record_timed(t, http::get(addr(HTTP), "/"));
                    std::thread::sleep(Duration::from_millis(5));
                }
                tally
            })
        })
        .collect()
}

/// The failures of `tallies` of the given kinds.
fn count(tallies: &[Tally], kinds: &[&str]) -> u64 {
    tallies.iter().flat_map(|t| kinds.iter().filter_map(|k| t.failures.get(*k))).sum()
}

/// Requests no process took: connect(2) refused or failed. Must be 0 — the listening
/// socket lives in systemd's socket unit, so new connections wait in its backlog.
fn refused(tallies: &[Tally]) -> u64 {
    count(tallies, &["refused", "connect"])
}

/// Requests a killed process had accepted: the connection broke before a complete response.
fn cut(tallies: &[Tally]) -> u64 {
    count(tallies, &["send", "no-response", "incomplete"])
}

/// The counts of `tallies` as one phrase; panics on a wrong response (neither refused nor cut).
fn outcome(tallies: &[Tally]) -> String {
    let ok: u64 = tallies.iter().map(|t| t.ok).sum();
    let failed: u64 = tallies.iter().map(Tally::failed).sum();
    let examples: Vec<&String> = tallies.iter().flat_map(|t| &t.examples).collect();
    assert_eq!(failed, refused(tallies) + cut(tallies), "a wrong response: {examples:?}");
    let slowest = tallies.iter().map(|t| t.slowest).max().unwrap_or_default();
    format!(
        "{ok} requests ok, {} refused, {} cut in flight (slowest {}){}",
        refused(tallies),
        cut(tallies),
        ms(slowest),
        if examples.is_empty() { String::new() } else { format!(", e.g. {examples:?}") }
    )
}

/// Waits (at most 20 s) until graced.service is active with a main process other than
/// `old` that answers `GET /`; returns how long that took.
fn wait_served_by_another(c: &Container, old: u32) -> Duration {
    let t = Instant::now();
    loop {
        let p = c.show("graced.service", &["MainPID", "ActiveState"]);
        let pid: u32 = p["MainPID"].parse().unwrap_or(0);
        if pid != 0 && pid != old && p["ActiveState"] == "active" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no new main process after pid {old}: {p:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(body(c, HTTP, "/"), "one\n");
    t.elapsed()
}

/// What the journal says about graced.service since `since` (from [`now`]), without the
/// access log.
fn systemd_says(c: &Container, since: &str) -> String {
    let lines = c.journal(&["-u", "graced.service", "-o", "cat", "--since", since]);
    lines.lines().filter(|l| !l.contains("\"GET ")).map(str::trim).collect::<Vec<_>>().join(" | ")
}

/// `journalctl --since` wants a wall-clock time: now, inside the container.
fn now(c: &Container) -> String {
    c.must(&["date", "+%Y-%m-%d %H:%M:%S.%N"]).trim().to_owned()
}

/// The pid file names the main process, and systemd counted `restarts` automatic restarts.
fn assert_recovered(c: &Container, restarts: u32, what: &str) {
    let pid = main_pid(c);
    assert_eq!(c.must(&["cat", PID_FILE]).trim(), pid.to_string(), "{what}: the pid file names the new main");
    let n: u32 = c.prop("graced.service", "NRestarts").parse().unwrap();
    assert_eq!(n, restarts, "{what}: NRestarts");
}

/// Sends SIGKILL to graced's main process while `systemctl reload` runs (as soon as the
/// unit is `reloading`), from a shell inside; returns whether the kill landed during the
/// reload ("during") or the reload had finished first ("after"), and the reload's exit.
fn kill_during_reload(c: &Container) -> String {
    let script = "pid=$(systemctl show -P MainPID graced.service)
        systemctl reload graced.service 2>/dev/null & r=$!
        when=after
        while kill -0 $r 2>/dev/null; do
            if [ \"$(systemctl show -P ActiveState graced.service)\" = reloading ]; then when=during; break; fi
        done
        kill -9 $pid
        wait $r
        echo \"$when reload-exit=$?\"";
    c.must_sh(script).trim().to_owned()
}

/// `kill -SIGNAL PID` inside, by the shell's builtin (the trixie tree has no kill(1)).
fn signal(c: &Container, signal: &str, pid: u32) {
    c.must_sh(&format!("kill -{signal} {pid}"));
}

/// Waits until `pid` is gone (zombies included: systemd reaps it).
fn wait_gone(c: &Container, pid: u32) {
    let t = Instant::now();
    while c.exec(&["test", "-e", &format!("/proc/{pid}")]).success() {
        assert!(t.elapsed() < Duration::from_secs(20), "pid {pid} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `journalctl -u graced.service -g PATTERN` (at most 15 s); returns how long it took.
fn wait_logged(c: &Container, pattern: &str) -> Duration {
    let t = Instant::now();
    loop {
        let found = c.journal(&["-u", "graced.service", "-o", "cat", "-g", pattern]);
        if found.contains(pattern) {
            return t.elapsed();
        }
        assert!(t.elapsed() < Duration::from_secs(15), "{pattern} never reached the journal");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// o. Faults under a real systemd, each while two clients open a new connection every 5 ms.
/// The listening socket lives in systemd's socket unit, so not one request may be refused;
/// requests the killed process had accepted may be cut, and are counted apart.
///
/// 1. SIGKILL during `systemctl reload` (×3) and during a graceful stop's drain (×2, a
///    slow download in flight): systemd restarts graced (`Restart=on-failure`, NRestarts
///    counts), a new main serves, the pid file names it.
/// 2. SIGSTOP of the main process with `watchdog = "2s"`: systemd's watchdog kills it
///    (Result=watchdog) and a new main serves; the clients wait, nothing is refused.
/// 3. journald stopped (`systemctl stop`) and frozen (SIGSTOP for 4 s) while graced logs
///    every request to the journal: graced serves on with 0 failed requests, keeps its
///    main process, and its lines reach the journal again afterwards.
pub(super) fn o_faults_under_systemd_refuse_no_connection(target: Target) {
    let Some(c) = boot(target, "o", Duration::from_secs(240)) else { return };
    let text = config("/srv/www", "30s", HTTP).replace("[server]\n", "[server]\nwatchdog = \"2s\"\n");
    install(&c, &text);
    let unit = c.must(&["cat", "/etc/systemd/system/graced.service"]);
    assert!(unit.contains("\nWatchdogSec=2s\n") && unit.contains("\nRestart=on-failure\n"), "{unit}");
    let big = pattern(16 << 20, 31);
    c.write_file("/srv/www/big.bin", &big, 0o644);
    c.must(&["systemctl", "start", "graced.socket"]);
    assert_eq!(body(&c, HTTP, "/"), "one\n");
    let mut restarts: u32 = c.prop("graced.service", "NRestarts").parse().unwrap();

    // 1a. SIGKILL during a reload.
    let since = now(&c);
    let hits = std::sync::Mutex::new(Vec::new());
    let (tallies, times, _) = storm_with(
        &c,
        "graced.service",
        3,
        &|c: &Container, _| {
            let old = main_pid(c);
            let when = kill_during_reload(c);
            let back = wait_served_by_another(c, old);
            hits.lock().unwrap().push(format!("{when}, serving again after {}", ms(back)));
        },
        clients(),
    );
    let hits = hits.into_inner().unwrap();
    let said = systemd_says(&c, &since);
    restarts += 3;
    assert_recovered(&c, restarts, "kill during a reload");
    assert_eq!(refused(&tallies), 0, "kill during a reload: {}", outcome(&tallies));
    assert!(
        cut(&tallies) <= 3 * CLIENTS as u64,
        "at most one request per client per kill: {}",
        outcome(&tallies)
    );
    assert!(said.contains("status=9/KILL") && said.contains("'signal'"), "{said}");
    assert!(hits.iter().any(|h| h.starts_with("during")), "no kill landed during a reload: {hits:?}");
    let max = times.iter().max().copied().unwrap_or_default();
    figures(
        &c,
        "o",
        &format!(
            "SIGKILL during `systemctl reload` ×3 ({}): {}; NRestarts +3, Result=signal, longest round {}",
            hits.join("; "),
            outcome(&tallies),
            ms(max)
        ),
    );

    // 1b. SIGKILL during a graceful stop's drain (a slow download in flight).
    let since = now(&c);
    let downloads = std::sync::Mutex::new(Vec::new());
    let (tallies, _, _) = storm_with(
        &c,
        "graced.service",
        2,
        &|c: &Container, _| {
            let old = main_pid(c);
            let (download, _) = start_slow_download(c, "/big.bin");
            c.must(&["/usr/sbin/graced", "-k", "graceful-stop", "-f", CONFIG]);
            let draining =
                wait_prop(c, "graced.service", "ActiveState", "deactivating", Duration::from_secs(10));
            signal(c, "9", old);
            let back = wait_served_by_another(c, old);
            let d = download.join().unwrap();
            downloads.lock().unwrap().push(format!(
                "draining seen after {}, serving again {} after the kill, the download in flight: {}",
                ms(draining),
                ms(back),
                match d.response {
                    Ok(r) if r.body == big => "complete".to_owned(),
                    Ok(r) => format!("{} bytes", r.body.len()),
                    Err(f) => format!("cut ({})", f.kind()),
                }
            ));
        },
        clients(),
    );
    let downloads = downloads.into_inner().unwrap();
    let said = systemd_says(&c, &since);
    restarts += 2;
    assert_recovered(&c, restarts, "kill during a drain");
    assert_eq!(refused(&tallies), 0, "kill during a drain: {}", outcome(&tallies));
    assert!(cut(&tallies) <= 2 * CLIENTS as u64, "{}", outcome(&tallies));
    assert!(said.contains("status=9/KILL"), "{said}");
    figures(
        &c,
        "o",
        &format!(
            "SIGKILL during a graceful stop's drain ×2 ({}): {}; NRestarts +2",
            downloads.join("; "),
            outcome(&tallies)
        ),
    );

    // 2. A hung server: SIGSTOP; the watchdog (WatchdogSec=2s) kills it, systemd restarts it.
    let since = now(&c);
    let back = std::sync::Mutex::new(Duration::ZERO);
    let (tallies, _, _) = storm_with(
        &c,
        "graced.service",
        1,
        &|c: &Container, _| {
            let old = main_pid(c);
            let t = Instant::now();
            signal(c, "STOP", old);
            wait_served_by_another(c, old);
            *back.lock().unwrap() = t.elapsed();
            wait_gone(c, old);
        },
        clients(),
    );
    let back = back.into_inner().unwrap();
    let said = systemd_says(&c, &since);
    restarts += 1;
    assert_recovered(&c, restarts, "SIGSTOP");
    assert!(said.contains("Watchdog timeout") && said.contains("'watchdog'"), "{said}");
    assert_eq!(refused(&tallies), 0, "SIGSTOP: {}", outcome(&tallies));
    assert!(cut(&tallies) <= CLIENTS as u64, "{}", outcome(&tallies));
    assert!(back > Duration::from_secs(2), "the watchdog waits its 2 s ({back:?})");
    assert!(back < Duration::from_secs(10), "serving again within the watchdog + RestartSec=1s ({back:?})");
    figures(
        &c,
        "o",
        &format!(
            "SIGSTOP of the main process (WatchdogSec=2s): serving again after {} (Result=watchdog); {}",
            ms(back),
            outcome(&tallies)
        ),
    );

    // 3a. journald stopped: `systemctl stop systemd-journald.service` (its sockets stay).
    let pid = main_pid(&c);
    let journald_before = c.prop("systemd-journald.service", "MainPID");
    let tallies = during(&c, clients(), || {
        c.must(&["systemctl", "stop", "systemd-journald.service"]);
        std::thread::sleep(Duration::from_secs(1));
    });
    let journald = c.show("systemd-journald.service", &["ActiveState", "MainPID"]);
    let _ = get(&c, HTTP, "/?o-after-journald-stop");
    let logged = wait_logged(&c, "o-after-journald-stop");
    assert_eq!(main_pid(&c), pid, "graced kept its main process");
    assert_eq!(tallies.iter().map(Tally::failed).sum::<u64>(), 0, "journald stopped: {}", outcome(&tallies));
    figures(
        &c,
        "o",
        &format!(
            "journald stopped (`systemctl stop systemd-journald`, 1 s of load): {}; journald afterwards {} (pid {} → {}), \
             a request's line in the journal {} after it",
            outcome(&tallies),
            journald["ActiveState"],
            journald_before,
            journald["MainPID"],
            ms(logged)
        ),
    );

    // 3b. journald frozen: SIGSTOP for 4 s. Its socket's queue fills; a writer that blocks
    // on it would stop serving.
    let journald: u32 = c.prop("systemd-journald.service", "MainPID").parse().unwrap();
    let since = now(&c);
    let frozen = Duration::from_secs(4);
    let mut probe = Tally::default();
    let tallies = during(&c, clients(), || {
        signal(&c, "STOP", journald);
        let t = Instant::now();
        let prober = c.spawn_in_netns(move || {
            let mut probe = Tally::default();
            while t.elapsed() < frozen {
                let started = Instant::now();
                probe.record_timed(started, http::get(addr(HTTP), "/"));
                std::thread::sleep(Duration::from_millis(20));
            }
            probe
        });
        std::thread::sleep(frozen.saturating_sub(t.elapsed()));
        signal(&c, "CONT", journald);
        probe = prober.join().unwrap();
    });
    let _ = get(&c, HTTP, "/?o-after-journald-freeze");
    let logged = wait_logged(&c, "o-after-journald-freeze");
    let served = probe.ok + tallies.iter().map(|t| t.ok).sum::<u64>();
    let lines =
        c.journal(&["-u", "graced.service", "-o", "cat", "--since", &since, "-g", "\"GET / HTTP/1.1\" 200"]);
    let line = format!(
        "journald frozen (SIGSTOP 4 s): a probe every 20 ms meanwhile: {}; the clients: {}; {} of the {served} \
         access-log lines reached the journal (the rest dropped while its queue was full); a request's line in the \
         journal {} after SIGCONT",
        outcome(std::slice::from_ref(&probe)),
        outcome(&tallies),
        lines.lines().count(),
        ms(logged)
    );
    figures(&c, "o", &line);
    assert_eq!(main_pid(&c), pid, "graced kept its main process: {line}");
    assert_eq!(probe.failed() + tallies.iter().map(Tally::failed).sum::<u64>(), 0, "{line}");
    assert!(probe.ok >= 50, "graced served on while journald was frozen: {line}");
    assert!(probe.slowest < Duration::from_millis(500), "no request waited for journald: {line}");
    assert_generated_unit_unchanged(&c);
}
