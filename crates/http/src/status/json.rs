//! A [`Snapshot`] as one JSON object (`/status.json`): the page's content for programs.

use serde_json::{Value, json};

use crate::status::snapshot::{Snapshot, unix_seconds};
use crate::status::tally::BUCKETS;

pub(crate) fn render(s: &Snapshot) -> String {
    let generations: Vec<Value> = s
        .generations
        .iter()
        .map(|g| {
            json!({
                "id": g.id,
                "current": g.current,
                "origin": g.origin,
                "started": unix_seconds(g.created),
                "requests_in_flight": g.in_flight,
            })
        })
        .collect();
    let classes: serde_json::Map<String, Value> =
        s.totals.by_class.iter().enumerate().map(|(i, n)| (format!("{}xx", i + 1), json!(n))).collect();
    let buckets: Vec<Value> = BUCKETS
        .iter()
        .map(|le| json!(le))
        .chain([json!("+Inf")])
        .zip(&s.totals.cumulative)
        .map(|(le, n)| json!({ "le": le, "count": n }))
        .collect();
    let certificates: Vec<Value> = s
        .report
        .certificates
        .iter()
        .map(|c| json!({ "site": c.site, "certificate": c.name, "not_after": unix_seconds(c.not_after) }))
        .collect();
    let c = &s.connections;
    let value = json!({
        "version": s.version,
        "now": unix_seconds(s.now),
        "started": unix_seconds(s.started),
        "uptime_seconds": s.now.duration_since(s.started).map_or(0.0, |d| d.as_secs_f64()),
        "generation": s.current().map_or(0, |g| g.id),
        "generations": generations,
        "connections": {
            "open": c.open(), "writing": c.writing, "reading": c.reading, "idle": c.idle, "http2": c.http2, "status": c.status,
            "draining": s.draining,
        },
        "http2_streams": s.h2_streams,
        "requests": { "total": s.totals.requests(), "by_class": classes },
        "response_bytes": s.totals.bytes,
        "request_duration_seconds": {
            "timed": s.timed,
            "sum": s.totals.duration_seconds,
            "count": s.totals.cumulative.last().copied().unwrap_or(0),
            "buckets": buckets,
        },
        "access_log_dropped_lines": s.access_log_dropped,
        "reloads": s.reloads,
        "reloads_failed": s.failed_reloads,
        "last_reload_error": s.report.last_reload_error.as_ref().map(|(at, message)| {
            json!({ "at": unix_seconds(*at), "message": message })
        }),
        "tls": {
            "handshake_failures": s.tls_failed_handshakes,
            "handshake_timeouts": s.tls_handshake_timeouts,
            "plaintext_requests": s.tls_plaintext_requests,
            "certificates": certificates,
        },
        "counters_note": "kept across graceful reloads (USR1); reset by a hard restart (HUP)",
    });
    let mut text = value.to_string();
    text.push('\n');
    text
}
