//! One HTTP/2 connection: hyper serves its streams; this task carries out the orders — reload, hard restart, graceful stop — per stream, and the limits.
//!
//! * A reload changes nothing here: each stream takes the generation current when it
//!   starts, as a request on a keep-alive HTTP/1.1 connection does.
//! * A hard restart (HUP) resets the streams in flight (their bodies end in an error, on
//!   which hyper sends RST_STREAM) and keeps the connection; its next streams take the new
//!   generation.
//! * A graceful stop sends GOAWAY with the last stream id the server took (hyper's
//!   graceful shutdown); the open streams finish, then the connection closes. A stop
//!   closes it at once.
//! * Limits: a connection whose first HEADERS does not arrive within `header_timeout`, or
//!   with no stream for `keepalive_timeout`, is closed with GOAWAY; one whose streams made
//!   no write progress for `send_timeout` is closed. hyper/h2 enforce the protocol's own
//!   limits, configured from `[http2]` and `[limits]` (concurrent streams, header list
//!   size, pending and error resets — Rapid Reset — and the h2 crate's CONTINUATION and
//!   empty-frame caps).
//! * Bodies are always read into memory a chunk at a time (no `sendfile` through frames);
//!   the frames of a turn's responses leave in one write (`batch`).
//! * A connection that ends in order (the client left, GOAWAY, an idle limit) is closed
//!   with a lingering close (`linger`), so the client's last frames cause no reset.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::access_log::Pending;
use crate::batch::{Batched, FlushOrder, poll_batched};
use crate::body::Guards;
use crate::connection;
use crate::generation::GenerationGuard;
use crate::handler;
use crate::linger::{LINGER_MAX, Linger, delivered};
use crate::listener::Stream;
use crate::meter::{Meter, MeteredIo, RequestGuard, Transport, now_us};
use crate::sendfile::SendfileQueue;
use crate::shared::{Order, Shared, Subscription};
use crate::stream::StreamGuard;

/// How long closing a connection may take to send its GOAWAY.
const GOAWAY_WAIT: Duration = Duration::from_secs(1);

/// How the connection is closed once hyper has let go of it.
enum Ending {
    /// Gently: the client's last frames are read (see `linger`), so the close is no reset.
    Linger,
    /// At once: a stop, or a client that broke a limit.
    Close,
}

/// What woke the connection's task.
enum Step {
    Done(Result<(), hyper::Error>),
    Orders,
    Timer,
}

/// Serves HTTP/2 on `stream` until the client leaves, a limit closes it, or a stop.
/// `tls`: the connection came over HTTPS (HSTS; no plaintext redirect).
pub(crate) async fn serve<S: Transport>(
    stream: S,
    remote: String,
    shared: Arc<Shared>,
    mut orders: Subscription,
    tls: bool,
) {
    shared.h2_connections.fetch_add(1, Ordering::Relaxed);
    let _open = OpenConnection(shared.clone());
    let tls_version = stream.tls_version();
    let generation = shared.current();
    let (limits, settings) = (generation.config.limits.clone(), generation.config.http2.clone());
    drop(generation);
    let meter = Arc::new(Meter::new());
    let restarts = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let service = {
        let (meter, restarts, started, shared) =
            (meter.clone(), restarts.clone(), started.clone(), shared.clone());
        service_fn(move |req: Request<Incoming>| {
            started.store(true, Ordering::Relaxed);
            let generation = shared.current();
            let timed_from = GenerationGuard::times(&generation).then(Instant::now);
            let mut response = handler::handle(&req, &generation, &shared.counters, &remote, tls, true);
            let pending =
                response.extensions_mut().remove::<Pending>().map(|p| p.with_tls_version(tls_version));
            let guards = Guards::for_stream(
                RequestGuard::new(meter.clone()),
                GenerationGuard::new(generation, timed_from, pending),
                StreamGuard::new(shared.clone(), restarts.clone()),
            );
            std::future::ready(Ok::<_, Infallible>(response.map(|body| body.with_guards(guards))))
        })
    };
    let mut builder = http2::Builder::new(FirstPollInline);
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_pending_accept_reset_streams(settings.max_pending_resets)
        .max_local_error_reset_streams(settings.max_error_resets)
        // `:path` and the other fields, as `max_request_line` + `max_header_bytes` bound an
        // HTTP/1.1 head (the handler checks each again and answers 414 / 431).
        .max_header_list_size((limits.max_request_line + limits.max_header_bytes) as u32);
    let linger = Linger::keep(stream.socket());
    // Bodies never take the sendfile path here (`copy`): the queue stays empty.
    let io = MeteredIo::new(stream, meter.clone(), Arc::new(SendfileQueue::default()));
    let flush = Arc::new(FlushOrder::default());
    let io = Batched::new(io, flush.clone());
    // Boxed, so that it can be dropped (closing hyper's descriptor) before the lingering close.
    let mut conn = Box::pin(builder.serve_connection(TokioIo::new(io), service));

    let (keepalive, header, send) = (limits.keepalive_timeout, limits.header_timeout, limits.send_timeout);
    let opened = now_us();
    let timer = tokio::time::sleep(header.min(keepalive).min(send));
    tokio::pin!(timer);
    let mut going_away = false;
    let ending = loop {
        let step = {
            let mut waiter = orders.waiter();
            let changed = waiter.changed();
            tokio::pin!(changed);
            std::future::poll_fn(|cx| {
                if let std::task::Poll::Ready(result) = poll_batched(conn.as_mut(), &flush, cx) {
                    return std::task::Poll::Ready(Step::Done(result));
                }
                if orders.has_news() || changed.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(Step::Orders);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(Step::Timer);
                }
                std::task::Poll::Pending
            })
            .await
        };
        match step {
            Step::Done(result) => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "HTTP/2 connection ended with an error");
                }
                break Ending::Linger;
            }
            Step::Orders => match orders.take(meter.busy()) {
                Order::Abort => break Ending::Close,
                Order::Restart => {
                    restarts.fetch_add(1, Ordering::AcqRel);
                }
                Order::Drain => {
                    conn.as_mut().graceful_shutdown();
                    going_away = true;
                }
                Order::None => {}
            },
            Step::Timer => {
                let now = now_us();
                let us = |d: Duration| d.as_micros() as u64;
                // The earliest moment a limit could expire, given the state now.
                let next = if meter.busy() {
                    let deadline = meter.last_progress() + us(send);
                    if now >= deadline {
                        tracing::info!(
                            "closing an HTTP/2 connection: its streams made no progress for send_timeout"
                        );
                        break Ending::Close;
                    }
                    // Checked again within keepalive_timeout too: the streams may all end
                    // meanwhile, and the idle time counts from then.
                    deadline.min(now + us(keepalive))
                } else {
                    let first = (!started.load(Ordering::Relaxed)).then(|| opened + us(header));
                    if first.is_some_and(|deadline| now >= deadline) {
                        tracing::debug!("closing an HTTP/2 connection: no request within header_timeout");
                        break Ending::Close;
                    }
                    let idle = meter.idle_since().max(opened) + us(keepalive);
                    if !going_away && now >= idle {
                        conn.as_mut().graceful_shutdown();
                        // GOAWAY goes out; the connection ends once the client has it.
                        flush.always();
                        let _ = tokio::time::timeout(GOAWAY_WAIT, conn.as_mut()).await;
                        break Ending::Linger;
                    }
                    // Going away: hyper closes once the streams are done; no idle limit.
                    let idle = if going_away { u64::MAX } else { idle };
                    // A stream may start and end before then: look again no later than
                    // the shortest limit from now.
                    idle.min(first.unwrap_or(u64::MAX)).min(now + us(header.min(keepalive).min(send)))
                };
                let wait = Duration::from_micros(next.saturating_sub(now).max(1000));
                timer.as_mut().reset(tokio::time::Instant::now() + wait);
            }
        }
    };
    drop(conn);
    drop(_open);
    if let (Ending::Linger, Some(linger)) = (ending, linger) {
        if shared.is_draining() {
            delivered(linger.socket(), send).await;
        }
        linger.close(LINGER_MAX).await;
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4): what a client with prior knowledge sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The longest pause between two looks at a preface that arrives in parts.
const PREFACE_POLL_MAX: Duration = Duration::from_millis(100);

/// A connection on a plain listener with `h2c = true`: HTTP/2 if it opens with the
/// preface, else HTTP/1.1 on its usual path (sendfile and all). Nothing is read to decide.
pub(crate) async fn serve_h2c_or_http1(
    stream: Stream,
    remote: String,
    shared: Arc<Shared>,
    orders: Subscription,
) {
    let header_timeout = shared.current().config.limits.header_timeout;
    let h2 = tokio::time::timeout(header_timeout, starts_with_preface(&stream)).await.unwrap_or(false);
    if h2 {
        Box::pin(serve(stream, remote, shared, orders, false)).await
    } else {
        Box::pin(connection::serve(stream, remote, shared, orders)).await
    }
}

/// Whether the first bytes are the preface (peeked: they stay for whoever serves).
async fn starts_with_preface(stream: &Stream) -> bool {
    let mut buf = [0u8; PREFACE.len()];
    let mut wait = Duration::from_millis(1);
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if buf[..n] != PREFACE[..n] {
            return false;
        }
        if n == PREFACE.len() {
            return true;
        }
        // A part of the preface so far: look again shortly. (The peeked bytes keep the socket
        // readable, so there is nothing to wait on.) The pause doubles, so a client that
        // sends a part and stalls, or leaves, costs ~10 wake-ups a second, not 1000.
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(PREFACE_POLL_MAX);
    }
}

/// hyper's executor for stream tasks: a stream's task is polled once right where hyper
/// hands it over — inside the connection's own poll — and spawned only if it is not done.
/// A static file's response is ready at once, so its HEADERS and DATA are queued before
/// the connection flushes, and the responses to the streams a client sent together leave
/// in one write (nginx batches the same way) instead of one TLS record and `writev` per
/// stream, with a task spawned, scheduled and woken across threads for each.
/// (Polling with a no-op waker first is sound: a future that returns `Pending` is polled
/// again at once by the spawned task, with its real waker.)
#[derive(Clone, Copy)]
struct FirstPollInline;

impl<F> hyper::rt::Executor<F> for FirstPollInline
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        let mut future = Box::pin(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if future.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(future);
        }
    }
}

/// Counts the connection in the gauge while it is open.
struct OpenConnection(Arc<Shared>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.h2_connections.fetch_sub(1, Ordering::Relaxed);
    }
}
