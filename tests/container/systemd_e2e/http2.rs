//! Scenario k: HTTP/2 streams survive reloads and stops — cleartext HTTP/2 (`h2c = true`) under Debian's h2load and nghttp, run from the host inside the container's network namespace.
//!
//! The clients are the host's own programs (packages `nghttp2-client`): a thread that
//! joined the container's network namespace spawns them, and a child inherits the
//! namespace of the thread that forks it (checked: `/proc/PID/ns/net`). Both speak
//! HTTP/2 with prior knowledge to `http://` URLs, never retry a request, and never fall
//! back to HTTP/1.1 (h2load reports `Application protocol: h2c`).
//!
//! Generation g (1 at the first start, one more per reload) serves the document root
//! `/srv/k/gN`, whose index is `INDEX_BASE + N` bytes long: the `content-length` of a
//! response names the generation its stream took.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

use super::*;

const URL: &str = "http://127.0.0.1";
const ROOTS: &str = "/srv/k";
const INDEX_BASE: u64 = 100;
const RELOADS: usize = 20;
/// Between two reloads, so that every generation serves streams of the long-lived client.
const GAP: Duration = Duration::from_millis(150);
/// The bounded h2load runs repeated during the reloads: connections, streams each, requests.
const BOUNDED: [&str; 3] = ["-c8", "-m10", "-n2000"];
/// Stop: a slow reader (nghttp) with these many streams of `SLOW` bytes on one connection…
const SLOW_STREAMS: usize = 4;
const SLOW: u64 = 4 << 20;
/// … reading them only as fast as the test reads its frame log: `LOG_CHUNK` bytes every
/// `LOG_PAUSE` from a 4 KiB pipe, about 13 bytes of log per KiB of data (~4 MB/s) …
const LOG_CHUNK: usize = 512;
const LOG_PAUSE: Duration = Duration::from_millis(10);
/// … and h2load with two connections of eight streams of `BIG` bytes each.
const BIG_CONNECTIONS: u64 = 2;
const BIG_STREAMS: u64 = 16;
const BIG: u64 = 64 << 20;

/// h2load's account of its streams, the `requests:` line of its summary: `total` =
/// `succeeded` + `failed` (every stream without a 2xx/3xx response: reset, broken
/// connection, never sent after a GOAWAY, 4xx/5xx), with `errored` and `timeout` subsets of
/// `failed`. (With `-D`, streams still open when the time is up count nowhere.)
#[derive(Debug, Default, Clone)]
struct Requests(BTreeMap<String, u64>);

impl Requests {
    fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    fn add(&mut self, other: &Requests) {
        for (name, n) in &other.0 {
            *self.0.entry(name.clone()).or_default() += n;
        }
    }

    fn summary(&self) -> String {
        let [total, ok, failed, errored, timeout] =
            ["total", "succeeded", "failed", "errored", "timeout"].map(|k| self.get(k));
        format!("{total} streams: {ok} succeeded, {failed} failed ({errored} errored, {timeout} timeout)")
    }
}

/// One finished h2load: exit status, its summary, its whole output.
struct H2load {
    requests: Requests,
    stdout: String,
}

impl H2load {
    /// Reads a finished h2load; panics unless it exited 0 having spoken h2c.
    fn read(what: &str, out: std::io::Result<std::process::Output>) -> H2load {
        let out = out.unwrap_or_else(|e| panic!("{what}: cannot run h2load: {e}"));
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr));
        let summary = || format!("{}\n--- stderr\n{stderr}", tail(&stdout));
        assert!(out.status.success(), "{what}: h2load {}: {}", out.status, summary());
        assert!(stdout.contains("\nApplication protocol: h2c\n"), "{what}: not HTTP/2 (h2c): {}", summary());
        let line = stdout.lines().find_map(|l| l.strip_prefix("requests: "));
        let line = line.unwrap_or_else(|| panic!("{what}: no `requests:` line: {}", summary()));
        let requests = Requests(
            line.split(", ")
                .filter_map(|part| part.trim().split_once(' '))
                .map(|(n, name)| (name.to_owned(), n.parse().unwrap_or_else(|_| panic!("{what}: {line}"))))
                .collect(),
        );
        H2load { requests, stdout }
    }

    /// Panics unless every stream h2load finished succeeded (`succeeded`: and this many).
    fn assert_clean(&self, what: &str, succeeded: Option<u64>) {
        let r = &self.requests;
        let clean = r.get("failed") == 0 && r.get("succeeded") == r.get("total") && r.get("total") > 0;
        let (ok, want) = (r.get("succeeded"), succeeded.unwrap_or(r.get("succeeded")));
        assert!(clean && ok == want, "{what}: {} (want {want}):\n{}", r.summary(), tail(&self.stdout));
    }

    /// The `content-length` of every response by stream id (`h2load -v` prints every header).
    fn lengths_by_stream(&self) -> BTreeMap<u32, u64> {
        let mut lengths = BTreeMap::new();
        for line in self.stdout.lines() {
            let Some((id, header)) = line.strip_prefix("[stream_id=").and_then(|l| l.split_once("] ")) else {
                continue;
            };
            if let (Ok(id), Some(Ok(length))) =
                (id.parse(), header.strip_prefix("content-length: ").map(str::parse))
            {
                lengths.insert(id, length);
            }
        }
        lengths
    }
}

/// nghttp as a slow reader: one connection, its streams' data discarded (`-n`), its frame
/// log (`-v`) written to a 4 KiB pipe that the test drains slowly. Blocked on that pipe,
/// nghttp reads its socket no faster, and HTTP/2 flow control holds the server's streams
/// open. `--har` records each stream's status and the bytes it received.
struct SlowReader {
    thread: std::thread::JoinHandle<(Vec<u8>, std::process::Output, Instant)>,
    har: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// What the slow reader saw.
struct Slow {
    log: String,
    /// (status, bytes received) of each stream, from the HAR file.
    streams: Vec<(u64, u64)>,
    done: Instant,
}

impl SlowReader {
    fn start(c: &Container, urls: &[String]) -> SlowReader {
        let dir = tempfile::tempdir().unwrap();
        let har = dir.path().join("slow.har");
        let mut args = vec!["-nv".to_owned(), format!("--har={}", har.display())];
        args.extend(urls.iter().cloned());
        let mut child = spawn_in(c, "nghttp", &args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut stdout = child.stdout.take().unwrap();
        // SAFETY: fcntl(2) F_SETPIPE_SZ on the pipe descriptor `stdout` owns.
        let size = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert!(size >= 4096, "F_SETPIPE_SZ: {}", std::io::Error::last_os_error());
        let thread = std::thread::spawn(move || {
            let (mut log, mut buf) = (Vec::new(), [0u8; LOG_CHUNK]);
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => log.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("reading nghttp's log: {e}"),
                }
                std::thread::sleep(LOG_PAUSE);
            }
            let out = child.wait_with_output().unwrap();
            (log, out, Instant::now())
        });
        SlowReader { thread, har, _dir: dir }
    }

    fn finish(self) -> Slow {
        let (log, out, done) = self.thread.join().unwrap();
        let log = String::from_utf8_lossy(&log).into_owned();
        assert!(out.status.success(), "nghttp: {}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        let har: serde_json::Value = serde_json::from_slice(&std::fs::read(&self.har).unwrap()).unwrap();
        let response = |e: &serde_json::Value| (e["status"].as_u64(), e["content"]["size"].as_u64());
        let entries = har["log"]["entries"].as_array().unwrap_or_else(|| panic!("nghttp's HAR: {har}"));
        let streams =
            entries.iter().map(|e| response(&e["response"])).map(|(s, n)| (s.unwrap(), n.unwrap())).collect();
        Slow { log, streams, done }
    }
}

impl Slow {
    /// The frames of `kind` ("recv DATA", "send HEADERS") in the log: (flags, stream id).
    fn frames<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (u8, u32)> + 'a {
        self.log.lines().filter_map(move |l| {
            let rest = l.split_once(&format!("] {kind} frame <"))?.1;
            let flags = rest.split_once("flags=0x")?.1.get(..2)?;
            let id = rest.split_once("stream_id=")?.1.trim_end_matches('>');
            Some((u8::from_str_radix(flags, 16).ok()?, id.parse().ok()?))
        })
    }

    /// Every GOAWAY received: (last_stream_id, error_code).
    fn goaway(&self) -> Vec<(u32, String)> {
        let lines: Vec<&str> = self.log.lines().collect();
        lines
            .windows(2)
            .filter(|w| w[0].contains("] recv GOAWAY frame <"))
            .filter_map(|w| {
                let fields = w[1].trim().strip_prefix('(')?;
                let last = fields.split_once("last_stream_id=")?.1.split(',').next()?.parse().ok()?;
                let error = fields.split_once("error_code=")?.1.split(',').next()?.to_owned();
                Some((last, error))
            })
            .collect()
    }
}

/// The end of h2load's output, for messages (`-v` prints every header before it).
fn tail(stdout: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// Why this scenario cannot run here (h2load and nghttp missing), or `None`.
fn missing_clients() -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["h2load", "nghttp"]
        .into_iter()
        .find(|tool| !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .map(|tool| format!("`{tool}` is not installed on the host (apt-get install nghttp2-client)"))
}

/// `program ARGS` as a child of a thread in the container's network namespace.
fn spawn_in(c: &Container, program: &'static str, args: &[&str]) -> Child {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let child = c.in_netns(move || {
        Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    });
    child.unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Whether process `pid` lives in the container's network namespace.
fn in_container_netns(c: &Container, pid: u32) -> bool {
    let ns = |pid: String| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    ns(pid.to_string()).is_some_and(|n| Some(n) == ns(c.pid().to_string()))
}

/// The TCP connections process `pid` holds: socket inode → its local port (from the
/// `/proc/PID/net/tcp` of the namespace it lives in).
fn connections(pid: u32) -> BTreeMap<u64, u16> {
    let inodes: BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let inode: u64 = f.get(9)?.parse().ok()?;
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            inodes.contains(&inode).then_some((inode, port))
        })
        .collect()
}

/// The server's own gauges, `graced -k status` (`key=value` words).
fn server_status(c: &Container) -> BTreeMap<String, String> {
    c.must(&["/usr/sbin/graced", "-k", "status", "-f", CONFIG])
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The test configuration with root `root`, its listener taking h2c (prior knowledge), and
/// no access log: the scenario's ~50 000 streams in a few seconds would exceed journald's
/// per-unit rate limit (`RateLimitBurst=10000` per 30 s, scaled by free space: ~35 000
/// here), which then suppresses graced's own messages too — "graceful stop: draining …"
/// among them.
fn h2c_config(root: &str) -> String {
    let (listen, log) = (format!("address = \"{HTTP}\"\n"), "access_log = \"journal\"\n");
    let text = config(root, "30s", HTTP);
    assert!(text.contains(&listen) && text.contains(log), "{text}");
    text.replacen(&listen, &format!("{listen}h2c = true\n"), 1).replacen(log, "access_log = \"off\"\n", 1)
}

fn root(n: usize) -> String {
    format!("{ROOTS}/g{n}")
}

/// k. Cleartext HTTP/2 (`h2c = true` on 127.0.0.1:80) under the generated units.
/// 20 × `systemctl reload graced` (each pointing the site at a new document root) under
/// h2load load: repeated bounded runs (8 connections × 10 concurrent streams, 2000 streams
/// each) lose no stream; one long-lived h2load connection (10 concurrent streams) lives
/// through all 20 reloads — the same socket before the first and after the last — and its
/// streams, in stream-id order, took every generation in turn (each reload reaches the new
/// streams of an open connection). Then `systemctl stop graced` with 20 streams in flight on
/// three connections (a slow nghttp reader with 4 × 4 MiB, h2load with 16 × 64 MiB): the
/// server sends GOAWAY, every stream completes, and the unit ends inactive with
/// Result=success, not activated again.
pub(super) fn k_http2_streams_survive_reloads_and_stops(target: Target) {
    if let Some(reason) = missing_clients() {
        let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        assert!(
            !set("CI") && !set("GRACED_E2E_REQUIRE"),
            "scenario k must run here (CI / GRACED_E2E_REQUIRE): {reason}"
        );
        return harness::visible(&format!("SKIP: k ({}): {reason}", target.label()));
    }
    let Some(c) = boot(target, "k", Duration::from_secs(240)) else { return };
    c.must_sh(&format!(
        "set -e; for n in $(seq 0 {RELOADS}); do mkdir -p {ROOTS}/g$n; \
         head -c $(({INDEX_BASE} + n)) /dev/zero | tr '\\0' k > {ROOTS}/g$n/index.html; done"
    ));
    install(&c, &h2c_config(&root(0)));
    c.must(&["systemctl", "start", "graced.socket"]);
    assert_eq!(body(&c, HTTP, "/").len() as u64, INDEX_BASE, "HTTP/1.1 on the h2c listener");
    // A child of a thread in the container's network namespace is in it too.
    let first = spawn_in(&c, "h2load", &["-n1", &format!("{URL}/")]);
    assert!(in_container_netns(&c, first.id()), "h2load runs in the container's network namespace");
    H2load::read("first stream", first.wait_with_output()).assert_clean("one h2c stream", Some(1));

    let figures_of_reloads = reloads_under_load(&c);
    let figures_of_stop = stop_with_streams_in_flight(&c);
    for line in figures_of_reloads.iter().chain([&figures_of_stop]) {
        figures(&c, "k", line);
    }
    assert_generated_unit_unchanged(&c);
}

/// Step 1 of scenario k: 20 reloads under HTTP/2 load; returns the figures.
fn reloads_under_load(c: &Container) -> Vec<String> {
    let pid = main_pid(c);
    // A reload without load: how long the long-lived client must run to see 20 under load
    // (each takes longer then: up to 2× here), with room to spare.
    let t = Instant::now();
    c.must(&["systemctl", "reload", "graced"]);
    let quiet = t.elapsed();
    let per_reload = quiet * 4 + GAP + Duration::from_millis(50);
    let duration = (3.0 + RELOADS as f64 * per_reload.as_secs_f64()).clamp(8.0, 60.0).ceil();
    let long = spawn_in(c, "h2load", &["-v", "-c1", "-m10", "-D", &duration.to_string(), &format!("{URL}/")]);
    let long_pid = long.id();
    assert!(in_container_netns(c, long_pid));
    let long = std::thread::spawn(move || long.wait_with_output());
    let stop = load::StopFlag::new();
    let bounded = {
        let stop = stop.clone();
        c.spawn_in_netns(move || {
            let mut runs = Vec::new();
            while !stop.load(Ordering::SeqCst) && runs.len() < 500 {
                runs.push(Command::new("h2load").args(BOUNDED).arg(format!("{URL}/")).output());
            }
            runs
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = connections(long_pid);
    assert_eq!(before.len(), 1, "the long-lived h2load holds one connection: {before:?}");
    let (mut times, storm) = (Vec::new(), Instant::now());
    for n in 1..=RELOADS {
        c.write_file(CONFIG, h2c_config(&root(n)).as_bytes(), 0o644);
        let t = Instant::now();
        let out = c.systemctl(&["reload", "graced"]);
        times.push(t.elapsed());
        assert!(out.success(), "reload {n} under HTTP/2 load: {out}");
        std::thread::sleep(GAP);
    }
    let (storm, after) = (storm.elapsed(), connections(long_pid));
    stop.store(true, Ordering::SeqCst);
    let runs = bounded.join().unwrap();
    let long = H2load::read("long-lived h2load", long.join().unwrap());
    let mut bounded = Requests::default();
    for (i, out) in runs.into_iter().enumerate() {
        let run = H2load::read(&format!("bounded run {i}"), out);
        run.assert_clean(&format!("bounded run {i}"), Some(2000));
        bounded.add(&run.requests);
    }
    assert!(bounded.get("total") >= 4000, "bounded h2load runs during the reloads: {}", bounded.summary());
    long.assert_clean("long-lived h2load", None);
    assert_eq!(
        after, before,
        "long-lived h2load: one connection through all {RELOADS} reloads (inode → port)"
    );
    // Stream ids rise on one connection; the generation each stream took never goes back,
    // and every one of the 21 served the connection.
    let lengths = long.lengths_by_stream();
    let mut by_generation = BTreeMap::<u64, usize>::new();
    for length in lengths.values() {
        *by_generation.entry(*length).or_default() += 1;
    }
    let ordered = lengths.values().collect::<Vec<_>>().windows(2).all(|w| w[0] <= w[1]);
    assert!(ordered, "a stream took an older generation than a stream opened before it: {by_generation:?}");
    assert_eq!(
        by_generation.keys().copied().collect::<Vec<_>>(),
        (0..=RELOADS as u64).map(|n| INDEX_BASE + n).collect::<Vec<_>>(),
        "the long-lived connection's streams by content-length (= generation); h2load ran {duration} s, the \
         reloads took {storm:?}"
    );
    let p = c.show("graced.service", &["StatusText", "MainPID"]);
    assert_eq!(p["MainPID"], pid.to_string(), "reloads keep the process: {p:?}");
    assert!(p["StatusText"].starts_with(&format!("generation {}; ", RELOADS + 2)), "{p:?}");
    let port = after.values().next().copied().unwrap_or_default();
    let max = times.iter().max().copied().unwrap_or_default();
    let avg = times.iter().sum::<Duration>() / times.len() as u32;
    let (count, min_streams) = (by_generation.len(), by_generation.values().min().unwrap());
    vec![
        format!(
            "{RELOADS} × `systemctl reload` under h2c load in {} (avg {}, max {}; without load {})",
            ms(storm),
            ms(avg),
            ms(max),
            ms(quiet)
        ),
        format!("bounded h2load runs ({}) during them: {}", BOUNDED.join(" "), bounded.summary()),
        format!(
            "long-lived h2load (-c1 -m10 -D {duration}s): one connection (local port {port}, the same socket \
             before the first and after the last reload), {}; in stream-id order its streams took all {count} \
             generations in turn, at least {min_streams} streams each",
            long.requests.summary()
        ),
    ]
}

/// Step 2 of scenario k: `systemctl stop` with streams in flight; returns the figures.
fn stop_with_streams_in_flight(c: &Container) -> String {
    let last = root(RELOADS);
    c.must_sh(&format!(
        "set -e; head -c {SLOW} /dev/urandom > {last}/slow.bin; head -c {BIG} /dev/urandom > {last}/big.bin"
    ));
    let slow_urls: Vec<String> = (1..=SLOW_STREAMS).map(|i| format!("{URL}/slow.bin?{i}")).collect();
    let slow = SlowReader::start(c, &slow_urls);
    let big_args =
        [format!("-c{BIG_CONNECTIONS}"), "-m8".into(), format!("-n{BIG_STREAMS}"), format!("{URL}/big.bin")];
    let big = spawn_in(c, "h2load", &big_args.iter().map(String::as_str).collect::<Vec<_>>());
    let big = std::thread::spawn(move || (big.wait_with_output(), Instant::now()));
    let (want_streams, want_connections) = (SLOW_STREAMS as u64 + BIG_STREAMS, 1 + BIG_CONNECTIONS);
    let t = Instant::now();
    let in_flight = loop {
        let s = server_status(c);
        let n = |k: &str| s.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        if (n("h2_connections"), n("h2_streams")) == (want_connections, want_streams) {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "never {want_streams} streams in flight: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let stop_began = Instant::now();
    let stopped = c.systemctl(&["stop", "graced"]);
    let stop_time = stop_began.elapsed();
    assert!(stopped.success(), "systemctl stop: {stopped}");
    let state = c.show("graced.service", &["ActiveState", "Result"]);
    assert_eq!(
        (state["ActiveState"].as_str(), state["Result"].as_str()),
        ("inactive", "success"),
        "{state:?}"
    );
    let slow = slow.finish();
    let (big_out, big_done) = big.join().unwrap();
    let big = H2load::read("h2load, large files", big_out);
    assert_eq!(slow.streams, vec![(200, SLOW); SLOW_STREAMS], "nghttp's streams (status, bytes received)");
    let requested: BTreeSet<u32> = slow.frames("send HEADERS").map(|f| f.1).collect();
    assert_eq!(requested.len(), SLOW_STREAMS, "nghttp's requests: {requested:?}");
    let ended: BTreeSet<u32> =
        slow.frames("recv DATA").filter(|(flags, _)| flags & 1 == 1).map(|f| f.1).collect();
    assert_eq!(ended, requested, "every nghttp stream ended with END_STREAM (not reset)");
    let goaway = slow.goaway();
    assert!(
        goaway.iter().any(|(last, _)| requested.iter().all(|id| id <= last))
            && goaway.iter().all(|(_, error)| error == "NO_ERROR(0x00)"),
        "nghttp must receive GOAWAY (NO_ERROR) naming its streams as processed: {goaway:?}, streams {requested:?}"
    );
    big.assert_clean("h2load, large files", Some(BIG_STREAMS));
    assert!(slow.done > stop_began && big_done > stop_began, "both clients were still receiving at the stop");
    let journal = c.journal(&["-u", "graced", "-o", "cat"]);
    let draining = format!("graceful stop: draining {want_connections} connections");
    assert!(journal.contains(&draining), "the journal must say {draining:?}:\n{journal}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c.prop("graced.service", "ActiveState"),
        "inactive",
        "no client came back to activate it again"
    );
    format!(
        "`systemctl stop` with {want_streams} streams in flight on {want_connections} HTTP/2 connections \
         (server: h2_streams={}, h2_connections={}): returned after {}, Result=success; nghttp slow reader \
         {SLOW_STREAMS} × {} MiB: GOAWAY {goaway:?} (last_stream_id, error), all 200 with every byte and \
         END_STREAM, done {} after the stop began; h2load {BIG_STREAMS} × {} MiB on {BIG_CONNECTIONS} \
         connections: {}, done {} after the stop began",
        in_flight["h2_streams"],
        in_flight["h2_connections"],
        ms(stop_time),
        SLOW >> 20,
        ms(slow.done - stop_began),
        BIG >> 20,
        big.requests.summary(),
        ms(big_done - stop_began)
    )
}
