//! Faults injected while clients run:
//! * the access log's file system fills up (a 256 KiB tmpfs mounted in graced's own mount
//!   namespace, `unshare -m`, so nothing of the machine's mounts changes), then gets space
//!   back: serving goes on throughout, the error is reported once, and logging resumes (with a
//!   note of how many lines were lost) when space returns;
//! * the document root is deleted, recreated and replaced (renamed over) while a large
//!   download is in flight: the download completes with the bytes it started with, other
//!   clients get 200 or 404 (never an error or a reset), and the new root is served;
//! * the configuration file is deleted between `graced -t` and the reload: the reload fails
//!   naming the file and the old generation serves on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use graced_testsupport::http::{SlowGet, get as keepalive_get, loopback};
use graced_testsupport::pattern::{assert_same_bytes, pattern};
use graced_testsupport::process::{Server, StderrLog, scrub};
use graced_testsupport::site::Site;

use super::{SEED, get};
use crate::GRACED;

/// The message graced logs once when the access log cannot be written.
const WRITE_FAILED: &str = "cannot write the access log";
/// The message graced logs once when writing works again.
const WRITABLE_AGAIN: &str = "the access log is writable again";

/// Polls `f` every 20 ms for up to `timeout`.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Lines of the access log that name `needle`.
fn lines_with(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains(needle)).count()
}

/// Fills the file system of `dir` with one file until it is full; returns the file.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![b'x'; 4096];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    filler
}

fn unshare_available() -> bool {
    let ok = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let reason = "needs root and unshare -m (a private mount namespace)";
        let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        assert!(
            !(set("CI") || set("GRACED_E2E_REQUIRE")),
            "the disk-full test must run here (CI), but it {reason}"
        );
        let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
    }
    ok
}

#[test]
fn a_full_access_log_disk_keeps_serving_reports_once_and_logging_resumes() {
    if !unshare_available() {
        return;
    }
    let site = Site::new(GRACED);
    let logs = site.path("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("access.log");
    let text = std::fs::read_to_string(site.config_path()).unwrap();
    let text = text.replace("access_log = \"off\"", &format!("access_log = \"{}\"", log.display()));
    std::fs::write(site.config_path(), text).unwrap();
    // graced in a mount namespace of its own, with a 256 KiB tmpfs over logs/.
    let mut command = Command::new("unshare");
    command
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=256k tmpfs \"$1\" && shift && exec \"$@\"", "sh"])
        .arg(&logs)
        .arg(GRACED)
        .arg("-f")
        .arg(site.config_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server::new(scrub(&mut command).spawn().unwrap(), site.port);
    server.wait_listening(Duration::from_secs(10));
    let stderr = StderrLog::capture(&mut server);
    // The tmpfs as graced sees it.
    let seen = PathBuf::from(format!("/proc/{}/root{}", server.pid(), logs.display()));
    let seen_log = seen.join("access.log");

    for i in 0..10 {
        assert_eq!(get(site.port, &format!("/?before={i}"), &[]).status, 200);
    }
    assert!(eventually(Duration::from_secs(5), || lines_with(&seen_log, "before=") == 10), "lines before");
    assert_eq!(lines_with(&log, "before="), 0, "the log is on graced's tmpfs, not on the directory below it");

    let filler = fill(&seen);
    // Every request is served while the log's disk is full: enough lines to overflow the
    // writer's buffer many times over.
    let long = "x".repeat(2000);
    for i in 0..300 {
        let r = get(site.port, &format!("/?full={i}&{long}"), &[]);
        assert_eq!(r.status, 200, "request {i} with the log's disk full");
    }
    assert!(
        stderr.wait_for(WRITE_FAILED, Duration::from_secs(5)),
        "the error is reported:\n{}",
        stderr.text()
    );

    std::fs::remove_file(&filler).unwrap();
    let mut after = 0;
    let resumed = eventually(Duration::from_secs(10), || {
        assert_eq!(get(site.port, &format!("/?after={after}"), &[]).status, 200);
        after += 1;
        lines_with(&seen_log, "after=") > 0
    });
    assert!(resumed, "logging resumes once there is space:\n{}", stderr.text());
    assert!(
        stderr.wait_for(WRITABLE_AGAIN, Duration::from_secs(5)),
        "the recovery is reported:\n{}",
        stderr.text()
    );
    let text = stderr.text();
    println!("{text}");
    assert_eq!(text.matches(WRITE_FAILED).count(), 1, "the error is reported once:\n{text}");
    assert_eq!(text.matches(WRITABLE_AGAIN).count(), 1, "the recovery is reported once:\n{text}");
    // No line is torn: every line in the log is whole.
    let content = std::fs::read_to_string(&seen_log).unwrap();
    assert!(content.ends_with('\n'));
    for line in content.lines() {
        assert!(line.contains(" HTTP/1.1\" 200 "), "a torn or foreign line: {line:?}");
    }
}

/// A client requesting /index.html every 10 ms on new connections; returns every status seen
/// (0 for a failed request).
fn poller(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u16>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            seen.push(keepalive_get(loopback(port), "/index.html").map_or(0, |r| r.status));
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    })
}

#[test]
fn the_document_root_deleted_or_replaced_mid_request_finishes_the_download_and_serves_the_new_root() {
    let site = Site::new(GRACED);
    let (first, second) = (pattern(8 << 20, SEED), pattern(8 << 20, SEED + 1));
    site.put("www/big.bin", &first);
    let server = site.start(&[]);
    let port = server.port;
    let www = site.path("www");
    let stop = Arc::new(AtomicBool::new(false));
    let others = poller(port, stop.clone());

    // Deleted while a download is in flight.
    let download = SlowGet::start(port, "/big.bin");
    download.wait_received(256 * 1024, Duration::from_secs(10));
    std::fs::remove_dir_all(&www).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || get(port, "/index.html", &[]).status == 404),
        "no root: 404"
    );
    let out = download.finish();
    assert_eq!((out.status, out.cut.as_deref()), (200, None), "the download in flight completes");
    assert_same_bytes(&out.body, &first, "the download's bytes");

    // Recreated: served again.
    site.put("www/index.html", b"recreated\n");
    site.put("www/big.bin", &second);
    assert!(
        eventually(Duration::from_secs(5), || get(port, "/index.html", &[]).text() == "recreated\n"),
        "the recreated root is served"
    );

    // Replaced by a rename while a download is in flight (a deploy's `mv new www`).
    let download = SlowGet::start(port, "/big.bin");
    download.wait_received(256 * 1024, Duration::from_secs(10));
    let next = site.path("www-next");
    std::fs::create_dir(&next).unwrap();
    std::fs::write(next.join("index.html"), "replaced\n").unwrap();
    std::fs::rename(&www, site.path("www-old")).unwrap();
    std::fs::rename(&next, &www).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || get(port, "/index.html", &[]).text() == "replaced\n"),
        "the replacing root is served"
    );
    let out = download.finish();
    assert_eq!((out.status, out.cut.as_deref()), (200, None), "the download in flight completes");
    assert_same_bytes(&out.body, &second, "the download's bytes");
    assert_eq!(get(port, "/big.bin", &[]).status, 404, "the old root's file is gone from the new root");

    stop.store(true, Ordering::Relaxed);
    let seen = others.join().unwrap();
    let odd: Vec<u16> = seen.iter().copied().filter(|s| ![200, 404].contains(s)).collect();
    println!("the other client: {} requests, {} not 200 or 404", seen.len(), odd.len());
    assert!(seen.len() > 20 && odd.is_empty(), "the other client saw {odd:?} among {} answers", seen.len());
}

/// The configuration file deleted between `graced -t` and the reload: the reload fails with a
/// message naming the file, the old generation keeps serving, and once the file is back the
/// next reload applies it.
#[test]
fn the_configuration_deleted_between_check_and_reload_keeps_the_old_serving() {
    let site = Site::new(GRACED);
    let mut server = site.start(&[]);
    let stderr = StderrLog::capture(&mut server);
    let (code, out) = site.run(&["-t"]);
    assert_eq!(code, 0, "graced -t: {out}");
    let config = site.config_path();
    let saved = std::fs::read_to_string(&config).unwrap();
    std::fs::remove_file(&config).unwrap();
    server.signal(libc::SIGUSR1);
    let named = format!("{}: cannot read the configuration", config.display());
    assert!(
        stderr.wait_for(&named, Duration::from_secs(10)),
        "the failed reload names the file:\n{}",
        stderr.text()
    );
    let r = get(site.port, "/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "the old generation serves on");

    std::fs::write(&config, saved.replace("[[site]]", "[[site]]\nindex = [\"other.html\"]")).unwrap();
    site.put("www/other.html", b"other\n");
    server.signal(libc::SIGUSR1);
    assert!(
        eventually(Duration::from_secs(10), || get(site.port, "/", &[]).text() == "other\n"),
        "the restored file is applied by the next reload:\n{}",
        stderr.text()
    );
    println!("{}", stderr.text());
}
