//! A storm of 1000 USR1 (no failed request, no leak), and a start on a port in use.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graced_testsupport::http::Client;
use graced_testsupport::process::{code, fd_count, kill, rss_kib};
use graced_testsupport::site::Site;

use super::{KEEP_ALIVE_GET, T, hello, start_notified, try_get};
use crate::GRACED;

#[test]
fn a_storm_of_1000_usr1_fails_no_request_and_leaks_no_fd_or_memory() {
    let site = Site::new(GRACED);
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
    let (code_, status_out) = site.run(&["-k", "graceful", "--wait"]);
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
    let site = Site::new(GRACED);
    let _held = std::net::TcpListener::bind(("127.0.0.1", site.port)).unwrap();
    let (code_, text) = site.run(&[]);
    assert_ne!(code_, 0, "started on a port another socket holds:\n{text}");
    let expected = format!("graced: cannot listen for \"http\": cannot bind 127.0.0.1:{}: ", site.port);
    assert!(text.contains(&expected), "{text}");
    // The cause is said once, though the error also carries it as its source.
    assert_eq!(text.matches("Address already in use").count(), 1, "{text}");
    assert!(!site.pid_path().exists(), "a failed start leaves no pid file");
}
