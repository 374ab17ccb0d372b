//! The status endpoint with TLS: each serving certificate's notAfter as
//! `graced_tls_certificate_expiry_timestamp_seconds`, read by Prometheus's own parser.

use std::process::Command;

use graced_testsupport::site::free_port;

use super::Https;
use crate::status::{parse, parser_available, scrape, status_listener};

/// notAfter of the PEM certificate at `path`, in Unix seconds (`openssl x509 -enddate`).
fn not_after(path: &std::path::Path) -> f64 {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let date = text.trim().trim_start_matches("notAfter=");
    let when = humantime::parse_rfc3339_weak(date).unwrap_or_else(|e| panic!("{e}: {text}"));
    when.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn certificate_expiry_is_a_metric_per_site() {
    if !parser_available() {
        return;
    }
    let https = Https::new();
    let status_port = free_port();
    let config = https.site.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}{}", status_listener(status_port))).unwrap();
    let _server = https.site.start(&[]);
    let metrics = parse(&[scrape(status_port)]).pop().unwrap();
    let expiry = metrics.of("graced_tls_certificate_expiry_timestamp_seconds");
    assert_eq!(expiry.len(), 2, "{expiry:?}");
    let a = expiry.iter().find(|(k, _)| k.contains("site=a.test")).unwrap_or_else(|| panic!("{expiry:?}"));
    assert_eq!(a.1, not_after(&https.a.0), "{a:?}");
    assert!(expiry.iter().any(|(k, _)| k.contains("site=b.test")), "{expiry:?}");
    let page = crate::status::get(status_port, "/").text();
    assert!(page.contains("<h2>Certificates</h2>") && page.contains("a.test"), "{page}");
}

#[test]
fn json_access_log_lines_name_the_tls_version() {
    let https = Https::new();
    let log = https.site.path("access.log");
    https.site.edit_config(
        "access_log = \"off\"",
        &format!("access_log = \"{}\"\naccess_log_format = \"json\"", log.display()),
    );
    let _server = https.site.start(&[]);
    let out = https.curl(&format!("https://a.test:{}/", https.tls_port));
    assert!(out.starts_with("HTTP/"), "{out}");
    std::fs::rename(&log, https.site.path("access.log.1")).unwrap();
    let (code, text) = https.site.run(&["-k", "reopen-logs", "--wait"]);
    assert_eq!(code, 0, "{text}");
    let text = std::fs::read_to_string(https.site.path("access.log.1")).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["tls"], true, "{line}");
    assert_eq!(line["tls_version"], "TLSv1.3", "{line}");
    assert!(line["version"] == "HTTP/2.0" || line["version"] == "HTTP/1.1", "{line}");
}
