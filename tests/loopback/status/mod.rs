//! The status endpoint of the real binary: `/metrics` parsed by Prometheus's own Python
//! parser (`prometheus_client`), counters across 100 reloads and a hard restart, requests
//! in flight per generation while a slow download spans two reloads, and the endpoint
//! reachable on its own listener only.
//!
//! Without Python's `prometheus_client` the tests print `SKIP:` and pass, except under
//! `CI=true` or `GRACED_E2E_REQUIRE=1` (`.ci/run` installs it).

mod logs;
mod metrics;
mod rotation;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use graced_testsupport::http::{Client, Response};
use graced_testsupport::site::{Site, free_port};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/loopback/status/parse_metrics.py");

/// One exposition as the parser read it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Parsed {
    /// Family name (without `_total` for counters) → type.
    families: BTreeMap<String, String>,
    /// `name{label=value,…}` (labels sorted) → value.
    samples: BTreeMap<String, f64>,
}

impl Parsed {
    #[track_caller]
    pub(crate) fn value(&self, key: &str) -> f64 {
        *self.samples.get(key).unwrap_or_else(|| panic!("no sample {key}; have {:?}", self.samples.keys()))
    }

    /// The samples of `name` (any labels).
    pub(crate) fn of(&self, name: &str) -> Vec<(&str, f64)> {
        let prefix = format!("{name}{{");
        self.samples
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&prefix))
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }
}

/// Whether `prometheus_client` can be imported; if not, prints `SKIP:` (or panics under CI).
pub(crate) fn parser_available() -> bool {
    let ok =
        Command::new("python3").args(["-c", "import prometheus_client"]).status().is_ok_and(|s| s.success());
    if !ok {
        let required = std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var("GRACED_E2E_REQUIRE").is_ok_and(|v| v == "1");
        assert!(!required, "python3's prometheus_client is required here (pip install prometheus_client)");
        eprintln!("SKIP: python3 cannot import prometheus_client");
    }
    ok
}

/// Parses every exposition in `texts` with prometheus_client, in one python run.
#[track_caller]
pub(crate) fn parse(texts: &[String]) -> Vec<Parsed> {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for text in texts {
        input.push_str(text);
        input.push_str("--- end ---\n");
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        texts.last().map_or("", |t| t.as_str())
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A site whose config adds a status listener on its own loopback port.
fn status_site() -> (Site, u16) {
    let site = Site::new(crate::GRACED);
    let status_port = free_port();
    site.write_config(&status_listener(status_port));
    (site, status_port)
}

pub(crate) fn status_listener(port: u16) -> String {
    format!("\n[[listen]]\nname = \"status\"\naddress = \"127.0.0.1:{port}\"\nstatus = true\n")
}

/// `GET path` on a new connection to `port`.
pub(crate) fn get(port: u16, path: &str) -> Response {
    Client::connect(port).get(path)
}

/// `/metrics` from the status port, checked for its content type.
#[track_caller]
pub(crate) fn scrape(port: u16) -> String {
    let response = get(port, "/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    response.text()
}
