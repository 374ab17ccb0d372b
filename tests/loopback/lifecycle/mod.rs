//! Lifecycle tests against the real binary: exact sd_notify datagrams and HTTP behaviour across USR1, HUP, WINCH, TERM and `-k`.
mod common;
mod lifecycle_support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, Response, Server, Site, fd_count, rss_kib};
use lifecycle_support::*;

const T: Duration = Duration::from_secs(5);
const BIG: usize = 16 * 1024 * 1024;

/// Starts graced with a fake NOTIFY_SOCKET (plus `env`) and asserts the start datagram.
fn start_notified(site: &Site, env: &[(&str, &str)]) -> (Notes, Server, StderrLog) {
    let notes = Notes::new();
    let socket = notes.env_value();
    let mut all = vec![("NOTIFY_SOCKET", socket.as_str())];
    all.extend_from_slice(env);
    let mut server = spawn(site, &all);
    let stderr = StderrLog::capture(&mut server);
    let ready = notes.next_event(Duration::from_secs(10));
    assert_datagram(&ready, &["READY=1", "STATUS=generation 1; 0 connections; 0 requests served"]);
    (notes, server, stderr)
}

/// Sends `signal` and asserts the RELOADING=1 datagram, with MONOTONIC_USEC inside the
/// window [just before the signal, just after the datagram arrived].
fn signal_reload(server: &Server, notes: &Notes, signal: i32, status: &str) {
    let before = monotonic_usec();
    server.signal(signal);
    let lines = notes.next_event(T);
    let after = monotonic_usec();
    let caps = assert_datagram(&lines, &["RELOADING=1", "MONOTONIC_USEC={n}", status]);
    let stamp: u64 = caps[0].parse().unwrap();
    assert!(
        (before..=after).contains(&stamp),
        "MONOTONIC_USEC={stamp} is outside the test's window [{before}, {after}]"
    );
}

fn config_name(site: &Site) -> String {
    site.config_path().display().to_string()
}

fn hello(response: &Response) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "hello\n");
}

#[test]
fn notify_datagrams_for_start_reload_failed_reload_recovery_restart_stop_and_watchdog() {
    let site = Site::new();
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
    let site = Site::new();
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
    let site = Site::new();
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
        .arg(common::BIN)
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
    let site = Site::new();
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

#[test]
fn winch_drains_an_in_flight_response_byte_for_byte_after_removing_the_pid_file() {
    let site = Site::new();
    site.write_config_with_server("access_log = \"off\"\ngraceful_shutdown_timeout = \"10s\"", "");
    let big = write_big_file(&site, "www/big.bin", BIG, 7);
    let (notes, mut server, stderr) = start_notified(&site, &[]);
    let slow = SlowGet::start(site.port, "/big.bin");
    slow.wait_received(64 * 1024, T);
    assert!(site.pid_path().exists());

    server.signal(libc::SIGWINCH);
    let stopping = notes.next_event(T);
    assert_datagram(&stopping, &["STOPPING=1", "STATUS=graceful stop: draining 1 connections"]);
    assert!(wait_refused(site.port, Duration::from_secs(1)), "new connections are not refused after WINCH");

    // Drain progress with EXTEND_TIMEOUT_USEC, about every second.
    let first = notes.next_event(T);
    let first_at = Instant::now();
    let caps = assert_datagram(
        &first,
        &["EXTEND_TIMEOUT_USEC={n}", "STATUS=draining: {n} connections left, {n}s to forced close"],
    );
    let usec: u64 = caps[0].parse().unwrap();
    assert!(
        (5_000_000..=15_000_000).contains(&usec),
        "EXTEND_TIMEOUT_USEC={usec}: want remaining (≤10 s) + 5 s"
    );
    assert_eq!(caps[1], "1");
    assert!(caps[2].parse::<u64>().unwrap() <= 10);
    assert!(caps[2].parse::<u64>().unwrap() + 6 >= usec / 1_000_000, "STATUS seconds {caps:?} vs {usec} µs");
    let second = notes.next_event(T);
    let gap = first_at.elapsed();
    let caps2 = assert_datagram(
        &second,
        &["EXTEND_TIMEOUT_USEC={n}", "STATUS=draining: {n} connections left, {n}s to forced close"],
    );
    assert!(caps2[0].parse::<u64>().unwrap() < usec, "the extension shrinks as the deadline nears");
    assert!(gap >= Duration::from_millis(500) && gap <= Duration::from_millis(2000), "gap {gap:?}");
    assert!(slow.received() < BIG, "the response finished too early for the test to mean anything");
    assert!(!site.pid_path().exists(), "the pid file is not removed during the graceful stop");

    let finishing = Instant::now();
    let outcome = slow.finish();
    let read_in = finishing.elapsed();
    assert_eq!(outcome.status, 200);
    assert_eq!(outcome.cut, None, "the drained response was cut ({read_in:?} into the fast read)");
    assert_same_bytes(&outcome.body, &big, "the drained response");
    // The connection, now idle, is closed by the server (the drain's idle grace), and
    // with it gone the process exits.
    let mut idle = Client { reader: std::io::BufReader::new(outcome.stream.unwrap()) };
    assert!(
        idle.closed_within(Duration::from_secs(2)),
        "the idle connection was not closed during the drain"
    );
    let closed_after = outcome.finished_at.elapsed();

    let status = server.wait_exit(T);
    assert_eq!(code(status), 0, "stderr:\n{}", stderr.complete());
    eprintln!(
        "drain: fast read of the rest took {read_in:?}; idle connection closed {closed_after:?} after it"
    );
    let rest = notes.wait_for_all("STATUS=graceful stop complete", T);
    assert_eq!(rest.last().unwrap(), &["STATUS=graceful stop complete; 0 connections aborted"]);
    assert!(!site.pid_path().exists());
}

#[test]
fn winch_has_removed_the_pid_file_when_stopping_1_arrives() {
    // Ten graceful stops of an idle server; the file must be gone by the time STOPPING=1 is read.
    let mut present = 0;
    for _ in 0..10 {
        let site = Site::new();
        let (notes, mut server, _stderr) = start_notified(&site, &[]);
        assert!(site.pid_path().exists());
        server.signal(libc::SIGWINCH);
        let stopping = notes.next_event(T);
        if site.pid_path().exists() {
            present += 1;
        }
        assert_datagram(&stopping, &["STOPPING=1", "STATUS=graceful stop: draining 0 connections"]);
        assert_eq!(code(server.wait_exit(T)), 0);
        assert!(!site.pid_path().exists());
    }
    assert_eq!(
        present, 0,
        "in {present} of 10 graceful stops the pid file still existed when STOPPING=1 arrived"
    );
}

#[test]
fn winch_aborts_a_response_still_running_at_graceful_shutdown_timeout_and_exits_0() {
    let site = Site::new();
    site.write_config_with_server("access_log = \"off\"\ngraceful_shutdown_timeout = \"1s\"", "");
    write_big_file(&site, "www/big.bin", BIG, 8);
    let (notes, mut server, stderr) = start_notified(&site, &[]);
    let slow = SlowGet::start(site.port, "/big.bin");
    slow.wait_received(64 * 1024, T);
    slow.set_pace(STALL);

    let sent = Instant::now();
    server.signal(libc::SIGWINCH);
    assert_datagram(&notes.next_event(T), &["STOPPING=1", "STATUS=graceful stop: draining 1 connections"]);
    let status = server.wait_exit(T);
    let took = sent.elapsed();
    assert_eq!(code(status), 0, "stderr:\n{}", stderr.complete());
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "exited after {took:?}");

    let all = notes.wait_for_all("STATUS=graceful stop complete", T);
    for d in &all[..all.len() - 1] {
        if d[0].starts_with("EXTEND_TIMEOUT_USEC=") {
            let usec: u64 = d[0]["EXTEND_TIMEOUT_USEC=".len()..].parse().unwrap();
            assert!((5_000_000..=6_000_000).contains(&usec), "{d:?}: want remaining (≤1 s) + 5 s");
        }
    }
    assert!(all.iter().any(|d| d[0].starts_with("EXTEND_TIMEOUT_USEC=")), "no EXTEND_TIMEOUT_USEC: {all:?}");
    assert_eq!(all.last().unwrap(), &["STATUS=graceful stop complete; 1 connections aborted"]);

    let outcome = slow.finish();
    assert!(outcome.cut.is_some(), "the stalled response was not aborted");
    assert!(outcome.body.len() < BIG);
}

#[test]
fn a_slow_response_survives_usr1_byte_for_byte_on_a_connection_that_stays_open() {
    let site = Site::new();
    let big = write_big_file(&site, "www/big.bin", BIG, 9);
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let slow = SlowGet::start(site.port, "/big.bin");
    slow.wait_received(64 * 1024, T);

    server.signal(libc::SIGUSR1);
    assert_eq!(notes.next_event(T)[0], "RELOADING=1");
    let ready = notes.next_event(T);
    assert_eq!(ready[0], "READY=1");
    eprintln!("READY=1 after USR1 with a response in flight: {ready:?}");
    assert!(ready[1].starts_with("STATUS=generation 2;"), "{ready:?}");
    hello(&server.get("/"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(slow.received() < BIG, "the response finished before the reload");

    let outcome = slow.finish();
    assert_eq!(outcome.status, 200);
    assert_eq!(outcome.cut, None);
    assert_same_bytes(&outcome.body, &big, "the response in flight across USR1");
    let mut same = Client { reader: std::io::BufReader::new(outcome.stream.unwrap()) };
    hello(&same.get("/"));

    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn term_aborts_an_in_flight_response() {
    let site = Site::new();
    write_big_file(&site, "www/big.bin", BIG, 10);
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let slow = SlowGet::start(site.port, "/big.bin");
    slow.wait_received(64 * 1024, T);

    server.signal(libc::SIGTERM);
    assert_datagram(&notes.next_event(T), &["STOPPING=1", "STATUS=stopping"]);
    let outcome = slow.finish();
    assert!(outcome.cut.is_some(), "TERM did not abort the response");
    assert!(outcome.body.len() < BIG, "{:?}", outcome.cut);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn hup_aborts_an_in_flight_response_and_then_serves_new_connections() {
    let site = Site::new();
    write_big_file(&site, "www/big.bin", BIG, 11);
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let slow = SlowGet::start(site.port, "/big.bin");
    slow.wait_received(64 * 1024, T);

    server.signal(libc::SIGHUP);
    assert_eq!(notes.next_event(T)[0], "RELOADING=1");
    let ready = notes.next_event(T);
    assert_eq!(ready[0], "READY=1");
    assert!(ready[1].starts_with("STATUS=generation 2;") && ready[1].ends_with("; restarted"), "{ready:?}");
    let outcome = slow.finish();
    assert!(outcome.cut.is_some(), "HUP did not abort the response");
    assert!(outcome.body.len() < BIG);
    hello(&server.get("/"));
    let mut keep = server.connect();
    hello(&keep.get("/"));
    hello(&keep.get("/"));

    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn after_usr1_the_next_request_on_the_same_connection_gets_the_new_root_while_one_in_flight_finishes_old() {
    let site = Site::new();
    std::fs::create_dir(site.path("www2")).unwrap();
    std::fs::write(site.path("www2/index.html"), "hello from www2\n").unwrap();
    let old_big = write_big_file(&site, "www/big.bin", BIG, 12);
    write_big_file(&site, "www2/big.bin", BIG, 13);
    let (notes, mut server, _stderr) = start_notified(&site, &[]);

    let mut c = server.connect();
    let local = c.stream().local_addr().unwrap();
    hello(&c.get("/"));
    let slow = SlowGet::start(site.port, "/big.bin");
    slow.wait_received(64 * 1024, T);

    edit_config(&site, "root = \"www\"", "root = \"www2\"");
    server.signal(libc::SIGUSR1);
    notes.wait_for("RELOADING=1", T);
    let ready = notes.next_event(T);
    assert_eq!(ready[0], "READY=1");
    assert!(ready[1].starts_with("STATUS=generation 2;"), "{ready:?}");

    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from www2\n", "the next request on the kept connection takes generation 2");
    assert_eq!(c.stream().local_addr().unwrap(), local);
    assert!(slow.received() < BIG, "the old response finished before the reload");
    let outcome = slow.finish();
    assert_eq!(outcome.cut, None);
    assert_same_bytes(&outcome.body, &old_big, "the in-flight response keeps generation 1's root");
    let r = c.get("/");
    assert_eq!(r.text(), "hello from www2\n");

    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

/// One request on `client` without panicking: the response or why there was none.
fn try_get(client: &mut Client, raw: &str) -> Result<Response, String> {
    client.stream().write_all(raw.as_bytes()).map_err(|e| format!("write: {e}"))?;
    client.try_read_response(false).map_err(|e| format!("read: {e}"))
}

const KEEP_ALIVE_GET: &str = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[test]
fn graceful_stop_closes_idle_keep_alive_connections_after_the_grace_without_losing_a_request() {
    let site = Site::new();
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let mut asks = server.connect();
    let mut silent = server.connect();
    hello(&asks.get("/"));
    hello(&silent.get("/"));
    // Both idle longer than the drain grace before the stop begins.
    std::thread::sleep(Duration::from_millis(600));

    let sent = Instant::now();
    server.signal(libc::SIGWINCH);
    assert_eq!(notes.next_event(T)[0], "STOPPING=1");
    std::thread::sleep(Duration::from_millis(100).saturating_sub(sent.elapsed()));
    // A request 100 ms into the stop, within the grace: answered in full, then closed.
    let answer = try_get(&mut asks, KEEP_ALIVE_GET);
    let answer =
        answer.unwrap_or_else(|e| panic!("a request 100 ms after WINCH on an idle connection was lost: {e}"));
    hello(&answer);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(asks.closed_within(T), "the connection stays open after Connection: close");

    // The one that sends nothing is closed after the grace, not before.
    assert!(silent.closed_within(T), "the idle connection was not closed");
    let closed_after = sent.elapsed();
    assert!(
        closed_after >= Duration::from_millis(200),
        "closed {closed_after:?} after WINCH, before the grace"
    );
    assert!(closed_after < Duration::from_secs(2), "closed {closed_after:?} after WINCH");

    assert_eq!(code(server.wait_exit(T)), 0);
    let all = notes.wait_for_all("STATUS=graceful stop complete", T);
    assert_eq!(all.last().unwrap(), &["STATUS=graceful stop complete; 0 connections aborted"]);
}

#[test]
fn graceful_stop_answers_busy_keep_alive_clients_in_full_with_connection_close() {
    let site = Site::new();
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let port = site.port;

    // A client in a tight request loop on one connection, until the server says close.
    let looping = std::thread::spawn(move || {
        let mut c = Client::connect(port);
        let mut ok = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && ok < 200_000 {
            let r = try_get(&mut c, KEEP_ALIVE_GET).map_err(|e| format!("request {ok} failed: {e}"))?;
            if r.status != 200 || r.text() != "hello\n" {
                return Err(format!("bad response {r:?}"));
            }
            ok += 1;
            if r.header("connection") == Some("close") {
                return if c.closed_within(T) { Ok(ok) } else { Err("open after Connection: close".into()) };
            }
        }
        Err(format!("no Connection: close after {ok} requests"))
    });
    let mut c = server.connect();
    hello(&c.get("/"));
    std::thread::sleep(Duration::from_millis(100));
    hello(&c.get("/"));

    server.signal(libc::SIGWINCH);
    assert_eq!(notes.next_event(T)[0], "STOPPING=1");
    // The request right after the stop began: a full response that says close.
    let r = try_get(&mut c, KEEP_ALIVE_GET).unwrap_or_else(|e| panic!("request right after WINCH lost: {e}"));
    hello(&r);
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "a request sent after STOPPING=1 arrived was answered as if no stop had begun"
    );
    assert!(c.closed_within(T));

    let looped = looping.join().unwrap();
    let n = looped.unwrap_or_else(|e| panic!("busy keep-alive client: {e}"));
    assert!(n > 1);
    assert_eq!(code(server.wait_exit(T)), 0);
}

/// `-k COMMAND` with a broken config (a type error on line 4, column 29): without --wait
/// the client refuses it (78) and sends nothing; with --wait it exits non-zero — 78 when
/// the client validates first, 1 when the server judged it (then the server must have
/// said RELOADING=1, then READY=1 with ERRNO=22) — printing FILE:LINE:COL either way.
/// The old config keeps serving (`body`).
fn broken_reload_is_refused(site: &Site, notes: &Notes, server: &Server, command: &str, body: &str) {
    let config = config_name(site);
    let (code_, out) = run(site, &["-k", command]);
    assert_eq!(code_, 78, "-k {command} with a broken config: {out}");
    assert!(out.contains(&format!("{config}:4:29: ")), "no FILE:LINE:COL in {out:?}");
    let after = notes.drain(Duration::from_millis(300));
    assert!(!after.iter().any(|(_, d)| d[0] == "RELOADING=1"), "-k {command} signalled anyway: {after:?}");

    let (code_, out) = run(site, &["-k", command, "--wait"]);
    eprintln!("-k {command} --wait with a broken config: exit {code_}: {out}");
    assert!(code_ == 78 || code_ == 1, "-k {command} --wait with a broken config: exit {code_}: {out}");
    assert!(out.contains(&format!("{config}:4:29: ")), "no FILE:LINE:COL in {out:?}");
    let after = notes.drain(Duration::from_millis(300));
    let failed: Vec<_> = after.iter().filter(|(_, d)| d.last().is_some_and(|l| l == "ERRNO=22")).collect();
    if code_ == 1 {
        assert!(after.iter().any(|(_, d)| d[0] == "RELOADING=1"), "exit 1 but no RELOADING=1: {after:?}");
        assert_eq!(failed.len(), 1, "exit 1 but no READY=1 … ERRNO=22: {after:?}");
        assert!(failed[0].1[1].contains(&format!("{config}:4:29: ")), "{failed:?}");
    } else {
        assert!(!after.iter().any(|(_, d)| d[0] == "RELOADING=1"), "exit 78 but signalled: {after:?}");
    }
    assert_eq!(server.get("/").text(), body, "the old config keeps serving");
}

#[test]
fn k_graceful_wait_returns_after_the_new_config_serves_and_fails_without_harm_on_a_broken_one() {
    let site = Site::new();
    std::fs::create_dir(site.path("www2")).unwrap();
    std::fs::write(site.path("www2/index.html"), "hello from www2\n").unwrap();
    let (notes, mut server, _stderr) = start_notified(&site, &[]);

    edit_config(&site, "root = \"www\"", "root = \"www2\"");
    let (code_, out) = run(&site, &["-k", "graceful", "--wait"]);
    let r = server.get("/");
    assert_eq!(code_, 0, "{out}");
    assert_eq!(r.text(), "hello from www2\n", "-k graceful --wait returned before the new config served");
    assert!(out.contains("generation 2"), "{out}");
    notes.wait_for("READY=1", T);

    // Broken config: refused by the client with FILE:LINE:COL, the server is not even asked.
    let good = read(&site.config_path());
    edit_config(&site, "graceful_shutdown_timeout = \"5s\"", "graceful_shutdown_timeout = 5");
    broken_reload_is_refused(&site, &notes, &server, "graceful", "hello from www2\n");

    // A config the client accepts but the server cannot apply (a port in use): exit 1.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    std::fs::write(
        site.config_path(),
        format!("{good}\n[[listen]]\nname = \"extra\"\naddress = \"127.0.0.1:{held_port}\"\n"),
    )
    .unwrap();
    let (code_, out) = run(&site, &["-k", "graceful", "--wait"]);
    assert_eq!(code_, 1, "{out}");
    assert!(out.contains("extra"), "the error names the listener: {out}");
    let datagrams = notes.wait_for_all("ERRNO=22", T);
    assert!(datagrams.iter().any(|d| d[0] == "RELOADING=1"), "{datagrams:?}");
    assert_eq!(server.get("/").text(), "hello from www2\n", "the old config keeps serving");

    std::fs::write(site.config_path(), &good).unwrap();
    let (code_, out) = run(&site, &["-k", "graceful", "--wait"]);
    assert_eq!(code_, 0, "{out}");
    let ok = notes.wait_for("READY=1", T);
    assert_eq!(ok.last().unwrap(), "ERRNO=0", "{ok:?}");
    drop(held);

    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn k_restart_wait_returns_after_the_new_config_serves_and_refuses_a_broken_one() {
    let site = Site::new();
    std::fs::create_dir(site.path("www2")).unwrap();
    std::fs::write(site.path("www2/index.html"), "hello from www2\n").unwrap();
    let (notes, mut server, _stderr) = start_notified(&site, &[]);

    edit_config(&site, "root = \"www\"", "root = \"www2\"");
    let (code_, out) = run(&site, &["-k", "restart", "--wait"]);
    let r = server.get("/");
    assert_eq!(code_, 0, "{out}");
    assert_eq!(r.text(), "hello from www2\n", "-k restart --wait returned before the new config served");
    let ready = notes.wait_for("READY=1", T);
    assert!(ready[1].ends_with("; restarted"), "{ready:?}");

    edit_config(&site, "graceful_shutdown_timeout = \"5s\"", "graceful_shutdown_timeout = 5");
    broken_reload_is_refused(&site, &notes, &server, "restart", "hello from www2\n");

    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn k_graceful_without_wait_returns_0_after_signalling() {
    let site = Site::new();
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let (code_, out) = run(&site, &["-k", "graceful"]);
    assert_eq!(code_, 0, "{out}");
    assert!(out.contains(&format!("SIGUSR1 to pid {}", server.pid())), "{out}");
    assert_eq!(notes.next_event(T)[0], "RELOADING=1");
    assert!(notes.next_event(T)[1].starts_with("STATUS=generation 2;"));
    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn k_stop_wait_and_k_graceful_stop_wait_return_after_the_process_exited() {
    for command in ["stop", "graceful-stop"] {
        let site = Site::new();
        let (notes, mut server, _stderr) = start_notified(&site, &[]);
        let (code_, out) = run(&site, &["-k", command, "--wait"]);
        let exited = server.child.try_wait().unwrap();
        assert_eq!(code_, 0, "-k {command} --wait: {out}");
        let status =
            exited.unwrap_or_else(|| panic!("-k {command} --wait returned while graced still ran: {out}"));
        assert_eq!(code(status), 0);
        assert_eq!(notes.next_event(T)[0], "STOPPING=1");
        assert!(!site.pid_path().exists());
        let (code_, out) = run(&site, &["-k", command]);
        assert_eq!(code_, 3, "-k {command} with nothing running: {out}");
    }
}

#[test]
fn a_storm_of_1000_usr1_fails_no_request_and_leaks_no_fd_or_memory() {
    let site = Site::new();
    let (notes, mut server, stderr) = start_notified(&site, &[]);
    let pid = server.pid();
    let port = site.port;
    for _ in 0..50 {
        hello(&server.get("/"));
    }
    let mut warm = server.connect();
    for _ in 0..50 {
        hello(&warm.get("/"));
    }
    drop(warm);
    std::thread::sleep(Duration::from_millis(300));
    let (fds_before, rss_before) = (fd_count(pid), rss_kib(pid));

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let mut threads = Vec::new();
    for keep_alive in [true, false] {
        let (stop, failures, count) = (stop.clone(), failures.clone(), counts[keep_alive as usize].clone());
        threads.push(std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut kept: Option<Client> = None;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let result = if keep_alive {
                    let c = match kept.as_mut() {
                        Some(c) => c,
                        None => kept.insert(Client::connect(port)),
                    };
                    try_get(c, KEEP_ALIVE_GET)
                } else {
                    match TcpStream::connect(("127.0.0.1", port)) {
                        Ok(s) => {
                            s.set_read_timeout(Some(T)).unwrap();
                            let mut c = Client { reader: std::io::BufReader::new(s) };
                            try_get(&mut c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                        }
                        Err(e) => Err(format!("connect: {e}")),
                    }
                };
                match result {
                    Ok(r) if r.status == 200 && r.body == b"hello\n" => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.lock().unwrap().push(format!("keep_alive={keep_alive}: {r:?}")),
                    Err(e) => {
                        failures.lock().unwrap().push(format!("keep_alive={keep_alive}: {e}"));
                        kept = None;
                    }
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(200));
    let storm_started = Instant::now();
    for _ in 0..1000 {
        kill(pid, libc::SIGUSR1);
        std::thread::sleep(Duration::from_micros(200));
    }
    let storm = storm_started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let (keep_alive_ok, new_conn_ok) = (counts[1].load(Ordering::Relaxed), counts[0].load(Ordering::Relaxed));

    // The reloads the server performed, from its datagrams.
    let datagrams = notes.drain(Duration::from_millis(500));
    let reloading = datagrams.iter().filter(|(_, d)| d[0] == "RELOADING=1").count();
    let readies: Vec<&Vec<String>> = datagrams.iter().map(|(_, d)| d).filter(|d| d[0] == "READY=1").collect();
    let last_status = readies.last().map(|d| d[1].clone()).unwrap_or_default();

    // Settle, then compare resources.
    let settle = Instant::now() + Duration::from_secs(3);
    while fd_count(pid) > fds_before + 2 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (fds_after, rss_after) = (fd_count(pid), rss_kib(pid));
    let (code_, status_out) = run(&site, &["-k", "graceful", "--wait"]);
    eprintln!(
        "storm: 1000 USR1 in {storm:?}; requests ok: keep-alive {keep_alive_ok}, new-connection {new_conn_ok}; \
         failures {}; RELOADING datagrams {reloading}, READY {}; last READY STATUS {last_status:?}; \
         -k graceful --wait afterwards: {code_} {status_out:?}; fds {fds_before} -> {fds_after}; \
         VmRSS {rss_before} KiB -> {rss_after} KiB",
        failures.lock().unwrap().len(),
        readies.len()
    );
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(keep_alive_ok > 0 && new_conn_ok > 0);
    assert!(reloading > 0 && reloading == readies.len(), "every RELOADING=1 is followed by READY=1");
    assert_eq!(code_, 0, "{status_out}");
    assert!(fds_after <= fds_before + 2 && fds_after + 2 >= fds_before, "fds {fds_before} -> {fds_after}");
    assert!(rss_after < rss_before + 10 * 1024, "VmRSS {rss_before} KiB -> {rss_after} KiB");

    server.signal(libc::SIGTERM);
    assert_eq!(
        code(server.wait_exit(T)),
        0,
        "{}",
        stderr.complete().lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn a_port_in_use_stops_the_start_with_one_clear_message() {
    let site = Site::new();
    let _held = std::net::TcpListener::bind(("127.0.0.1", site.port)).unwrap();
    let (code_, text) = run(&site, &[]);
    assert_ne!(code_, 0, "started on a port another socket holds:\n{text}");
    let expected = format!("graced: cannot listen for \"http\": cannot bind 127.0.0.1:{}: ", site.port);
    assert!(text.contains(&expected), "{text}");
    // The cause is said once, though the error also carries it as its source.
    assert_eq!(text.matches("Address already in use").count(), 1, "{text}");
    assert!(!site.pid_path().exists(), "a failed start leaves no pid file");
}
