//! A graceful stop and keep-alive connections: idle ones closed after the grace, busy ones answered in full.

use std::time::{Duration, Instant};

use graced_testsupport::http::Client;
use graced_testsupport::process::code;
use graced_testsupport::site::Site;

use super::{KEEP_ALIVE_GET, T, hello, start_notified, try_get};
use crate::GRACED;

#[test]
fn graceful_stop_closes_idle_keep_alive_connections_after_the_grace_without_losing_a_request() {
    graceful_stop_with_connections_idle_for(Duration::from_millis(600));
}

/// The same, with the connections idle long enough to be parked (hyper's state taken down)
/// when the stop begins: the grace, the last request and the count hold the same.
#[test]
fn graceful_stop_closes_parked_keep_alive_connections_after_the_grace_without_losing_a_request() {
    graceful_stop_with_connections_idle_for(Duration::from_millis(1800));
}

fn graceful_stop_with_connections_idle_for(idle: Duration) {
    let site = Site::new(GRACED);
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let mut asks = server.connect();
    let mut silent = server.connect();
    hello(&asks.get("/"));
    hello(&silent.get("/"));
    // Both idle longer than the drain grace before the stop begins.
    std::thread::sleep(idle);

    let sent = Instant::now();
    server.signal(libc::SIGWINCH);
    assert_eq!(notes.next_event(T)[0], "STOPPING=1");
    std::thread::sleep(Duration::from_millis(100).saturating_sub(sent.elapsed()));
    // A request 100 ms into the stop, within the grace: answered in full, then closed.
    let answer = try_get(&mut asks, KEEP_ALIVE_GET);
    let answer =
        answer.unwrap_or_else(|e| panic!("a request 100 ms after WINCH on an idle connection was lost: {e}"));
    hello(&answer);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(asks.closed_within(T), "the connection stays open after Connection: close");

    // The one that sends nothing is closed after the grace, not before.
    assert!(silent.closed_within(T), "the idle connection was not closed");
    let closed_after = sent.elapsed();
    assert!(
        closed_after >= Duration::from_millis(200),
        "closed {closed_after:?} after WINCH, before the grace"
    );
    assert!(closed_after < Duration::from_secs(2), "closed {closed_after:?} after WINCH");

    assert_eq!(code(server.wait_exit(T)), 0);
    let all = notes.wait_for_all("STATUS=graceful stop complete", T);
    assert_eq!(all.last().unwrap(), &["STATUS=graceful stop complete; 0 connections aborted"]);
}

#[test]
fn graceful_stop_answers_busy_keep_alive_clients_in_full_with_connection_close() {
    let site = Site::new(GRACED);
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let port = site.port;

    // A client in a tight request loop on one connection, until the server says close.
    let looping = std::thread::spawn(move || {
        let mut c = Client::connect(port);
        let mut ok = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && ok < 200_000 {
            let r = try_get(&mut c, KEEP_ALIVE_GET).map_err(|e| format!("request {ok} failed: {e}"))?;
            if r.status != 200 || r.text() != "hello\n" {
                return Err(format!("bad response {r:?}"));
            }
            ok += 1;
            if r.header("connection") == Some("close") {
                return if c.closed_within(T) { Ok(ok) } else { Err("open after Connection: close".into()) };
            }
        }
        Err(format!("no Connection: close after {ok} requests"))
    });
    let mut c = server.connect();
    hello(&c.get("/"));
    std::thread::sleep(Duration::from_millis(100));
    hello(&c.get("/"));

    server.signal(libc::SIGWINCH);
    assert_eq!(notes.next_event(T)[0], "STOPPING=1");
    // The request right after the stop began: a full response that says close.
    let r = try_get(&mut c, KEEP_ALIVE_GET).unwrap_or_else(|e| panic!("request right after WINCH lost: {e}"));
    hello(&r);
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "a request sent after STOPPING=1 arrived was answered as if no stop had begun"
    );
    assert!(c.closed_within(T));

    let looped = looping.join().unwrap();
    let n = looped.unwrap_or_else(|e| panic!("busy keep-alive client: {e}"));
    assert!(n > 1);
    assert_eq!(code(server.wait_exit(T)), 0);
}
