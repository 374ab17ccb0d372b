//! The limits per stream and per connection: the header list, Rapid Reset
//! (`max_pending_resets`), `keepalive_timeout`, `header_timeout` and `send_timeout`.

use std::time::{Duration, Instant};

use super::frames::{END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, HEADERS, NO_ERROR, RST_STREAM};
use super::raw::{self, Raw};
use super::{H2, INDEX, ONE_MIB, header, over_tls, pattern, read_some, setup, status_when};

/// RST_STREAM CANCEL (RFC 9113 §7).
const CANCEL: u32 = 0x8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_list_beyond_the_limits_is_refused_and_the_server_serves_on() {
    // The defaults: the header list may hold max_request_line + max_header_bytes = 24 KiB.
    let setup = setup(|_| {});
    let h2 = over_tls(&setup).await;
    // Within the list size but over max_header_bytes: the handler's 431.
    let (head, _) = h2.open("/", &[("x-filler", "a".repeat(20_000))]).await.unwrap();
    assert_eq!(head.status, 431, "over max_header_bytes");
    assert!(header(&head, "server").is_some_and(|s| s.starts_with("graced/")), "the handler's: {head:?}");
    // Beyond the list size (max_request_line + max_header_bytes), as one field or as many:
    // h2 answers 431 itself and refuses the stream.
    let many: Vec<(&str, String)> = (0..40).map(|_| ("x-many", "b".repeat(1_000))).collect();
    for headers in [vec![("x-filler", "a".repeat(30_000))], many] {
        match h2.open("/", &headers).await {
            // h2's own answer, before any handler ran: no `server` header.
            Ok((head, _)) => assert!(head.status == 431 && head.headers.is_empty(), "{head:?}"),
            Err(err) => assert!(err.is_reset() && err.is_remote(), "{err}"),
        }
    }
    // The connection serves on, and so does the server.
    assert_eq!(h2.get("/").await.1, INDEX);
    assert_eq!(h2.log.lock().unwrap().goaways(), []);
    assert_eq!(over_tls(&setup).await.get("/").await.1, INDEX);
}

/// Opens `n` streams and resets each at once (HEADERS, RST_STREAM, HEADERS, …: Rapid
/// Reset); stops early when the client may open no more. Returns how many it opened.
async fn burst(h2: &H2, n: usize) -> usize {
    let mut client = h2.client.clone();
    for i in 0..n {
        client = match client.ready().await {
            Ok(client) => client,
            Err(_) => return i,
        };
        let request = http::Request::get("https://localhost/one.bin").body(()).unwrap();
        match client.send_request(request, true) {
            Ok((_, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(_) => return i,
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_burst_closes_that_connection_and_others_are_served() {
    let setup = setup(|config| config.http2.max_pending_resets = 10);
    let mut h2 = over_tls(&setup).await;
    assert_eq!(h2.get("/").await.1, INDEX);
    let opened = burst(&h2, 300).await;
    let ended = h2.ended(Duration::from_secs(5)).await;
    let err = ended.expect("the connection was closed").expect_err("with an error");
    let goaways = h2.log.lock().unwrap().goaways();
    // The server closes with a lingering close, so a client still writing its burst gets
    // no EPIPE/ECONNRESET: it reads the GOAWAY.
    assert!(err.is_go_away() && err.is_remote(), "{err}");
    assert_eq!(err.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM));
    assert_eq!(goaways.iter().map(|g| g.1).collect::<Vec<_>>(), [ENHANCE_YOUR_CALM], "{goaways:?}");
    // (The client sends no frame for some of the streams it cancels before they went out, so
    // the last stream id says little here; the frame-level test below counts exactly.)
    println!("Rapid Reset (h2 client): {opened} streams opened and cancelled; GOAWAY {goaways:?}");

    // Other connections are served meanwhile, and the abusive one is gone.
    let other = over_tls(&setup).await;
    assert_eq!(other.get("/").await.1, INDEX);
    let status = status_when(&setup.server, |s| s.h2_connections == 1 && s.h2_streams == 0).await;
    assert_eq!((status.h2_connections, status.h2_streams), (1, 0), "{status:?}");
}

/// `n` streams from `from` on, each opened (HEADERS) and reset (RST_STREAM CANCEL) at once,
/// all in one write.
fn reset_pairs(from: u32, n: usize) -> Vec<u8> {
    let mut burst = Vec::new();
    for id in (from..).step_by(2).take(n) {
        burst.extend(raw::frame(HEADERS, END_STREAM | END_HEADERS, id, &raw::get_block("/one.bin")));
        burst.extend(raw::frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    burst
}

/// Frame level: `max_pending_resets` is what the server allows, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_takes_max_pending_resets_and_not_one_stream_more() {
    let setup = setup(|config| config.http2.max_pending_resets = 10);
    let mut raw = Raw::connect(setup.h2c, 65_535).await;
    // Fewer than the limit: nothing happens, and the next stream is served.
    assert!(raw.write(&reset_pairs(1, 8)).await);
    raw.get(17, "/").await;
    let mut served = false;
    while let Some(frame) = raw.next(Duration::from_millis(500)).await {
        assert_eq!(frame.goaway(), None);
        served |= frame.kind == HEADERS && frame.stream == 17;
    }
    assert!(served, "stream 17 was answered");
    // A burst: the 11th stream reset before the server took it is one too many.
    let _ = raw.write(&reset_pairs(19, 300)).await;
    let mut goaways = Vec::new();
    while let Some(frame) = raw.next(Duration::from_secs(3)).await {
        goaways.extend(frame.goaway());
    }
    assert_eq!(goaways, [(19 + 2 * 10, ENHANCE_YOUR_CALM)], "GOAWAY at the 11th stream of the burst");
    assert_eq!(over_tls(&setup).await.get("/").await.1, INDEX, "others are served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_timeout_closes_a_connection_without_streams_with_goaway_only() {
    let setup = setup(|config| config.limits.keepalive_timeout = Duration::from_millis(500));
    let mut h2 = over_tls(&setup).await;
    // A download that takes twice keepalive_timeout is not cut: a stream is open.
    let started = Instant::now();
    let (_, mut body) = h2.open("/one.bin", &[]).await.unwrap();
    let mut got = Vec::new();
    while got.len() < ONE_MIB {
        got.extend(read_some(&mut body, 1).await);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(1), "the download took {:?}", started.elapsed());
    assert!(got == pattern(ONE_MIB), "{} bytes: the body differs", got.len());
    assert_eq!(h2.log.lock().unwrap().goaways(), [], "no GOAWAY while a stream was open");

    // Without streams, the connection is closed after keepalive_timeout: GOAWAY, then the end.
    let idle = Instant::now();
    let ended = h2.ended(Duration::from_secs(5)).await;
    let waited = idle.elapsed();
    assert!(matches!(ended, Some(Ok(()))), "a clean close: {ended:?}");
    // The server counts idle time from when the last DATA frame left the body, a little
    // before this client, reading slowly, has read it: half the timeout is the margin.
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    // GOAWAY(2^31-1) first; the h2 client, with no stream open, closes on it before the
    // server's second GOAWAY, which would name stream 1.
    let goaways = h2.log.lock().unwrap().goaways();
    assert!(!goaways.is_empty() && goaways.iter().all(|g| g.1 == NO_ERROR), "GOAWAY(NO_ERROR): {goaways:?}");
    let status = status_when(&setup.server, |s| s.connections == 0).await;
    assert_eq!(status.h2_connections, 0, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_timeout_closes_a_connection_that_opens_no_stream() {
    let setup = setup(|config| config.limits.header_timeout = Duration::from_millis(300));
    let mut h2 = over_tls(&setup).await;
    let start = Instant::now();
    // The client only answers the server's SETTINGS (and PINGs); it never opens a stream.
    let ended = h2.ended(Duration::from_secs(5)).await;
    let waited = start.elapsed();
    assert!(ended.is_some(), "the connection was closed");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    // keepalive_timeout (15 s) did not do it.
    assert!(waited < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_timeout_closes_a_connection_whose_stream_stalls() {
    let setup = setup(|config| config.limits.send_timeout = Duration::from_millis(500));
    let mut h2 = over_tls(&setup).await;
    let start = Instant::now();
    let (_, _stalled) = h2.open("/big.bin", &[]).await.unwrap();
    // The client never reads: the window shuts, the stream makes no progress.
    let ended = h2.ended(Duration::from_secs(5)).await;
    let waited = start.elapsed();
    assert!(ended.is_some(), "the connection was closed");
    // The server counts idle time from when the last DATA frame left the body, a little
    // before this client, reading slowly, has read it: half the timeout is the margin.
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    let status = status_when(&setup.server, |s| s.h2_streams == 0 && s.h2_connections == 0).await;
    assert_eq!((status.h2_connections, status.h2_streams), (0, 0), "{status:?}");
}
