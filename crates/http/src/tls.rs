//! A connection on a TLS listener: what its first byte says, the handshake under
//! `[tls] handshake_timeout`, then the same serving as a plain connection (`connection`).
//!
//! * The handshake takes the `rustls::ServerConfig` of the generation current when the
//!   connection is accepted (certificates by SNI, protocols, session resumption — all the
//!   caller's); the requests that follow take the current generation each, as on a plain
//!   connection, so a reload never closes a TLS connection.
//! * The first byte is peeked before anything is read. A TLS handshake record (`0x16`) goes
//!   to rustls. An upper-case letter is a plaintext HTTP request line (`GET / HTTP/1.1`):
//!   it gets a readable `400` page over plaintext saying that the port speaks HTTPS, and
//!   the connection is closed (nginx's 497). Anything else is closed at once.
//! * Nothing that a client can cause here is logged above debug level: garbage, broken or
//!   truncated ClientHellos, failed handshakes and timeouts are counted
//!   ([`Counters`](crate::generation::Counters)`::tls_*`) instead.
//! * A stop aborts handshakes in progress; a graceful stop lets them finish (the
//!   connection then starts draining like any other).
//! * Between the handshake and the first request the connection is parked without any
//!   HTTP state (see [`park`]): an idle TLS connection holds ~7 KiB, not ~24.
//! * ALPN: the protocol the `ServerConfig` offered and the client chose: `h2` goes to
//!   `http2`, `http/1.1` (or none) to `connection`.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::connection;
use crate::http2;
use crate::listener::Stream;
use crate::shared::{Shared, Subscription};

/// The first byte of a TLS handshake record (RFC 8446 §5.1, `ContentType.handshake`).
const HANDSHAKE_RECORD: u8 = 0x16;

/// How long the plaintext answer may take: reading the request, and lingering after the
/// answer so that closing does not reset the connection under it (each).
const PLAINTEXT_WAIT: Duration = Duration::from_secs(1);

/// How long closing an idle connection may take to send its `close_notify`.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(1);

/// The most request bytes read around a plaintext answer.
const PLAINTEXT_READ_MAX: usize = 64 * 1024;

const PLAINTEXT_PAGE: &str = "<!doctype html>\n<html><head><title>400 Bad Request</title></head>\
<body><h1>400 Bad Request</h1><p>This port speaks HTTPS: the request was sent as plain HTTP. \
Use an <code>https://</code> address.</p></body></html>\n";

/// What the first byte on a TLS port says.
#[derive(Debug, PartialEq, Eq)]
enum First {
    Handshake,
    Plaintext,
    Garbage(u8),
    /// The client closed (or reset) before sending anything.
    Closed,
}

fn classify(byte: u8) -> First {
    match byte {
        HANDSHAKE_RECORD => First::Handshake,
        b'A'..=b'Z' => First::Plaintext,
        other => First::Garbage(other),
    }
}

/// Serves a connection accepted on a TLS listener: handshake, park until the first
/// request, then `connection::serve`.
pub(crate) async fn serve(stream: Stream, remote: String, shared: Arc<Shared>, orders: Subscription) {
    // Each phase's state is boxed so that a parked connection's task holds only pointers:
    // the handshake's state is freed when it is done, hyper's allocated at the first request.
    let Some((mut tls, keepalive)) = Box::pin(handshake(stream, &remote, &shared, &orders)).await else {
        return;
    };
    let h2 = match tls.get_ref().1.alpn_protocol() {
        None | Some(b"http/1.1") => false,
        Some(b"h2") => true,
        Some(other) => {
            // rustls only agrees on what the generation's ServerConfig offered.
            tracing::debug!(%remote, alpn = %String::from_utf8_lossy(other), "ALPN protocol not served: closed");
            return;
        }
    };
    if park(&mut tls, &orders, keepalive).await == Unpark::Close {
        return;
    }
    // Out of its box in a block of its own: a box moved out of is freed only when its
    // binding ends, which for `tls` would be the end of the connection (1.2 KiB each).
    let tls = {
        let boxed = tls;
        *boxed
    };
    if h2 {
        Box::pin(http2::serve(tls, remote, shared, orders, true)).await
    } else {
        Box::pin(connection::serve(tls, remote, shared, orders)).await
    }
}

/// The first byte, then the TLS handshake under `handshake_timeout`: the session and the
/// connection's `keepalive_timeout`, or `None` when the connection is over (answered,
/// refused, failed, timed out or stopped; counted).
async fn handshake(
    stream: Stream,
    remote: &str,
    shared: &Shared,
    orders: &Subscription,
) -> Option<(Box<TlsStream<Stream>>, Duration)> {
    let counters = &shared.counters;
    let generation = shared.current();
    let Some(config) = generation.tls.clone() else {
        tracing::debug!(
            "a connection on a TLS listener, but the generation has no TLS configuration: closed"
        );
        counters.tls_failed_handshakes.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let deadline = Instant::now() + generation.config.tls.handshake_timeout;
    let keepalive = generation.config.limits.keepalive_timeout;
    drop(generation);

    let first = tokio::select! {
        biased;
        () = orders.stopped() => return None,
        first = tokio::time::timeout_at(deadline, peek_first(&stream)) => first,
    };
    match first {
        Err(_elapsed) => {
            tracing::debug!(%remote, "a client on a TLS port sent nothing within handshake_timeout");
            counters.tls_handshake_timeouts.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Ok(First::Handshake) => {}
        Ok(First::Plaintext) => {
            tracing::debug!(%remote, "plaintext HTTP on a TLS port: answering 400");
            counters.tls_plaintext_requests.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                biased;
                () = orders.stopped() => {}
                () = answer_plaintext(stream) => {}
            }
            return None;
        }
        Ok(other) => {
            tracing::debug!(%remote, first = ?other, "not a TLS handshake on a TLS port: closed");
            counters.tls_failed_handshakes.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    }

    let handshake = tokio::select! {
        biased;
        () = orders.stopped() => return None,
        handshake = tokio::time::timeout_at(deadline, TlsAcceptor::from(config).accept(stream)) => handshake,
    };
    match handshake {
        Ok(Ok(tls)) => Some((Box::new(tls), keepalive)),
        Ok(Err(err)) => {
            tracing::debug!(%remote, error = %err, "TLS handshake failed");
            counters.tls_failed_handshakes.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(_elapsed) => {
            tracing::debug!(%remote, "TLS handshake did not finish within handshake_timeout");
            counters.tls_handshake_timeouts.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}
/// How a connection leaves [`park`].
#[derive(Debug, PartialEq, Eq)]
enum Unpark {
    /// Hand it to `connection::serve`: bytes arrived, the client left, or orders came
    /// (which `connection::serve` carries out, as for any connection).
    Serve,
    /// Idle for `keepalive_timeout` with nothing sent: closed here, with `close_notify`.
    Close,
}

/// Holds a connection whose handshake is done, with no HTTP state, until the client
/// sends its first request: hyper's connection and buffers (~9 KiB) are allocated only
/// then, so an idle TLS connection costs its socket, the rustls session and this task
/// (nginx releases its buffers on idle connections for the same reason). Records that
/// came with the handshake's last flight are already decrypted: then there is no wait.
async fn park(tls: &mut TlsStream<Stream>, orders: &Subscription, keepalive: Duration) -> Unpark {
    let session = &mut tls.get_mut().1;
    let pending = session.process_new_packets().map_or(true, |io| io.plaintext_bytes_to_read() > 0);
    if pending || session.wants_write() || orders.has_news() {
        return Unpark::Serve;
    }
    let mut waiter = orders.waiter();
    let mut byte = [0u8; 1];
    tokio::select! {
        _ = tls.get_ref().0.peek(&mut byte) => return Unpark::Serve,
        _ = waiter.changed() => return Unpark::Serve,
        () = tokio::time::sleep(keepalive) => {}
    }
    // A request that arrived this very moment is served, not closed on.
    let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
    if !matches!(rustix::net::recv(tls.get_ref().0.fd(), &mut byte, flags), Err(rustix::io::Errno::AGAIN)) {
        return Unpark::Serve;
    }
    tracing::debug!("the connection was idle for keepalive_timeout before its first request: closed");
    let _ = tokio::time::timeout(CLOSE_NOTIFY_WAIT, tls.shutdown()).await;
    Unpark::Close
}

/// What the connection's first byte says, once there is one.
async fn peek_first(stream: &Stream) -> First {
    let mut byte = [0u8; 1];
    match stream.peek(&mut byte).await {
        Ok(1) => classify(byte[0]),
        _ => First::Closed,
    }
}

/// Answers a plaintext request on a TLS port with a 400 page, over plaintext, and closes.
async fn answer_plaintext(mut stream: Stream) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut read = 0;
    // The request head, or what arrives of it: the answer does not depend on it.
    let _ = tokio::time::timeout(PLAINTEXT_WAIT, async {
        while read < PLAINTEXT_READ_MAX {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    read += n;
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\nServer: graced/{}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        PLAINTEXT_PAGE.len()
    );
    let written: io::Result<()> = tokio::time::timeout(PLAINTEXT_WAIT, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(PLAINTEXT_PAGE.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or_else(|elapsed| Err(elapsed.into()));
    if written.is_err() {
        return;
    }
    // Linger: read until the client closes, so that unread bytes do not make the close a
    // reset that could destroy the answer in flight.
    let _ = tokio::time::timeout(PLAINTEXT_WAIT, async {
        while read < 2 * PLAINTEXT_READ_MAX {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_tells_tls_from_plaintext_and_garbage() {
        assert_eq!(classify(0x16), First::Handshake);
        assert_eq!(classify(b'G'), First::Plaintext);
        assert_eq!(classify(b'P'), First::Plaintext);
        assert_eq!(classify(0x80), First::Garbage(0x80), "an SSLv2 ClientHello");
        assert_eq!(classify(b'g'), First::Garbage(b'g'));
        assert_eq!(classify(0x15), First::Garbage(0x15), "an alert first");
    }
}
