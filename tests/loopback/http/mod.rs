//! HTTP behaviour of the real `graced` binary over loopback: RFC 9110 semantics, path safety, limits, logs.
//!
//! Every test starts its own server on a free 127.0.0.1 port (see `graced_testsupport::site::Site`)
//! and speaks raw HTTP/1.1 to it, so what is asserted is exactly what a client sees. The
//! shared helpers below are what the topic modules use.

mod access_log;
pub(crate) mod compression;

mod conditional;
mod demo;
mod faults;
mod files;
mod large;
mod limits;
mod memory;
mod parking;
mod paths;
mod ranges;
pub(crate) mod redbot;
mod requests;
mod smuggling;

use std::io::Read;

use graced_testsupport::http::{Client, Response, exchange};
use graced_testsupport::process::{Server, rss_kib};

/// What `/etc/passwd` starts with on every Linux system; no response may ever contain it.
const PASSWD_MARK: &str = "root:";

/// The seed of the large files' byte pattern.
const SEED: u64 = 0x6772_6163_6564;

/// `METHOD path` with extra header lines, `Connection: close`.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (Response, Vec<u8>) {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    exchange(port, text.as_bytes())
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    request(port, "GET", path, headers).0
}

#[track_caller]
fn must<'a>(r: &'a Response, name: &str) -> &'a str {
    r.header(name).unwrap_or_else(|| panic!("no {name} header in {} response: {:?}", r.status, r.headers))
}

/// The server answers a plain GET / with the site's index.
#[track_caller]
fn assert_serving(server: &Server) {
    let r = server.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "the server no longer serves");
}

/// An error page: the status, an HTML content type, and a small body that says the code.
#[track_caller]
fn assert_small_error_page(r: &Response, status: u16) {
    assert_eq!(r.status, status, "headers {:?}, body {:?}", r.headers, r.text());
    assert!(r.body.len() < 512, "error body is {} bytes", r.body.len());
    assert!(r.text().contains(&status.to_string()), "error body {:?} does not name {status}", r.text());
}

/// Reads a body of `len` bytes from `client` in chunks, checking each against the
/// pattern ([`SEED`]) from `offset`; samples the server's RSS along the way and returns the
/// peak (KiB).
fn read_pattern_body(client: &mut Client, offset: u64, len: u64, pid: i32) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut peak = rss_kib(pid);
    let mut next_sample = 0u64;
    while got < len {
        let want = buf.len().min((len - got) as usize);
        let n = client.reader.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "body ended after {got} of {len} bytes");
        graced_testsupport::pattern::check(SEED, offset + got, &buf[..n]);
        got += n as u64;
        if got >= next_sample {
            peak = peak.max(rss_kib(pid));
            next_sample += 1024 * 1024;
        }
    }
    peak
}
