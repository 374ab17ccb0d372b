//! `graced -k reopen-logs --wait` under load: 100 rotations (rename, then the command)
//! while clients download slowly; every request is logged exactly once across the rotated
//! files, and no rotated file changes, or is still open, once its command returned.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graced_testsupport::http::{connect_small_rcvbuf, loopback};
use graced_testsupport::site::Site;

const ROTATIONS: usize = 100;
const BIG: usize = 1024 * 1024;

/// Requests that completed, by id.
type Done = Arc<Mutex<Vec<u64>>>;

/// One client thread: requests `path?id=N` on new connections until `stop`; `slow`: a 16 KiB
/// receive buffer read 16 KiB a millisecond, so the response stays in flight ~70 ms.
fn client(port: u16, path: &'static str, slow: bool, ids: Arc<AtomicU64>, done: Done, stop: Arc<AtomicBool>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let mut stream =
            connect_small_rcvbuf(loopback(port), if slow { 16 * 1024 } else { 256 * 1024 }).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(stream, "GET {path}?id={id} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut received = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buf).unwrap_or_else(|e| panic!("request {id}: {e}"));
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
            if slow {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert!(
            received.starts_with(b"HTTP/1.1 200"),
            "request {id}: {:?}",
            &received[..received.len().min(80)]
        );
        done.lock().unwrap().push(id);
    }
}

/// Whether process `pid` has a file descriptor open on `path`.
fn holds_open(pid: i32, path: &std::path::Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| target == path)
}

#[test]
fn reopen_logs_wait_returns_when_the_old_file_is_complete_and_closed() {
    let site = Site::new(crate::GRACED);
    let log = site.path("logs/access.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    site.write_config_with_server(
        &format!("access_log = \"{}\"\ngraceful_shutdown_timeout = \"5s\"", log.display()),
        "",
    );
    site.write_big_file("www/big.bin", BIG, 5);
    let server = site.start(&[]);
    let (ids, done, stop) = (Arc::new(AtomicU64::new(0)), Done::default(), Arc::new(AtomicBool::new(false)));
    let clients: Vec<_> =
        [("/big.bin", true), ("/big.bin", true), ("/index.html", false), ("/index.html", false)]
            .into_iter()
            .map(|(path, slow)| {
                let (ids, done, stop, port) = (ids.clone(), done.clone(), stop.clone(), site.port);
                std::thread::spawn(move || client(port, path, slow, ids, done, stop))
            })
            .collect();
    // Rotate while downloads are in flight.
    while done.lock().unwrap().len() < 4 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let mut sizes = Vec::new();
    let mut waited = Vec::new();
    let mut rotate = |i: usize| {
        let rotated = site.path(&format!("logs/access.log.{i}"));
        std::fs::rename(&log, &rotated).unwrap();
        let asked = Instant::now();
        let (code, out) = site.run(&["-k", "reopen-logs", "--wait", "--timeout", "30s"]);
        waited.push(asked.elapsed());
        assert_eq!(code, 0, "rotation {i}: {out}");
        sizes.push(std::fs::metadata(&rotated).unwrap().len());
        assert!(
            !holds_open(server.pid(), &rotated),
            "rotation {i}: {} still open after: {out}",
            rotated.display()
        );
    };
    for i in 0..ROTATIONS {
        rotate(i);
    }
    // Once more with the clients stopped, so that every request's line is in a closed file.
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    rotate(ROTATIONS);
    let took = started.elapsed();

    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, size) in sizes.iter().enumerate() {
        let rotated = site.path(&format!("logs/access.log.{i}"));
        let text = std::fs::read_to_string(&rotated).unwrap();
        assert_eq!(text.len() as u64, *size, "{} changed after its reopen-logs returned", rotated.display());
        for line in text.lines() {
            let id = line
                .split("?id=")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("a line without an id in {}: {line}", rotated.display()));
            *seen.entry(id).or_default() += 1;
        }
    }
    let done = done.lock().unwrap();
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "logged more than once: {twice:?}");
    let missing: Vec<_> = done.iter().filter(|id| !seen.contains_key(id)).collect();
    assert!(missing.is_empty(), "served but not logged: {missing:?}");
    assert_eq!(seen.len(), done.len(), "every logged request was one a client completed");
    waited.sort();
    println!(
        "{ROTATIONS} rotations under load in {took:?}: {} requests logged; reopen-logs --wait took {:?} median, {:?} max",
        done.len(),
        waited[waited.len() / 2],
        waited.last().unwrap()
    );
}

#[test]
fn reopen_logs_wait_times_out_with_75_while_a_download_holds_the_old_file() {
    let site = Site::new(crate::GRACED);
    let log = site.path("logs/access.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    site.write_config_with_server(&format!("access_log = \"{}\"", log.display()), "");
    site.write_big_file("www/big.bin", 16 * 1024 * 1024, 9);
    let server = site.start(&[]);
    let slow = graced_testsupport::http::SlowGet::start(site.port, "/big.bin");
    slow.wait_received(64 * 1024, Duration::from_secs(10));
    slow.set_pace(graced_testsupport::http::STALL);
    let rotated = site.path("logs/access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let (code, out) = site.run(&["-k", "reopen-logs", "--wait", "--timeout", "1s"]);
    assert_eq!(code, 75, "{out}");
    assert!(out.contains("not closed yet after 1s"), "{out}");
    assert!(holds_open(server.pid(), &rotated), "the old file stays open while the download runs");
    // New requests already write the new file.
    assert_eq!(graced_testsupport::http::Client::connect(site.port).get("/").status, 200);
    let outcome = slow.finish();
    assert_eq!(outcome.cut, None);
    // Once the download is done, the old file closes: a later --wait returns at once.
    let (code, out) = site.run(&["-k", "reopen-logs", "--wait", "--timeout", "10s"]);
    assert_eq!(code, 0, "{out}");
    assert!(!holds_open(server.pid(), &rotated));
    assert!(std::fs::read_to_string(&rotated).unwrap().contains("GET /big.bin "));
}

#[test]
fn reopen_logs_that_cannot_open_the_log_changes_nothing() {
    let site = Site::new(crate::GRACED);
    let log = site.path("logs/access.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    site.write_config_with_server(&format!("access_log = \"{}\"", log.display()), "");
    let mut server = site.start(&[]);
    let stderr = graced_testsupport::process::StderrLog::capture(&mut server);
    // A response shows the server is past its start (the port accepts before the control
    // socket exists: the listeners are bound first).
    assert_eq!(graced_testsupport::http::Client::connect(site.port).get("/").status, 200);
    std::fs::rename(site.path("logs"), site.path("logs.gone")).unwrap();
    let (code, out) = site.run(&["-k", "reopen-logs"]);
    assert_eq!(code, 1, "{out}\nserver: {}", stderr.text());
    assert!(out.contains("cannot open access log") && out.contains("access.log"), "{out}");
    // Still serving, still logging to the file it had.
    assert_eq!(graced_testsupport::http::Client::connect(site.port).get("/").status, 200);
    std::fs::rename(site.path("logs.gone"), site.path("logs")).unwrap();
    let (code, out) = site.run(&["-k", "reopen-logs", "--wait"]);
    assert_eq!(code, 0, "{out}\nserver: {}", stderr.text());
    assert!(std::fs::read_to_string(&log).unwrap().contains("GET / "), "the old file got the line");
}
