//! The running server over HTTP/2 as curl and nghttp see it: h2 by ALPN, h2c with prior
//! knowledge beside HTTP/1.1 on one port, many streams on one connection, the SETTINGS the
//! server sends, and the h2 gauges of `graced -k status` while a stream is open, across a
//! reload.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use graced_testsupport::process::{Reaped, cpu_seconds};

use super::{H2Site, MAX_STREAMS, field};

/// curl's `-w` text for one transfer: "HTTP-VERSION STATUS SIZE CONNECTS".
const WRITE_OUT: &str = "%{http_version} %{http_code} %{size_download} %{num_connects}\\n";

#[test]
fn curl_speaks_h2_over_tls_and_h2c_and_http1_on_one_plain_port() {
    let h2 = H2Site::new("");
    let _server = h2.site.start(&[]);
    let out_file = h2.site.path("out.bin");
    let out = out_file.to_str().unwrap();
    let big_len = h2.big.len();

    // HTTPS: h2 chosen by ALPN, byte-exact.
    let got = h2.curl(&["--http2", "-o", out, "-w", WRITE_OUT, &h2.https("/big.bin")]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), format!("2 200 {big_len} 1\n"), "{got:?}");
    assert!(std::fs::read(&out_file).unwrap() == h2.big, "the h2 body differs");
    // h2c with prior knowledge, then HTTP/1.1, then an HTTP/1.1 Upgrade: h2c (not taken) on
    // the same plain port.
    for (flag, version) in [("--http2-prior-knowledge", "2"), ("--http1.1", "1.1"), ("--http2", "1.1")] {
        std::fs::remove_file(&out_file).unwrap();
        let got = h2.curl(&[flag, "-o", out, "-w", WRITE_OUT, &h2.h2c("/big.bin")]);
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            format!("{version} 200 {big_len} 1\n"),
            "{flag}: {got:?}"
        );
        assert!(std::fs::read(&out_file).unwrap() == h2.big, "{flag}: the body differs");
    }
    // A plain port without h2c does not take prior knowledge.
    let plain = format!("http://127.0.0.1:{}/", h2.site.port);
    let got = h2.curl(&["--http2-prior-knowledge", "-w", WRITE_OUT, "-o", "/dev/null", &plain]);
    assert!(!got.status.success(), "no HTTP/2 without h2c: {got:?}");

    // 40 parallel downloads of the big file multiplexed on one connection: one connect in all.
    let mut args = vec!["--http2", "--parallel", "--parallel-max", "40", "-w", WRITE_OUT];
    let url = h2.https("/big.bin");
    args.extend(std::iter::repeat_n(["-o", "/dev/null", url.as_str()], 40).flatten());
    let started = Instant::now();
    let got = h2.curl(&args);
    let lines = String::from_utf8_lossy(&got.stdout).into_owned();
    assert_eq!(lines.lines().count(), 40, "{got:?}");
    let mut connects = 0;
    for line in lines.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[..3], ["2", "200", big_len.to_string().as_str()], "{lines}");
        connects += fields[3].parse::<u32>().unwrap();
    }
    assert_eq!(connects, 1, "all 40 streams on one connection:\n{lines}");
    println!("40 × {big_len} bytes over one h2 connection in {:?}", started.elapsed());
}

#[test]
fn nghttp_sees_the_configured_settings_over_tls_and_h2c() {
    let h2 = H2Site::new("");
    let _server = h2.site.start(&[]);
    for url in [format!("https://127.0.0.1:{}/", h2.tls_port), h2.h2c("/")] {
        let out = Command::new("nghttp")
            .args(["-nv", "--timeout=10", &url])
            .output()
            .expect("nghttp runs (apt-get install nghttp2-client)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "nghttp {url}: {text}{}", String::from_utf8_lossy(&out.stderr));
        // The server's SETTINGS is the first frame nghttp receives.
        let received = text.split("recv SETTINGS frame").nth(1).expect("a SETTINGS frame from the server");
        let settings = received.split("send ").next().unwrap();
        assert!(
            settings.contains(&format!("[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):{MAX_STREAMS}]")),
            "{url}: {settings}"
        );
        assert!(settings.contains("[SETTINGS_MAX_HEADER_LIST_SIZE(0x06):24576]"), "{url}: {settings}");
        assert!(text.contains(":status: 200"), "{url}: {text}");
    }
}

#[test]
fn status_shows_the_h2_gauges_while_a_stream_is_open_and_a_reload_keeps_it() {
    let h2 = H2Site::new("");
    let _server = h2.site.start(&[]);
    // curl's stream window is 10 MiB: a file well beyond it, read at 8 MB/s, keeps the
    // server's stream open for about three seconds.
    let huge = h2.site.write_big_file("www/huge.bin", 24 << 20, 7);
    let out_file = h2.site.path("slow.bin");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--http2", "--limit-rate", "8M", "--max-time", "20", "--cacert"])
        .arg(&h2.ca)
        .arg("--resolve")
        .arg(format!("a.test:{}:127.0.0.1", h2.tls_port))
        .args(["-o", out_file.to_str().unwrap(), "-w", WRITE_OUT, &h2.https("/huge.bin")])
        .stdout(Stdio::piped());
    let mut slow = Reaped::new(curl.spawn().unwrap());

    let deadline = Instant::now() + Duration::from_secs(5);
    let open = loop {
        let status = h2.status();
        if field(&status, "h2_streams") == Some(1) || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(field(&open, "h2_connections"), Some(1), "{open}");
    assert_eq!(field(&open, "h2_streams"), Some(1), "{open}");
    assert_eq!(field(&open, "connections"), Some(1), "{open}");

    // A graceful reload: the stream stays open on generation 1 and finishes byte-exact.
    let (code, out) = h2.site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code, 0, "{out}");
    let after = h2.status();
    assert_eq!(field(&after, "generation"), Some(2), "{after}");
    assert_eq!(field(&after, "h2_streams"), Some(1), "the stream is still open: {after}");
    assert_eq!(field(&after, "G1"), Some(1), "generation 1 finishes it: {after}");

    let done = slow.wait().unwrap();
    let mut line = String::new();
    std::io::Read::read_to_string(slow.stdout.as_mut().unwrap(), &mut line).unwrap();
    assert!(done.success(), "curl: {line}");
    assert_eq!(line, format!("2 200 {} 1\n", huge.len()));
    assert!(std::fs::read(&out_file).unwrap() == huge, "the body differs");
    let deadline = Instant::now() + Duration::from_secs(5);
    let end = loop {
        let status = h2.status();
        if field(&status, "h2_connections") == Some(0) || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((field(&end, "h2_connections"), field(&end, "h2_streams")), (Some(0), Some(0)), "{end}");
}

/// An h2c port tells HTTP/2 from HTTP/1.1 by peeking at the preface; connections that send
/// a part of it and stall (or close) must not make the server poll them busily while it waits.
#[test]
fn connections_with_a_part_of_the_preface_cost_no_cpu() {
    let h2 = H2Site::new("");
    let server = h2.site.start(&[]);
    let mut held = Vec::new();
    for i in 0..200 {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", h2.h2c_port)).unwrap();
        std::io::Write::write_all(&mut tcp, &b"PRI * HTTP/2.0\r\n"[..1 + i % 16]).unwrap();
        // Half stay, half leave at once.
        if i % 2 == 0 {
            held.push(tcp);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(server.pid()) - before;
    println!("FIGURES: 200 connections with a part of the preface: {used:.2} s of CPU in 2 s");
    assert!(
        used < 0.2,
        "graced used {used:.2} s of CPU in 2 s on connections that sent a part of the preface"
    );
    // The port still serves both protocols.
    let got = h2.curl(&["--http2-prior-knowledge", "-o", "/dev/null", "-w", WRITE_OUT, &h2.h2c("/")]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "2 200 6 1\n", "{got:?}");
    drop(held);
}
