//! A [`Snapshot`] as a page for people (`/`): what Apache's mod_status shows, made clear.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use crate::status::snapshot::Snapshot;

pub(crate) fn render(s: &Snapshot) -> String {
    let mut p = String::with_capacity(4096);
    let uptime = s.now.duration_since(s.started).unwrap_or_default();
    let _ = write!(
        p,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>graced status</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}th{{background:#eee}}\
         .err{{color:#a00}}</style></head><body>\n<h1>graced {}</h1>\n<p>Up {} (since {}). \
         <a href=\"/status.json\">JSON</a> · <a href=\"/metrics\">Prometheus</a></p>\n",
        s.version,
        human(uptime),
        rfc3339(s.started)
    );
    if let Some(g) = s.current() {
        let _ = writeln!(
            p,
            "<h2>Generation {}</h2>\n<p>Began {} ago ({}) by {}.</p>",
            g.id,
            human(s.now.duration_since(g.created).unwrap_or_default()),
            rfc3339(g.created),
            g.origin
        );
    }
    p.push_str("<h2>Requests in flight by generation</h2>\n<table><tr><th>generation</th><th>began</th><th>by</th><th>in flight</th><th></th></tr>\n");
    for g in &s.generations {
        let _ = writeln!(
            p,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            g.id,
            rfc3339(g.created),
            g.origin,
            g.in_flight,
            if g.current { "current" } else { "finishing (G)" }
        );
    }
    p.push_str("</table>\n");
    let c = &s.connections;
    let _ = writeln!(
        p,
        "<h2>Connections</h2>\n<table><tr><th>open</th><th>writing</th><th>reading</th><th>idle</th>\
         <th>HTTP/2</th><th>HTTP/2 streams</th><th>status</th></tr>\n<tr><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>{}",
        c.open(),
        c.writing,
        c.reading,
        c.idle,
        c.http2,
        s.h2_streams,
        c.status,
        if s.draining { "\n<p><b>Draining</b>: a graceful stop began.</p>" } else { "" }
    );
    p.push_str("<h2>Requests</h2>\n<table><tr><th>total</th><th>1xx</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th>bytes</th><th>mean time</th></tr>\n<tr>");
    let _ = write!(p, "<td>{}</td>", s.totals.requests());
    for n in s.totals.by_class {
        let _ = write!(p, "<td>{n}</td>");
    }
    let timed = s.totals.cumulative.last().copied().unwrap_or(0);
    let mean = if timed > 0 {
        format!("{:.3} ms", s.totals.duration_seconds * 1e3 / timed as f64)
    } else {
        "-".into()
    };
    let _ = writeln!(p, "<td>{}</td><td>{mean}</td></tr></table>", s.totals.bytes);
    p.push_str("<p>Counters keep counting across a graceful reload (USR1) and are reset by a hard restart (HUP).</p>\n");
    let _ = writeln!(p, "<h2>Reloads</h2>\n<p>{} done, {} failed.</p>", s.reloads, s.failed_reloads);
    if let Some((at, message)) = &s.report.last_reload_error {
        let _ =
            writeln!(p, "<p class=\"err\">Last failure {}:</p><pre>{}</pre>", rfc3339(*at), escape(message));
    }
    if !s.report.certificates.is_empty() {
        p.push_str("<h2>Certificates</h2>\n<table><tr><th>site</th><th>certificate</th><th>expires</th><th>in</th></tr>\n");
        for cert in &s.report.certificates {
            let left = cert.not_after.duration_since(s.now).map_or_else(|_| "EXPIRED".to_owned(), human);
            let _ = writeln!(
                p,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{left}</td></tr>",
                escape(&cert.site),
                escape(&cert.name),
                rfc3339(cert.not_after)
            );
        }
        p.push_str("</table>\n");
    }
    if s.access_log_dropped > 0 {
        let _ = writeln!(
            p,
            "<p class=\"err\">{} access-log lines dropped: the log's destination did not keep up.</p>",
            s.access_log_dropped
        );
    }
    let _ = writeln!(
        p,
        "<p>TLS: {} failed handshakes, {} timed out, {} plaintext requests.</p>\n</body></html>",
        s.tls_failed_handshakes, s.tls_handshake_timeouts, s.tls_plaintext_requests
    );
    p
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A duration to the second, like "3days 4h 5m 6s".
fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
