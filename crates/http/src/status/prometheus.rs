//! A [`Snapshot`] as the Prometheus text exposition format (version 0.0.4, which
//! OpenMetrics parsers read too): `_total` counters, seconds, bytes, a histogram.
//!
//! Written by hand: the format is a few lines per family, and the values come from the
//! server's own per-thread counters (see `tally`), not from a metrics crate's registry.
//! The loopback tests parse it with Prometheus's own Python parser.

use std::fmt::Write;

use crate::status::snapshot::{Snapshot, unix_seconds};
use crate::status::tally::BUCKETS;

/// The `Content-Type` of the text.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What counters say about reloads and restarts.
const KEPT: &str = "Kept across graceful reloads (USR1); reset by a hard restart (HUP).";

pub(crate) fn render(s: &Snapshot) -> String {
    let mut text = String::with_capacity(4096);
    let mut add = |f: Family| text.push_str(&f.out);

    let mut f = family("graced_build_info", "gauge", "graced's version; always 1.");
    f.sample("", &[("version", s.version)], 1.0);
    add(f);
    let mut f = family("graced_start_time_seconds", "gauge", "When the server started, in Unix time.");
    f.sample("", &[], unix_seconds(s.started));
    add(f);
    let current = s.current().map_or(0, |g| g.id);
    let mut f = family("graced_generation", "gauge", "The generation serving new requests.");
    f.sample("", &[], current as f64);
    add(f);
    let mut f = family(
        "graced_generation_start_time_seconds",
        "gauge",
        "When each live generation began (Unix time); origin: start, reload, restart or reopen-logs.",
    );
    for g in &s.generations {
        f.sample("", &[("generation", &g.id.to_string()), ("origin", g.origin)], unix_seconds(g.created));
    }
    add(f);
    let mut f = family(
        "graced_generation_requests_in_flight",
        "gauge",
        "Requests being served, by the generation they started on (older ones are finishing).",
    );
    for g in &s.generations {
        let current = if g.current { "true" } else { "false" };
        f.sample("", &[("generation", &g.id.to_string()), ("current", current)], g.in_flight as f64);
    }
    add(f);
    let mut f = family(
        "graced_connections",
        "gauge",
        "Open connections by state: writing (HTTP/1.1, a response in flight), reading \
         (HTTP/1.1, a request head arriving), idle (HTTP/1.1 keep-alive between requests, a TLS \
         handshake), http2, status.",
    );
    let c = &s.connections;
    let states = [
        ("writing", c.writing),
        ("reading", c.reading),
        ("idle", c.idle),
        ("http2", c.http2),
        ("status", c.status),
    ];
    for (state, n) in states {
        f.sample("", &[("state", state)], n as f64);
    }
    add(f);
    let mut f = family("graced_draining", "gauge", "1 once a graceful stop began: every connection drains.");
    f.sample("", &[], f64::from(u8::from(s.draining)));
    add(f);
    let mut f = family("graced_http2_streams", "gauge", "HTTP/2 streams whose response is being produced.");
    f.sample("", &[], s.h2_streams as f64);
    add(f);
    let mut f = family("graced_requests_total", "counter", &format!("Responses by status class. {KEPT}"));
    for (i, n) in s.totals.by_class.iter().enumerate() {
        f.sample("", &[("code", &format!("{}xx", i + 1))], *n as f64);
    }
    add(f);
    let mut f = family("graced_response_bytes_total", "counter", &format!("Response body bytes. {KEPT}"));
    f.sample("", &[], s.totals.bytes as f64);
    add(f);
    let mut f = family(
        "graced_request_duration_seconds",
        "histogram",
        &format!(
            "Time from a request's head to its response's last byte (counted while a status \
             listener is configured). {KEPT}"
        ),
    );
    for (le, n) in BUCKETS.iter().zip(&s.totals.cumulative) {
        f.sample("_bucket", &[("le", &le.to_string())], *n as f64);
    }
    let count = *s.totals.cumulative.last().unwrap_or(&0) as f64;
    f.sample("_bucket", &[("le", "+Inf")], count);
    f.sample("_sum", &[], s.totals.duration_seconds);
    f.sample("_count", &[], count);
    add(f);
    let mut f =
        family("graced_reloads_total", "counter", &format!("Reloads and restarts that succeeded. {KEPT}"));
    f.sample("", &[], s.reloads as f64);
    add(f);
    let mut f = family(
        "graced_reloads_failed_total",
        "counter",
        &format!("Reloads and restarts rejected (the old generation kept serving). {KEPT}"),
    );
    f.sample("", &[], s.failed_reloads as f64);
    add(f);
    if let Some((at, _)) = &s.report.last_reload_error {
        let mut f = family(
            "graced_last_reload_failure_time_seconds",
            "gauge",
            "When the latest rejected reload was (Unix time); its error is on the status page.",
        );
        f.sample("", &[], unix_seconds(*at));
        add(f);
    }
    for (name, help, n) in [
        (
            "graced_tls_handshake_failures_total",
            "TLS connections that ended before their handshake did.",
            s.tls_failed_handshakes,
        ),
        (
            "graced_tls_handshake_timeouts_total",
            "TLS handshakes cut at [tls] handshake_timeout.",
            s.tls_handshake_timeouts,
        ),
        (
            "graced_tls_plaintext_requests_total",
            "Plaintext HTTP requests on a TLS port (answered 400).",
            s.tls_plaintext_requests,
        ),
    ] {
        let mut f = family(name, "counter", &format!("{help} {KEPT}"));
        f.sample("", &[], n as f64);
        add(f);
    }
    let mut f = family(
        "graced_access_log_dropped_lines_total",
        "counter",
        "Access-log lines dropped because the destination did not keep up (a full queue). \
         Counted since the process started: neither a reload nor a hard restart resets it.",
    );
    f.sample("", &[], s.access_log_dropped as f64);
    add(f);
    if !s.report.certificates.is_empty() {
        let mut f = family(
            "graced_tls_certificate_expiry_timestamp_seconds",
            "gauge",
            "When each serving certificate expires (notAfter, Unix time).",
        );
        for c in &s.report.certificates {
            f.sample("", &[("site", &c.site), ("certificate", &c.name)], unix_seconds(c.not_after));
        }
        add(f);
    }
    text
}

/// A family's `# HELP` and `# TYPE` lines, to which its samples are added.
fn family(name: &str, kind: &str, help: &str) -> Family {
    Family { out: format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"), name: name.to_owned() }
}

/// One metric family's lines.
struct Family {
    out: String,
    name: String,
}

impl Family {
    /// `NAME{SUFFIX}{labels} value`.
    fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.out, "{}{suffix}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{name}=\"{}\"", escape(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value: `\`, `"` and newlines escaped, as the format requires.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
