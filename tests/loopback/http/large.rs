//! Large files are streamed: byte-exact, bounded memory, read in off the serving threads, a file that shrinks.

use std::fs::File;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use graced_testsupport::http::{connect_small_rcvbuf, loopback, read_to_eof};
use graced_testsupport::pattern::{self, pattern};
use graced_testsupport::process::rss_kib;
use graced_testsupport::site::Site;

use super::{SEED, assert_serving, must, read_pattern_body};
use crate::GRACED;

#[test]
fn a_large_file_is_streamed_byte_exact_with_bounded_memory() {
    const LEN: u64 = 20 * 1024 * 1024;
    let site = Site::new(GRACED);
    site.put("www/large.bin", &pattern(LEN as usize, SEED));
    let server = site.start(&[]);
    let pid = server.pid();
    assert_serving(&server);
    let baseline = rss_kib(pid);

    let mut client = server.connect();
    client.send("GET /large.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = client.read_response(true); // head only; the body is read below
    assert_eq!(head.status, 200);
    assert_eq!(must(&head, "content-length"), LEN.to_string());
    assert_eq!(must(&head, "content-type"), "application/octet-stream");
    let peak = read_pattern_body(&mut client, 0, LEN, pid);

    // A range from the middle, unaligned to any chunk size, on the same connection.
    let (from, to) = (7_777_777u64, 12_345_678u64);
    client.send(&format!("GET /large.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes={from}-{to}\r\n\r\n"));
    let head = client.read_response(true);
    assert_eq!(head.status, 206);
    assert_eq!(must(&head, "content-range"), format!("bytes {from}-{to}/{LEN}"));
    assert_eq!(must(&head, "content-length"), (to - from + 1).to_string());
    let peak = peak.max(read_pattern_body(&mut client, from, to - from + 1, pid));
    // And the connection is still in step.
    assert_eq!(client.get("/").text(), "hello\n");

    println!("RSS: {baseline} KiB before, peak {peak} KiB while serving 20 MiB");
    assert!(peak < 60 * 1024, "the server's RSS reached {peak} KiB serving a 20 MiB file");
    assert!(
        peak < baseline + 12 * 1024,
        "the server's RSS grew from {baseline} KiB to {peak} KiB serving a 20 MiB file: not streamed"
    );
}

#[test]
fn a_large_file_not_in_the_page_cache_is_read_in_off_the_serving_threads_and_sent_exact() {
    const WINDOW: u64 = 1024 * 1024;
    const LEN: u64 = 6 * WINDOW + 4321;
    let site = Site::new(GRACED);
    site.write_config_with_server("access_log = \"off\"\nlog_level = \"debug\"", "");
    site.put("www/cold.bin", &pattern(LEN as usize, SEED));
    // Written back and dropped from the page cache: the server must read it from disk.
    let file = File::open(site.path("www/cold.bin")).unwrap();
    file.sync_all().unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    let mut server = site.start(&[]);
    let pid = server.pid();
    assert_serving(&server);

    let mut client = server.connect();
    for round in 0..2 {
        client.send("GET /cold.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let head = client.read_response(true);
        assert_eq!(head.status, 200, "round {round}");
        assert_eq!(must(&head, "content-length"), LEN.to_string());
        read_pattern_body(&mut client, 0, LEN, pid);
    }
    assert_eq!(client.get("/").text(), "hello\n", "the connection is still in step");

    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    let log = server.stderr();
    let read_ins = log.matches("reading a window of a file into the page cache").count();
    println!("{read_ins} windows read in for 2 × 7 windows sent");
    // Only what was missing is read in, and only the first time. tmpfs (memory) cannot be
    // probed and is sent as it is.
    let fs = rustix::fs::fstatfs(&file).unwrap();
    if fs.f_type as i64 == 0x0102_1994 {
        assert_eq!(read_ins, 0, "{log}");
    } else {
        assert!((1..=7).contains(&read_ins), "{read_ins} windows read in; expected 1 to 7:\n{log}");
    }
}

#[test]
fn a_large_file_that_shrinks_while_it_is_sent_ends_the_response_short_and_nothing_else() {
    const LEN: u64 = 16 * 1024 * 1024;
    const KEPT: u64 = 2 * 1024 * 1024;
    let site = Site::new(GRACED);
    site.put("www/shrinks.bin", &pattern(LEN as usize, SEED));
    let server = site.start(&[]);

    // A small receive buffer, so that most of the file is still to be sent when it shrinks.
    let mut reader = connect_small_rcvbuf(loopback(server.port), 32 * 1024).unwrap();
    reader.write_all(b"GET /shrinks.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut received = vec![0u8; 256 * 1024];
    reader.read_exact(&mut received).unwrap();

    std::fs::OpenOptions::new()
        .write(true)
        .open(site.path("www/shrinks.bin"))
        .unwrap()
        .set_len(KEPT)
        .unwrap();
    let started = Instant::now();
    received.extend(read_to_eof(&mut reader));
    let closed_after = started.elapsed();

    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(received.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&received[..head_end]));
    let body = &received[head_end..];
    println!("{} of {LEN} body bytes before the close, {closed_after:?} after the truncation", body.len());
    assert!((body.len() as u64) < LEN, "the whole body arrived although the file shrank to {KEPT} bytes");
    // What did arrive of the part the file kept is the file's bytes.
    let kept = body.len().min(KEPT as usize);
    for (i, b) in body[..kept].iter().enumerate() {
        assert_eq!(*b, pattern::byte(SEED, i as u64), "body byte {i}");
    }
    assert!(closed_after < Duration::from_secs(5), "the connection was closed only after {closed_after:?}");
    assert_serving(&server);
}
