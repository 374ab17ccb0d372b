//! `attack.py` (Python's h2/hyperframe/hpack) against the real binary's h2c port: CONTINUATION
//! floods (16 KiB and empty frames), Rapid Reset and empty-DATA floods, each on many connections. The server
//! must close every abusive connection itself, long before the script's cap, stay up, keep
//! its resident memory within 50 MiB of where it started, and serve another client all along.
//!
//! Without Python's `h2` the test prints `SKIP:` and passes, except under `CI=true` or
//! `GRACED_E2E_REQUIRE=1` (`.ci/run` installs it).

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use graced_testsupport::process::rss_kib;

use super::H2Site;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/loopback/http2/attack.py");

/// The script's per-connection cap on frames sent (`MAX_FRAMES` in attack.py).
const SCRIPT_CAP: u64 = 20_000;

/// Frames per write in the script's flood modes (`BURST` in attack.py).
const SCRIPT_BURST: u64 = 100;

/// ENHANCE_YOUR_CALM, the GOAWAY code for both floods (RFC 9113 §7).
const ENHANCE_YOUR_CALM: &str = "11";

/// Connections per attack mode, and how many at a time.
const CONNECTIONS: u32 = 150;
const PARALLEL: u32 = 6;

#[test]
fn continuation_floods_rapid_reset_and_empty_data_close_only_the_abusive_connections() {
    if !python_h2() {
        return;
    }
    let h2 = H2Site::new("");
    let server = h2.site.start(&[]);
    let pid = server.pid();
    // Warm up (runtime threads, caches), then take the baseline.
    for _ in 0..20 {
        assert_eq!(get(&h2), Ok(()));
    }
    let baseline = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // Another client, served all along: h2c requests with curl, each within 2 s.
    let control = {
        let (stop, port) = (stop.clone(), h2.h2c_port);
        std::thread::spawn(move || {
            let probe = Probe { port };
            let (mut served, mut slowest, mut failures) = (0u32, Duration::ZERO, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match probe.get() {
                    Ok(()) => served += 1,
                    Err(err) => failures.push(err),
                }
                slowest = slowest.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            (served, slowest, failures)
        })
    };

    let mut reports = Vec::new();
    for mode in ["continuation", "continuation-empty", "rapid-reset", "empty-data"] {
        let started = Instant::now();
        let out = Command::new("python3")
            .arg(SCRIPT)
            .args([mode, &h2.h2c_port.to_string(), &CONNECTIONS.to_string(), &PARALLEL.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "attack.py {mode}: {text}{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        println!("{mode}: {report} ({:?})", started.elapsed());
        assert_eq!(report["connections"], CONNECTIONS, "{report}");
        assert_eq!(report["closed_by_server"], CONNECTIONS, "the server closed every one: {report}");
        let most = report["max_frames_sent"].as_u64().unwrap();
        // The flood modes write BURST frames at a time; the cap is on writes.
        let cap = if mode == "empty-data" { SCRIPT_CAP * SCRIPT_BURST } else { SCRIPT_CAP };
        assert!(most < cap, "closed long before the script's cap of {cap} frames: {report}");
        let codes = report["goaway_codes"].as_object().unwrap();
        assert!(
            codes.keys().all(|code| code == ENHANCE_YOUR_CALM || code == "none"),
            "GOAWAY(ENHANCE_YOUR_CALM) or a bare close, nothing else: {report}"
        );
        assert!(codes.contains_key(ENHANCE_YOUR_CALM), "the server says why: {report}");
        reports.push(report);
    }

    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let (served, slowest, failures) = control.join().unwrap();
    let (peak, after) = (peak.load(Ordering::Relaxed), rss_kib(pid));
    println!(
        "FIGURES: VmRSS {baseline} KiB before, {peak} KiB at most, {after} KiB after; \
         the other client: {served} requests served, slowest {slowest:?}"
    );
    assert!(failures.is_empty(), "the other client failed: {failures:?}");
    assert!(served > 10, "the other client was served all along: {served}");
    assert!(slowest < Duration::from_secs(2), "the other client waited {slowest:?}");
    assert!(peak < baseline + 50 * 1024, "VmRSS grew from {baseline} to {peak} KiB");
    assert_eq!(get(&h2), Ok(()), "the server is up");
    let status = h2.status();
    assert_eq!(super::field(&status, "h2_connections"), Some(0), "every attack connection is gone: {status}");
}

/// A GET for / over h2c with prior knowledge (curl): Ok if it was a 200 over HTTP/2.
struct Probe {
    port: u16,
}

impl Probe {
    fn get(&self) -> Result<(), String> {
        let out = Command::new("curl")
            .args(["-sS", "--http2-prior-knowledge", "--max-time", "5", "-o", "/dev/null"])
            .args(["-w", "%{http_version} %{http_code}"])
            .arg(format!("http://127.0.0.1:{}/", self.port))
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text == "2 200" { Ok(()) } else { Err(format!("{text} {}", String::from_utf8_lossy(&out.stderr))) }
    }
}

fn get(h2: &H2Site) -> Result<(), String> {
    Probe { port: h2.h2c_port }.get()
}

/// Whether `python3` has the h2 modules; else a SKIP line, or a failure where every test must
/// run (`CI=true`, `GRACED_E2E_REQUIRE=1`).
fn python_h2() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import h2, hyperframe, hpack"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        let reason = "python3 with the h2 package is not installed (python3 -m pip install h2, or apt-get install python3-h2)";
        assert!(!required(), "the HTTP/2 attack test must run here (CI / GRACED_E2E_REQUIRE), but: {reason}");
        let _ = writeln!(std::io::stderr().lock(), "SKIP: {reason}");
    }
    found
}

/// Whether a missing tool must fail the test instead of skipping it (CI runs them all).
fn required() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("GRACED_E2E_REQUIRE")
}
