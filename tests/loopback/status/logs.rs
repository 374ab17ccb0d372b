//! Access-log formats and a stuck destination: JSON lines with the request's generation,
//! duration, bytes and versions; a FIFO nobody reads never stalls serving, the lines beyond
//! the bounded queue are dropped, counted in `/metrics` and logged.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use graced_testsupport::http::Client;
use graced_testsupport::process::StderrLog;
use graced_testsupport::site::Site;

use super::{get, parse, parser_available, scrape, status_listener};

#[test]
fn json_lines_carry_generation_duration_bytes_and_versions() {
    let site = Site::new(crate::GRACED);
    let log = site.path("access.log");
    site.write_config_with_server(
        &format!("access_log = \"{}\"\naccess_log_format = \"json\"", log.display()),
        "",
    );
    let _server = site.start(&[]);
    let mut client = Client::connect(site.port);
    assert_eq!(client.get("/index.html").status, 200);
    let head = client.request("HEAD /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(head.status, 200);
    let odd = client.request(
        "GET /missing?q=%22 HTTP/1.1\r\nHost: Example.org\r\nUser-Agent: a \"quoted\" agent\\\r\nReferer: http://r/\r\n\r\n",
    );
    assert_eq!(odd.status, 404);
    let (code, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(client.get("/").status, 200);
    drop(client);
    // Everything written and the file closed: rotate it away and reopen.
    std::fs::rename(&log, site.path("access.log.1")).unwrap();
    let (code, out) = site.run(&["-k", "reopen-logs", "--wait"]);
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(site.path("access.log.1")).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let (get1, head, odd, after) = (&lines[0], &lines[1], &lines[2], &lines[3]);
    assert_eq!(get1["method"], "GET");
    assert_eq!(get1["target"], "/index.html");
    assert_eq!(get1["status"], 200);
    assert_eq!(get1["bytes"], 6);
    assert_eq!(get1["version"], "HTTP/1.1");
    assert_eq!(get1["tls"], false);
    assert_eq!(get1["tls_version"], serde_json::Value::Null);
    assert_eq!(get1["generation"], 1);
    assert_eq!(get1["remote"], "127.0.0.1");
    let duration = get1["duration"].as_f64().unwrap();
    assert!((0.0..5.0).contains(&duration), "duration {duration}");
    let time = get1["time"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "time {time}");
    assert_eq!(head["method"], "HEAD");
    assert_eq!(head["bytes"], serde_json::Value::Null);
    assert_eq!(odd["status"], 404);
    assert_eq!(odd["target"], "/missing?q=%22");
    assert_eq!(odd["user_agent"], "a \"quoted\" agent\\");
    assert_eq!(odd["referer"], "http://r/");
    assert_eq!(odd["host"], "example.org");
    assert_eq!(after["generation"], 2, "the request after the reload took generation 2");
}

#[test]
fn a_fifo_nobody_reads_never_stalls_serving_and_drops_are_counted() {
    if !parser_available() {
        return;
    }
    let site = Site::new(crate::GRACED);
    let fifo = site.path("access.fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    // A reader that never reads: the pipe fills, then the writer thread blocks.
    let mut reader =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
    let status_port = graced_testsupport::site::free_port();
    site.write_config_with_server(
        &format!("access_log = \"{}\"\ngraceful_shutdown_timeout = \"2s\"", fifo.display()),
        &status_listener(status_port),
    );
    let mut server = site.start(&[]);
    let stderr = StderrLog::capture(&mut server);
    // Far more lines than the pipe (64 KiB) and the queue (4096 lines) hold.
    const REQUESTS: usize = 12_000;
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let port = site.port;
            std::thread::spawn(move || {
                let mut client = Client::connect(port);
                let mut slowest = Duration::ZERO;
                for _ in 0..REQUESTS / 4 {
                    let asked = Instant::now();
                    assert_eq!(client.get("/").status, 200);
                    slowest = slowest.max(asked.elapsed());
                }
                slowest
            })
        })
        .collect();
    let slowest = threads.into_iter().map(|t| t.join().unwrap()).max().unwrap();
    let took = started.elapsed();
    assert!(slowest < Duration::from_secs(2), "a request took {slowest:?} with the log stuck");
    assert_eq!(get(site.port, "/").status, 200);
    let metrics = parse(&[scrape(status_port)]).pop().unwrap();
    let dropped = metrics.value("graced_access_log_dropped_lines_total");
    println!(
        "{REQUESTS} requests in {took:?} (slowest {slowest:?}) with the access log stuck: {dropped} lines dropped"
    );
    // At most the pipe (64 KiB of ≥ 60-byte lines) and the queue held lines.
    assert!(dropped >= (REQUESTS - 4096 - 1100) as f64 && dropped <= REQUESTS as f64, "dropped {dropped}");
    assert!(stderr.wait_for("the access log does not keep up", Duration::from_secs(5)), "{}", stderr.text());
    // Reading the FIFO again lets the writer go on: the lines that were kept arrive.
    let want = (REQUESTS as f64 + 1.0 - dropped) as usize;
    let mut kept = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while kept < want && Instant::now() < deadline {
        match reader.read(&mut buf) {
            Ok(n) if n > 0 => kept += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert_eq!(kept, want, "the lines not dropped all arrive");
}
