//! `/metrics`, the page and the JSON against the real binary (see `mod.rs`).

use std::time::{Duration, Instant};

use graced_testsupport::http::{STALL, SlowGet};

use super::{get, parse, parser_available, scrape, status_site};

const T: Duration = Duration::from_secs(10);

#[test]
fn metrics_parse_and_the_endpoint_is_served_on_its_own_listener_only() {
    if !parser_available() {
        return;
    }
    let (site, status_port) = status_site();
    let _server = site.start(&[]);
    for path in ["/", "/index.html", "/missing", "/index.html"] {
        get(site.port, path);
    }
    // The site's listener knows nothing of the status endpoint.
    for path in ["/metrics", "/status.json"] {
        let response = get(site.port, path);
        assert_eq!(response.status, 404, "{path} on the site's listener: {response:?}");
        assert!(!response.text().contains("graced_"), "{path} on the site's listener leaked metrics");
    }
    // And the status listener serves no file of the site.
    let response = get(status_port, "/index.html");
    assert_eq!(response.status, 404);
    assert_ne!(response.text(), "hello\n");

    let parsed = parse(&[scrape(status_port)]).pop().unwrap();
    assert_eq!(parsed.families["graced_requests"], "counter");
    assert_eq!(parsed.families["graced_request_duration_seconds"], "histogram");
    assert_eq!(parsed.families["graced_build_info"], "gauge");
    assert_eq!(parsed.value(&format!("graced_build_info{{version={}}}", env!("CARGO_PKG_VERSION"))), 1.0);
    // Three 200s and two 404s (the site's /metrics and /status.json count as its requests).
    assert_eq!(parsed.value("graced_requests_total{code=2xx}"), 3.0);
    assert_eq!(parsed.value("graced_requests_total{code=4xx}"), 3.0);
    assert_eq!(parsed.value("graced_requests_total{code=5xx}"), 0.0);
    assert!(parsed.value("graced_response_bytes_total") >= 3.0 * 6.0);
    assert_eq!(parsed.value("graced_request_duration_seconds_count"), 6.0);
    assert_eq!(parsed.value("graced_request_duration_seconds_bucket{le=+Inf}"), 6.0);
    let sum = parsed.value("graced_request_duration_seconds_sum");
    assert!(sum > 0.0 && sum < 5.0, "duration sum {sum}");
    assert_eq!(parsed.value("graced_generation"), 1.0);
    assert_eq!(parsed.value("graced_generation_requests_in_flight{current=true,generation=1}"), 0.0);
    assert_eq!(parsed.value("graced_reloads_total"), 0.0);
    // The scrape's own connection at least (an earlier one may still be closing).
    assert!(parsed.value("graced_connections{state=status}") >= 1.0);
    let started = parsed.value("graced_start_time_seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(started <= now && started > now - 60.0, "start time {started} vs now {now}");

    let page = get(status_port, "/");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = page.text();
    assert!(html.contains("<h2>Generation 1</h2>") && html.contains("by start"), "{html}");
    let json = get(status_port, "/status.json");
    assert_eq!(json.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(&json.text()).unwrap();
    assert_eq!(json["generation"], 1);
    assert_eq!(json["requests"]["by_class"]["2xx"], 3);
    assert_eq!(json["generations"][0]["origin"], "start");
    let post = super::Client::connect(status_port)
        .request("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
}

#[test]
fn without_a_status_listener_nothing_serves_metrics() {
    let site = graced_testsupport::site::Site::new(crate::GRACED);
    let _server = site.start(&[]);
    let response = get(site.port, "/metrics");
    assert_eq!(response.status, 404);
}

#[test]
fn counters_count_on_across_100_reloads_and_a_hard_restart_resets_them() {
    if !parser_available() {
        return;
    }
    let (site, status_port) = status_site();
    let _server = site.start(&[]);
    let mut texts = Vec::new();
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(get(site.port, "/").status, 200);
        texts.push(scrape(status_port));
        let (code, out) = site.run(&["-k", "graceful", "--wait"]);
        assert_eq!(code, 0, "{out}");
    }
    assert_eq!(get(site.port, "/").status, 200);
    texts.push(scrape(status_port));
    let (code, out) = site.run(&["-k", "restart", "--wait"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(get(site.port, "/").status, 200);
    texts.push(scrape(status_port));
    println!("100 reloads with a request and a scrape each: {:?}", started.elapsed());

    let parsed = parse(&texts);
    for (i, p) in parsed.iter().take(101).enumerate() {
        let n = i as f64;
        assert_eq!(p.value("graced_requests_total{code=2xx}"), n + 1.0, "scrape {i}");
        assert_eq!(p.value("graced_request_duration_seconds_count"), n + 1.0, "scrape {i}");
        assert_eq!(p.value("graced_response_bytes_total"), 6.0 * (n + 1.0), "scrape {i}");
        assert_eq!(p.value("graced_reloads_total"), n, "scrape {i}");
        assert_eq!(p.value("graced_generation"), n + 1.0, "scrape {i}");
        let origin = if i == 0 { "start" } else { "reload" };
        let key = format!("graced_generation_start_time_seconds{{generation={},origin={origin}}}", i + 1);
        assert!(p.value(&key) > 0.0);
    }
    // HUP: counters start again from zero (the restart itself is the one reload counted).
    let after = parsed.last().unwrap();
    assert_eq!(after.value("graced_requests_total{code=2xx}"), 1.0);
    assert_eq!(after.value("graced_request_duration_seconds_count"), 1.0);
    assert_eq!(after.value("graced_response_bytes_total"), 6.0);
    assert_eq!(after.value("graced_reloads_total"), 1.0);
    assert_eq!(after.value("graced_generation"), 102.0);
    assert!(
        after.samples.contains_key("graced_generation_start_time_seconds{generation=102,origin=restart}")
    );
}

#[test]
fn requests_in_flight_per_generation_follow_a_slow_download_across_two_reloads() {
    if !parser_available() {
        return;
    }
    let (site, status_port) = status_site();
    site.write_big_file("www/big.bin", 16 * 1024 * 1024, 3);
    let _server = site.start(&[]);
    let slow = SlowGet::start(site.port, "/big.bin");
    slow.wait_received(64 * 1024, T);
    slow.set_pace(STALL);
    for _ in 0..2 {
        let (code, out) = site.run(&["-k", "graceful", "--wait"]);
        assert_eq!(code, 0, "{out}");
    }
    assert_eq!(get(site.port, "/").status, 200, "generation 3 serves");
    let during = parse(&[scrape(status_port)]).pop().unwrap();
    let in_flight = during.of("graced_generation_requests_in_flight");
    assert_eq!(
        in_flight,
        [
            ("graced_generation_requests_in_flight{current=false,generation=1}", 1.0),
            ("graced_generation_requests_in_flight{current=true,generation=3}", 0.0),
        ],
        "generation 2 served nothing and is gone; 1 still finishes the download"
    );
    assert_eq!(during.value("graced_connections{state=writing}"), 1.0);
    let page = get(status_port, "/").text();
    assert!(page.contains("<td>1</td><td>") && page.contains("finishing (G)"), "{page}");

    let outcome = slow.finish();
    assert_eq!(outcome.status, 200);
    assert_eq!(outcome.cut, None, "the download finished on generation 1");
    // Generation 1 goes once its last request has ended (the body's end drops it).
    let deadline = Instant::now() + T;
    loop {
        let now = parse(&[scrape(status_port)]).pop().unwrap();
        let in_flight = now.of("graced_generation_requests_in_flight");
        if in_flight == [("graced_generation_requests_in_flight{current=true,generation=3}", 0.0)] {
            assert_eq!(now.value("graced_connections{state=writing}"), 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "generation 1 still listed: {in_flight:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_status_listener_on_a_unix_socket_serves_metrics_to_curl() {
    let site = graced_testsupport::site::Site::new(crate::GRACED);
    let socket = site.path("status.sock");
    site.write_config(&format!(
        "\n[[listen]]\nname = \"status\"\naddress = \"{}\"\nsocket_mode = \"0600\"\nstatus = true\n",
        socket.display()
    ));
    let _server = site.start(&[]);
    assert_eq!(get(site.port, "/").status, 200);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--unix-socket"])
        .arg(&socket)
        .arg("http://localhost/metrics")
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("graced_requests_total{code=\"2xx\"} 1\n"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_connection_sending_its_request_head_slowly_is_reading_until_the_head_is_complete() {
    if !parser_available() {
        return;
    }
    use std::io::{Read, Write};
    let (site, status_port) = status_site();
    let _server = site.start(&[]);
    get(site.port, "/");
    // Half a request head, then nothing (as slowloris does), and an idle keep-alive beside it.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    slow.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n").unwrap();
    let idle = std::net::TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    let states = |want_reading: f64| {
        let deadline = Instant::now() + T;
        loop {
            let parsed = parse(&[scrape(status_port)]).pop().unwrap();
            let (reading, idle) = (
                parsed.value("graced_connections{state=reading}"),
                parsed.value("graced_connections{state=idle}"),
            );
            if reading == want_reading {
                return (reading, idle);
            }
            assert!(Instant::now() < deadline, "reading {reading}, idle {idle}: want reading {want_reading}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (_, idle_count) = states(1.0);
    assert!(idle_count >= 1.0, "the connection that sent nothing is idle, not reading ({idle_count})");
    let json = get(status_port, "/status.json");
    let json: serde_json::Value = serde_json::from_str(&json.text()).unwrap();
    assert_eq!(json["connections"]["reading"], 1);
    // The rest of the head: the request is served, and the connection no longer reads.
    slow.write_all(b"\r\n").unwrap();
    slow.set_read_timeout(Some(T)).unwrap();
    let mut first = [0u8; 12];
    slow.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    states(0.0);
    drop(idle);
}
