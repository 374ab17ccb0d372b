//! The access log file: Apache combined format lines.

use std::time::{Duration, Instant};

use graced_testsupport::site::Site;

use super::{get, request};
use crate::GRACED;

/// `dd/Mon/yyyy:hh:mm:ss +0000`
fn is_clf_time(s: &str) -> bool {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && MONTHS.contains(&&s[3..6])
        && b[6] == b'/'
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && &s[20..] == " +0000"
}

/// Splits a combined-format line into (remote, time, the rest after `] `).
fn split_combined(line: &str) -> (&str, &str, &str) {
    let (remote, rest) = line.split_once(" - - [").unwrap_or_else(|| panic!("not combined format: {line:?}"));
    let (time, rest) = rest.split_once("] ").unwrap_or_else(|| panic!("no time in {line:?}"));
    (remote, time, rest)
}

#[test]
fn access_log_file_gets_apache_combined_format_lines() {
    let site = Site::new(GRACED);
    let log_path = site.path("logs/access.log");
    std::fs::create_dir(site.path("logs")).unwrap();
    site.write_config_with_server(
        &format!("access_log = \"{}\"\ngraceful_shutdown_timeout = \"5s\"", log_path.display()),
        "",
    );
    let server = site.start(&[]);
    let port = server.port;
    assert_eq!(get(port, "/index.html", &[]).status, 200);
    let missing =
        get(port, "/missing?q=1", &[("Referer", "http://ref.test/page"), ("User-Agent", "probe/1.0")]);
    assert_eq!(missing.status, 404);
    assert_eq!(request(port, "HEAD", "/index.html", &[("User-Agent", "quote\"agent")]).0.status, 200);

    let deadline = Instant::now() + Duration::from_secs(2);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.lines().count() >= 3 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "access log after 3 requests:\n{text}");
    let expected = [
        "\"GET /index.html HTTP/1.1\" 200 6 \"-\" \"-\"".to_owned(),
        format!(
            "\"GET /missing?q=1 HTTP/1.1\" 404 {} \"http://ref.test/page\" \"probe/1.0\"",
            missing.body.len()
        ),
        "\"HEAD /index.html HTTP/1.1\" 200 - \"-\" \"quote\\\"agent\"".to_owned(),
    ];
    for (line, rest_expected) in lines.iter().zip(&expected) {
        let (remote, time, rest) = split_combined(line);
        assert_eq!(remote, "127.0.0.1", "{line}");
        assert!(is_clf_time(time), "time {time:?} in {line:?}");
        assert_eq!(rest, rest_expected, "{line}");
    }
}
