//! Keep-alive connections parked while idle (hyper's state taken down after a second, built
//! again at the next request): they serve their next requests, pipelined ones included, and
//! `keepalive_timeout` and `header_timeout` hold across the park as before it.

use std::time::{Duration, Instant};

use graced_testsupport::site::Site;

use crate::GRACED;

/// Longer than the server's idle time before it parks a connection (1 s).
const PARKED: Duration = Duration::from_millis(1600);

#[test]
fn a_parked_keep_alive_connection_serves_its_next_requests_and_closes_at_keepalive_timeout() {
    let site = Site::new(GRACED);
    site.put("www/a.txt", b"first\n");
    site.put("www/b.txt", b"second\n");
    site.write_config("[limits]\nkeepalive_timeout = \"4s\"\nheader_timeout = \"2s\"\n");
    let server = site.start(&[]);

    let mut client = server.connect();
    assert_eq!(client.get("/a.txt").text(), "first\n");
    std::thread::sleep(PARKED);
    // Woken by the next request: served on the same connection.
    let again = client.get("/b.txt");
    assert_eq!((again.status, again.text().as_str()), (200, "second\n"));
    std::thread::sleep(PARKED);
    // Two pipelined requests in one write after a park: two responses, in order.
    client
        .send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(client.read_response(false).text(), "first\n");
    assert_eq!(client.read_response(false).text(), "second\n");

    // Then idle: parked after a second, closed at keepalive_timeout from the last response.
    let idle_from = Instant::now();
    assert!(client.closed_within(Duration::from_secs(8)), "a parked connection stayed open for 8 s");
    let after = idle_from.elapsed();
    println!(
        "FIGURES: a parked keep-alive connection closed {after:?} after its last response (keepalive_timeout 4 s)"
    );
    assert!(after >= Duration::from_millis(3500), "closed after only {after:?}; keepalive_timeout is 4 s");
    assert!(after <= Duration::from_millis(5500), "closed after {after:?}; keepalive_timeout is 4 s");
}

#[test]
fn a_request_head_that_starts_after_a_park_is_bounded_by_header_timeout() {
    let site = Site::new(GRACED);
    site.write_config("[limits]\nkeepalive_timeout = \"30s\"\nheader_timeout = \"2s\"\n");
    let server = site.start(&[]);

    let mut client = server.connect();
    assert_eq!(client.get("/").status, 200);
    std::thread::sleep(PARKED);
    // The first bytes of a head wake the connection; the rest never comes.
    client.send("GET / HTTP/1.1\r\nHost: loc");
    let started = Instant::now();
    assert!(client.closed_within(Duration::from_secs(6)), "a stalled head after a park stayed open for 6 s");
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(1500), "closed after only {after:?}; header_timeout is 2 s");
    assert!(after <= Duration::from_millis(3500), "closed after {after:?}; header_timeout is 2 s");
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn a_stop_ends_parked_connections_at_once() {
    let site = Site::new(GRACED);
    site.write_config("[limits]\nkeepalive_timeout = \"60s\"\n");
    let mut server = site.start(&[]);
    let mut clients: Vec<_> = (0..20).map(|_| server.connect()).collect();
    for client in &mut clients {
        assert_eq!(client.get("/").status, 200);
    }
    std::thread::sleep(PARKED);
    let sent = Instant::now();
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(5));
    let exited = sent.elapsed();
    for (i, client) in clients.iter_mut().enumerate() {
        assert!(
            client.closed_within(Duration::from_secs(1)),
            "parked connection {i} still open after the stop"
        );
    }
    assert!(exited < Duration::from_secs(2), "graced took {exited:?} to stop with 20 parked connections");
}
