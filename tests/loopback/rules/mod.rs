//! A site's rules on the real binary over loopback (issue 20 parts 2–6 and 8): headers by
//! path, redirects and host canonicalisation, error pages, clean URLs and the SPA fallback,
//! directory listings, IP allow/deny and basic auth, `graced -t` on bad rules, REDbot on a
//! redirect and an error page, and reloads between rule sets under load.

mod access;
mod config;
mod errors;
mod headers;
mod http2;
mod listing;
mod redbot;
mod redirects;
mod reload;
mod tryfiles;

use graced_testsupport::http::{Response, exchange};

/// `METHOD path` with `Host: host` and extra header lines, `Connection: close`.
fn send(port: u16, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    exchange(port, text.as_bytes()).0
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    send(port, "GET", "localhost", path, headers)
}

fn head(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    send(port, "HEAD", "localhost", path, headers)
}

#[track_caller]
fn must<'a>(r: &'a Response, name: &str) -> &'a str {
    r.header(name).unwrap_or_else(|| panic!("no {name} header in {} response: {:?}", r.status, r.headers))
}

/// Every value of header `name` (lower-case), in order.
fn all<'a>(r: &'a Response, name: &str) -> Vec<&'a str> {
    r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}
