//! Lifecycle tests against the real binary: exact sd_notify datagrams and HTTP behaviour across USR1, HUP, WINCH, TERM and `-k`.
//!
//! The helpers here start graced under a fake `NOTIFY_SOCKET` and assert the datagrams
//! of a start and a reload; the topic modules use them.

mod control;
mod graceful_stop;
mod in_flight;
mod notify;
mod storm;
mod upgrade;

use std::io::Write;
use std::time::Duration;

use graced_testsupport::http::{Client, Response};
use graced_testsupport::notify::{Notes, assert_datagram};
use graced_testsupport::process::{Server, StderrLog, monotonic_usec};
use graced_testsupport::site::Site;

const T: Duration = Duration::from_secs(5);
const BIG: usize = 16 * 1024 * 1024;

/// Starts graced with a fake NOTIFY_SOCKET (plus `env`) and asserts the start datagram.
fn start_notified(site: &Site, env: &[(&str, &str)]) -> (Notes, Server, StderrLog) {
    let notes = Notes::new();
    let socket = notes.env_value();
    let mut all = vec![("NOTIFY_SOCKET", socket.as_str())];
    all.extend_from_slice(env);
    let mut server = site.spawn(&all);
    let stderr = StderrLog::capture(&mut server);
    let ready = notes.next_event(Duration::from_secs(10));
    assert_datagram(&ready, &["READY=1", "STATUS=generation 1; 0 connections; 0 requests served"]);
    (notes, server, stderr)
}

/// Sends `signal` and asserts the RELOADING=1 datagram, with MONOTONIC_USEC inside the
/// window [just before the signal, just after the datagram arrived].
fn signal_reload(server: &Server, notes: &Notes, signal: i32, status: &str) {
    let before = monotonic_usec();
    server.signal(signal);
    let lines = notes.next_event(T);
    let after = monotonic_usec();
    let caps = assert_datagram(&lines, &["RELOADING=1", "MONOTONIC_USEC={n}", status]);
    let stamp: u64 = caps[0].parse().unwrap();
    assert!(
        (before..=after).contains(&stamp),
        "MONOTONIC_USEC={stamp} is outside the test's window [{before}, {after}]"
    );
}

fn config_name(site: &Site) -> String {
    site.config_path().display().to_string()
}

fn hello(response: &Response) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "hello\n");
}

/// One request on `client` without panicking: the response or why there was none.
fn try_get(client: &mut Client, raw: &str) -> Result<Response, String> {
    client.stream().write_all(raw.as_bytes()).map_err(|e| format!("write: {e}"))?;
    client.try_read_response(false).map_err(|e| format!("read: {e}"))
}

const KEEP_ALIVE_GET: &str = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
