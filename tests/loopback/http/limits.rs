//! Limits and abuse: slowloris, idle and stalled connections, max_connections, connection floods, EMFILE.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use graced_testsupport::http::{Client, connect_small_rcvbuf, loopback, parse_raw, read_to_eof};
use graced_testsupport::process::{Server, cpu_seconds, fd_count};
use graced_testsupport::site::Site;

use super::assert_serving;
use crate::GRACED;

const TIGHT_LIMITS: &str = "[limits]\nheader_timeout = \"1s\"\nkeepalive_timeout = \"1s\"\nsend_timeout = \"2s\"\nmax_connections = 8\n";

#[test]
fn slowloris_is_disconnected_after_header_timeout_while_others_are_served() {
    let site = Site::new(GRACED);
    site.write_config(TIGHT_LIMITS);
    let server = site.start(&[]);
    let head = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: {}", "a".repeat(200));
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let start = Instant::now();
    let mut closed_after = None;
    let mut other_served_in = None;
    let mut buf = [0u8; 1024];
    // At most 40 bytes × 200 ms = 8 s.
    for (i, byte) in head.bytes().take(40).enumerate() {
        if slow.write_all(&[byte]).is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        match slow.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(start.elapsed());
                break;
            }
            // A 408 is acceptable before the close; keep reading for the EOF.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed_after = Some(start.elapsed());
                break;
            }
        }
        if i == 2 {
            let t = Instant::now();
            assert_serving(&server);
            other_served_in = Some(t.elapsed());
        }
    }
    let closed_after = closed_after.expect("the slowloris client was never disconnected (8 s)");
    println!("slowloris closed after {closed_after:?}; another client served in {other_served_in:?}");
    assert!(
        closed_after >= Duration::from_millis(800) && closed_after <= Duration::from_millis(2800),
        "slowloris closed after {closed_after:?}; header_timeout is 1s"
    );
    let served = other_served_in.expect("the other client ran");
    assert!(served < Duration::from_millis(800), "another client took {served:?} while slowloris ran");
    assert_serving(&server);
}

#[test]
fn idle_keep_alive_connection_is_closed_after_keepalive_timeout_but_a_busy_one_is_not() {
    let site = Site::new(GRACED);
    site.write_config(TIGHT_LIMITS);
    let server = site.start(&[]);

    // Requests 400 ms apart for 2 s: longer than keepalive_timeout in total, never idle that long.
    let mut busy = server.connect();
    for i in 0..5 {
        let r = busy.get("/");
        assert_eq!(r.status, 200, "request {i} on a busy keep-alive connection");
        std::thread::sleep(Duration::from_millis(400));
    }

    let mut idle = server.connect();
    assert_eq!(idle.get("/").status, 200);
    let start = Instant::now();
    assert!(idle.closed_within(Duration::from_secs(3)), "an idle keep-alive connection stayed open for 3 s");
    let after = start.elapsed();
    println!("idle keep-alive connection closed after {after:?}");
    assert!(after >= Duration::from_millis(800), "closed after only {after:?}; keepalive_timeout is 1s");
    assert!(after <= Duration::from_millis(2500), "closed after {after:?}; keepalive_timeout is 1s");

    // A connection that never sends anything is closed too.
    let mut silent = server.connect();
    assert!(silent.closed_within(Duration::from_secs(3)), "a silent connection stayed open for 3 s");
}

#[test]
fn a_reader_that_stops_reading_is_disconnected_after_send_timeout() {
    const BIG: u64 = 32 * 1024 * 1024;
    let site = Site::new(GRACED);
    site.write_config(TIGHT_LIMITS);
    let file = File::create(site.path("www/big.bin")).unwrap();
    file.set_len(BIG).unwrap(); // sparse zeros: cheap to create, real bytes to send
    let server = site.start(&[]);

    // A small receive buffer, so the kernel cannot swallow the file for us.
    let mut stalled = connect_small_rcvbuf(loopback(server.port), 32 * 1024).unwrap();
    stalled.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();

    // Others are served while the response is stuck.
    std::thread::sleep(Duration::from_millis(500));
    assert_serving(&server);
    // send_timeout (2s) of no progress, plus slack.
    std::thread::sleep(Duration::from_millis(3500));
    assert_serving(&server);

    let received = read_to_eof(&mut stalled);
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |p| p + 4);
    let body = (received.len() - head_end) as u64;
    println!("the stalled reader got {body} of {BIG} body bytes before the close");
    assert!(
        body < BIG,
        "the whole {BIG}-byte body arrived after the client stalled for 4 s: the connection was not aborted"
    );
    assert_serving(&server);
}

#[test]
fn connections_beyond_max_connections_wait_and_are_served_later() {
    let site = Site::new(GRACED);
    site.write_config(
        "[limits]\nmax_connections = 8\nkeepalive_timeout = \"10s\"\nheader_timeout = \"10s\"\n",
    );
    let server = site.start(&[]);
    std::thread::sleep(Duration::from_millis(200)); // the readiness probe's connection is gone
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();

    // Eight connections, each served once and kept open.
    let mut first: Vec<Client> = (0..8).map(|_| server.connect()).collect();
    for (i, c) in first.iter_mut().enumerate() {
        assert_eq!(c.get("/").status, 200, "connection {i} within the limit");
    }
    // Twenty-two more: connect succeeds (nothing is refused), but nobody answers yet.
    let mut waiting = Vec::new();
    for i in 0..22 {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connection {} beyond the limit was refused: {e}", i + 8));
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        waiting.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    for (i, s) in waiting.iter_mut().enumerate() {
        s.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        match s.peek(&mut byte) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("connection {} beyond max_connections got {other:?} while 8 were open", i + 8),
        }
        s.set_nonblocking(false).unwrap();
    }
    // Closing the first eight lets the others in.
    let start = Instant::now();
    drop(first.drain(..));
    for (i, s) in waiting.iter_mut().enumerate() {
        let r = parse_raw(&read_to_eof(s));
        assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "waiting connection {}", i + 8);
    }
    assert!(start.elapsed() < Duration::from_secs(5), "the waiting connections took {:?}", start.elapsed());
    assert_serving(&server);
}

/// A flood far past `max_connections`: 400 clients behind 16 held connections all wait (none
/// is refused, none answered), then every one is served once the 16 leave; the server's
/// descriptors and memory come back to where they were.
#[test]
fn a_flood_of_waiting_clients_past_max_connections_is_served_once_others_leave() {
    const HELD: usize = 16;
    const FLOOD: usize = 400;
    let site = Site::new(GRACED);
    site.write_config(&format!(
        "[limits]\nmax_connections = {HELD}\nkeepalive_timeout = \"30s\"\nheader_timeout = \"30s\"\n"
    ));
    let server = site.start(&[]);
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    assert_serving(&server);
    let (fds_before, rss_before) =
        (fd_count(server.pid()), graced_testsupport::process::rss_kib(server.pid()));

    let mut held: Vec<Client> = (0..HELD).map(|_| server.connect()).collect();
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(c.get("/").status, 200, "held connection {i}");
    }
    let mut flood = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("flood connection {i} was refused: {e}"));
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        flood.push(s);
    }
    // None is answered while the held connections stay (sampled: the first, middle and last).
    std::thread::sleep(Duration::from_millis(300));
    for i in [0, FLOOD / 2, FLOOD - 1] {
        let s = &mut flood[i];
        s.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        match s.peek(&mut byte) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("flood connection {i} got {other:?} while {HELD} were held"),
        }
        s.set_nonblocking(false).unwrap();
    }
    assert!(fd_count(server.pid()) < fds_before + HELD + 16, "the server took the waiting connections");
    let start = Instant::now();
    drop(held.drain(..));
    for (i, s) in flood.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let r = parse_raw(&read_to_eof(s));
        assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "flood connection {i}");
    }
    let served_in = start.elapsed();
    drop(flood);
    assert_serving(&server);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count(server.pid()) > fds_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (fds_after, rss_after) = (fd_count(server.pid()), graced_testsupport::process::rss_kib(server.pid()));
    println!(
        "FIGURES: {FLOOD} waiting clients served in {served_in:?}; fds {fds_before} -> {fds_after}, \
         VmRSS {rss_before} -> {rss_after} KiB"
    );
    assert!(served_in < Duration::from_secs(15), "the flood took {served_in:?}");
    assert!(fds_after <= fds_before, "descriptors: {fds_before} before, {fds_after} after");
    assert!(rss_after < rss_before + 20 * 1024, "VmRSS {rss_before} -> {rss_after} KiB");
}

#[test]
fn a_flood_of_connect_close_cycles_leaves_the_server_serving_without_leaks() {
    let site = Site::new(GRACED);
    site.write_config(TIGHT_LIMITS); // max_connections = 8: a leaked slot would soon starve it
    let server = site.start(&[]);
    std::thread::sleep(Duration::from_millis(200));
    let baseline = fd_count(server.pid());
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let start = Instant::now();
    for i in 0..500 {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("flood connection {i}: {e}"));
        match i % 4 {
            0 => {}
            1 => {
                let _ = s.write_all(b"GET / HTT");
            }
            2 => {
                // A whole request, then gone before the answer.
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
            }
            _ => {
                // Reset instead of FIN.
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
        }
        drop(s);
        assert!(start.elapsed() < Duration::from_secs(10), "the flood took over 10 s (at {i})");
    }
    // More sequential requests than max_connections: every slot came back.
    for _ in 0..20 {
        assert_serving(&server);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count(server.pid()) > baseline + 2 {
        assert!(
            Instant::now() < deadline,
            "fds: {} after the flood, {baseline} before",
            fd_count(server.pid())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `graced -f CONFIG` with RLIMIT_NOFILE = `nofile`, stderr to `stderr.log` in the site dir.
fn start_with_nofile(site: &Site, nofile: u64) -> Server {
    let mut command = site.command();
    command.stdout(Stdio::null()).stderr(File::create(site.path("stderr.log")).unwrap());
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = Server::new(command.spawn().unwrap(), site.port);
    server.wait_listening(Duration::from_secs(10));
    server
}

#[test]
fn emfile_does_not_make_the_accept_loop_spin_and_serving_resumes() {
    let site = Site::new(GRACED);
    site.write_config("[limits]\nkeepalive_timeout = \"30s\"\nheader_timeout = \"30s\"\n");
    let mut server = start_with_nofile(&site, 40);
    let pid = server.pid();
    assert_serving(&server);
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();

    let mut held = Vec::new();
    for i in 0..100 {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connection {i} (the backlog should hold it): {e}"));
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let fds = fd_count(pid);
    assert!(fds >= 36, "only {fds} fds open with a limit of 40: the server is not at EMFILE");

    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds(pid) - before;
    println!("at EMFILE: {fds} fds open, {used:.3} s CPU in 1 s");
    assert!(used < 0.3, "the server used {used:.2} s of CPU in 1 s at EMFILE: the accept loop spins");
    let log = std::fs::read_to_string(site.path("stderr.log")).unwrap();
    assert!(log.contains("accept failed"), "no accept failure was logged, so EMFILE was not reached:\n{log}");

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut client = server.connect();
        client.stream().set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        client.send("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        if matches!(client.try_read_response(false), Ok(r) if r.status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not serve again within 10 s of the fds being freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.child.try_wait().unwrap().is_none(), "the server exited");
}

#[test]
fn a_request_that_cannot_open_its_file_at_emfile_is_not_a_false_404() {
    let site = Site::new(GRACED);
    site.write_config("[limits]\nkeepalive_timeout = \"30s\"\nheader_timeout = \"30s\"\n");
    let server = start_with_nofile(&site, 40);
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    // The first connection is accepted while fds remain; then exhaust them.
    let mut first = server.connect();
    assert_eq!(first.get("/").status, 200);
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap());
    }
    std::thread::sleep(Duration::from_millis(500));
    let r = first.get("/index.html");
    let log = std::fs::read_to_string(site.path("stderr.log")).unwrap_or_default();
    let why: Vec<&str> = log.lines().filter(|l| l.contains("open") || l.contains("lookup")).collect();
    assert!(
        r.status == 200 || r.status >= 500,
        "GET of an existing file while out of fds answered {} (a cacheable lie); expected 200 or 5xx; server log: {why:?}",
        r.status
    );
    drop(held);
}
