//! TLS keep-alive connections parked while idle (hyper's state taken down, the TLS session
//! kept): the next request on the same connection is served, and `keepalive_timeout` ends
//! the connection with `close_notify` as before.

use std::time::{Duration, Instant};

use graced_testsupport::http::{Tls, TlsEnd, TlsKeepAlive};

use super::Https;

#[test]
fn a_parked_tls_connection_serves_its_next_request_and_ends_with_close_notify_at_keepalive_timeout() {
    let https = Https::new();
    let config = https.site.config_path();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[limits]\nkeepalive_timeout = \"3s\"\n");
    std::fs::write(&config, text).unwrap();
    let _server = https.site.start(&[]);
    let ca = std::fs::read(&https.ca.pem).unwrap();
    let tls = || Tls::new(([127, 0, 0, 1], https.tls_port).into(), "a.test", &ca);

    let mut client = TlsKeepAlive::new(tls());
    for i in 0..3 {
        let (response, serial) = client.get("/").unwrap_or_else(|f| panic!("request {i}: {f}"));
        assert_eq!((response.status, serial.as_str()), (200, "a1"), "request {i}");
        // Longer than the second after which an idle connection is parked.
        std::thread::sleep(Duration::from_millis(1600));
    }
    assert_eq!(client.connections, 1, "the parked connection was not reused (closed between requests)");

    // One request, then idle: parked, and closed with close_notify at keepalive_timeout.
    let started = Instant::now();
    let (got, end) =
        tls().exchange(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", Duration::from_secs(8)).expect("handshake");
    let after = started.elapsed();
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    assert_eq!(end, TlsEnd::CloseNotify, "after {after:?}");
    assert!(after >= Duration::from_millis(2500), "closed after only {after:?}; keepalive_timeout is 3 s");
    assert!(after <= Duration::from_millis(4500), "closed after {after:?}; keepalive_timeout is 3 s");
}
