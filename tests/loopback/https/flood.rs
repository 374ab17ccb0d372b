//! A TLS handshake flood on the HTTPS port: 300 connections that send nothing, 300 that send
//! the first bytes of a ClientHello and stall, and four threads doing full handshakes they drop
//! at once, for 3 s. Another HTTPS client is served all along, every stalled connection is
//! closed by the server at `[tls] handshake_timeout`, and the descriptors come back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use graced_testsupport::http::Tls;
use graced_testsupport::process::fd_count;

use super::Https;

const STALLED: usize = 300;

#[test]
fn a_tls_handshake_flood_is_cut_at_handshake_timeout_while_others_are_served() {
    let https = Https::new();
    let config = https.site.config_path();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[tls]\nhandshake_timeout = \"1s\"\n");
    std::fs::write(&config, text).unwrap();
    let server = https.site.start(&[]);
    let ca = std::fs::read(&https.ca.pem).unwrap();
    let tls = Tls::new(([127, 0, 0, 1], https.tls_port).into(), "a.test", &ca);
    tls.must_get("/");
    let fds_before = fd_count(server.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let handshakes = Arc::new(AtomicU64::new(0));
    // Full handshakes, dropped at once (a CPU flood).
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let (stop, count, port) = (stop.clone(), handshakes.clone(), https.tls_port);
            let ca = ca.clone();
            std::thread::spawn(move || {
                let tls = Tls::new(([127, 0, 0, 1], port).into(), "a.test", &ca);
                let until = Instant::now() + Duration::from_secs(3);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    if tls.exchange(b"", Duration::ZERO).is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Connections that stall: half silent, half with a truncated ClientHello record.
    let started = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..STALLED * 2)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", https.tls_port)).unwrap();
            if i % 2 == 1 {
                // A handshake record announcing 512 bytes, then the first few of a ClientHello.
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).unwrap();
            }
            s
        })
        .collect();
    // Another client, served throughout.
    let (mut served, mut slowest) = (0, Duration::ZERO);
    while started.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        let (r, _) = tls.must_get("/");
        assert_eq!(r.status, 200);
        served += 1;
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    // Every stalled connection is closed by the server at handshake_timeout (1 s): all of them
    // within 6 s of the first (the default of 10 s would fail this).
    let cut_by = started + Duration::from_secs(6);
    for (i, s) in stalled.iter_mut().enumerate() {
        let left = cut_by.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 1024];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue, // an alert
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(closed, "stalled connection {i} still open {:?} after it began", started.elapsed());
    }
    let cut_after = started.elapsed();
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count(server.pid()) > fds_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let fds_after = fd_count(server.pid());
    println!(
        "FIGURES: {} dropped handshakes, {} stalled connections closed within {cut_after:?}; the other \
         client: {served} served, slowest {slowest:?}; fds {fds_before} -> {fds_after}",
        handshakes.load(Ordering::Relaxed),
        STALLED * 2
    );
    assert!(handshakes.load(Ordering::Relaxed) > 10, "the flood made handshakes");
    assert!(slowest < Duration::from_secs(2), "the other client waited {slowest:?}");
    assert!(fds_after <= fds_before, "descriptors: {fds_before} before, {fds_after} after");
    tls.must_get("/");
}
