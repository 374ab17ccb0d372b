//! Exact sd_notify datagrams: start, reload, failed reload, recovery, restart, stop, watchdog, periodic STATUS=, worker threads.

use std::time::{Duration, Instant};

use graced_testsupport::notify::{Notes, assert_datagram, is_background};
use graced_testsupport::process::{code, kill};
use graced_testsupport::site::Site;

use super::{T, config_name, hello, signal_reload, start_notified};
use crate::GRACED;

#[test]
fn notify_datagrams_for_start_reload_failed_reload_recovery_restart_stop_and_watchdog() {
    let site = Site::new(GRACED);
    let config = config_name(&site);
    let (notes, mut server, stderr) = start_notified(&site, &[("WATCHDOG_USEC", "200000")]);

    // WATCHDOG=1 every WATCHDOG_USEC/2: at least 3 within a second.
    let window = Instant::now() + Duration::from_secs(1);
    let mut pings = 0;
    while let Some((_, lines)) = notes.next_any(window.saturating_duration_since(Instant::now())) {
        if lines == ["WATCHDOG=1"] {
            pings += 1;
        } else {
            assert!(is_background(&lines), "unexpected datagram while idle: {lines:?}");
        }
    }
    assert!(pings >= 3, "only {pings} WATCHDOG=1 pings in 1 s with WATCHDOG_USEC=200000");
    assert!(pings <= 15, "{pings} WATCHDOG=1 pings in 1 s with WATCHDOG_USEC=200000 (expected ~10)");

    hello(&server.get("/"));

    // USR1: RELOADING=1 + MONOTONIC_USEC in one datagram, then READY=1.
    signal_reload(&server, &notes, libc::SIGUSR1, &format!("STATUS=reload: rereading {config}"));
    let caps = assert_datagram(
        &notes.next_event(T),
        &["READY=1", "STATUS=generation 2; {n} connections; {n} requests served; reloaded"],
    );
    assert!(caps[0].parse::<u32>().unwrap() <= 1, "connections: {caps:?}");
    assert_eq!(caps[1], "1", "requests served survive a graceful reload");

    // A broken config (a type error): READY=1 with the error's FILE:LINE:COL and ERRNO=22.
    site.write_config_with_server("access_log = \"off\"\ngraceful_shutdown_timeout = 5", "");
    signal_reload(&server, &notes, libc::SIGUSR1, &format!("STATUS=reload: rereading {config}"));
    let failed = notes.next_event(T);
    let caps = assert_datagram(
        &failed,
        &[
            "READY=1",
            &format!("STATUS=reload failed, still serving generation 2: {config}:4:29: {{*}}"),
            "ERRNO=22",
        ],
    );
    assert!(caps[0].contains("invalid type"), "the message names the type error: {failed:?}");
    assert!(
        stderr.wait_for(&format!("{config}:4:29: "), T),
        "stderr lacks {config}:4:29:\n{}",
        stderr.text()
    );
    hello(&server.get("/"));

    // The next successful reload says ERRNO=0.
    site.write_config("");
    signal_reload(&server, &notes, libc::SIGUSR1, &format!("STATUS=reload: rereading {config}"));
    assert_datagram(
        &notes.next_event(T),
        &["READY=1", "STATUS=generation 3; {n} connections; {n} requests served; reloaded", "ERRNO=0"],
    );

    // HUP: a hard restart (counters reset, as in Apache).
    signal_reload(&server, &notes, libc::SIGHUP, &format!("STATUS=restart: rereading {config}"));
    let caps = assert_datagram(
        &notes.next_event(T),
        &["READY=1", "STATUS=generation 4; {n} connections; {n} requests served; restarted"],
    );
    assert_eq!(caps[1], "0", "a hard restart resets the request counter");
    hello(&server.get("/"));

    // TERM: STOPPING=1, exit 0.
    server.signal(libc::SIGTERM);
    assert_datagram(&notes.next_event(T), &["STOPPING=1", "STATUS=stopping"]);
    let status = server.wait_exit(T);
    assert_eq!(code(status), 0, "stderr:\n{}", stderr.complete());
}

#[test]
fn periodic_status_is_sent_about_every_5_s_only_when_it_changed() {
    let site = Site::new(GRACED);
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let quiet = notes.collect_for(Duration::from_millis(1000));
    hello(&server.get("/"));
    let asked = Instant::now();
    let later = notes.collect_for(Duration::from_millis(6500));
    let changed: Vec<_> = later.iter().filter(|(_, d)| is_background(d)).collect();
    assert!(
        changed
            .iter()
            .any(|(at, d)| d[0].contains("; 1 requests served") && at.duration_since(asked).as_secs() <= 6),
        "no periodic STATUS= reporting the request within ~5 s: {later:?}"
    );
    assert!(changed.len() <= 2, "STATUS= sent more often than every 5 s: {changed:?}");
    // Nothing changed between READY=1 and the request: no STATUS= is due.
    assert!(quiet.is_empty(), "STATUS= repeated although nothing changed since READY=1: {quiet:?}");
    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn watchdog_pings_only_for_the_pid_named_by_watchdog_pid() {
    // WATCHDOG_PID names another process: no pings.
    let site = Site::new(GRACED);
    let (notes, mut server, _stderr) =
        start_notified(&site, &[("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")]);
    let quiet = notes.collect_for(Duration::from_millis(700));
    assert!(
        !quiet.iter().any(|(_, l)| l == &["WATCHDOG=1"]),
        "WATCHDOG=1 sent although WATCHDOG_PID=1 is not graced: {quiet:?}"
    );
    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);

    // WATCHDOG_PID equal to graced's own pid (set by the shell that execs it): pings.
    let notes = Notes::new();
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(GRACED)
        .arg("-f")
        .arg(site.config_path())
        .env("NOTIFY_SOCKET", notes.env_value())
        .env("WATCHDOG_USEC", "100000")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let all = notes.collect_for(Duration::from_millis(700));
    let pings = all.iter().filter(|(_, l)| l == &["WATCHDOG=1"]).count();
    kill(child.id() as i32, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert!(all.iter().any(|(_, l)| l.first().is_some_and(|f| f == "READY=1")), "no READY=1: {all:?}");
    assert!(pings >= 3, "only {pings} pings with WATCHDOG_PID = graced's pid: {all:?}");
    assert_eq!(code(status), 0);
}

/// The threads of `pid` named `graced-worker` (the runtime's workers; its blocking pool
/// shares the name but starts no thread unless a large file is streamed).
fn worker_threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|t| {
            let comm = std::fs::read_to_string(t.as_ref().unwrap().path().join("comm")).unwrap_or_default();
            comm.trim() == "graced-worker"
        })
        .count()
}

#[test]
fn workers_sets_the_worker_threads_and_a_reload_that_changes_it_says_it_needs_a_start() {
    let site = Site::new(GRACED);
    site.write_config_with_server("access_log = \"off\"\nworkers = 3", "");
    let (notes, mut server, stderr) = start_notified(&site, &[]);
    assert!(stderr.wait_for("workers=3", T), "the start message names the workers: {}", stderr.text());
    for _ in 0..20 {
        hello(&server.get("/"));
    }
    assert_eq!(worker_threads(server.pid()), 3);

    site.write_config_with_server("access_log = \"off\"\nworkers = 1", "");
    signal_reload(
        &server,
        &notes,
        libc::SIGUSR1,
        &format!("STATUS=reload: rereading {}", config_name(&site)),
    );
    notes.wait_for("READY=1", T);
    assert!(
        stderr.wait_for(
            "[server] workers changed: 3 worker threads keep serving until graced is started again",
            T
        ),
        "{}",
        stderr.text()
    );
    hello(&server.get("/"));
    assert_eq!(worker_threads(server.pid()), 3);
    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);

    let (_notes, mut server, _stderr) = start_notified(&site, &[]);
    hello(&server.get("/"));
    assert_eq!(worker_threads(server.pid()), 1, "applied at the next start");
    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}
