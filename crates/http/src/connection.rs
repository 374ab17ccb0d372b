//! One client connection: hyper serves it, this task decides when it may be closed.
//!
//! A connection is closed by graced only in these cases:
//! * it has been idle (no request in flight, no request bytes read or waiting) for
//!   `keepalive_timeout` — or, once a graceful stop began, for [`DRAIN_IDLE_GRACE`](crate::limits::DRAIN_IDLE_GRACE);
//! * a request head has been arriving for `header_timeout` without completing (slowloris);
//! * a response has made no write progress for `send_timeout` (a reader that stopped);
//! * a hard restart aborts it while a response is in flight, or a stop aborts it.
//!
//! Before closing an idle connection it checks, with `MSG_PEEK`, that no request
//! bytes are waiting: a keep-alive client may have sent its next request a moment
//! ago, and closing on it would lose that request. During a graceful stop every
//! response built carries `Connection: close`, so busy keep-alive clients learn of
//! the stop from the response itself. A reload never closes anything, and neither
//! does a hard restart close a connection between requests: its next request simply
//! takes the new generation.
//!
//! The hot path costs nothing here: a request touches a few atomics and no timer.
//! One timer per connection is armed lazily — at the earliest moment any limit could
//! expire — and when it fires the limits are checked against the meter and the
//! timer re-armed (see `limits`); on a busy keep-alive connection that is about once a
//! second. Aborts and the graceful stop reach the connection as orders through its
//! [`Subscription`] (see `shared`).
//!
//! A connection idle for `PARK_AFTER` (a second) is parked: hyper's state and buffers are taken
//! down (hyper closes an idle connection without touching the socket, and hands back the
//! socket and whatever it had read), and the task waits for the next request's first byte
//! with only the socket and the meter; hyper's state is built again when it comes. The
//! limits and orders hold while parked as while served (see [`park`]).
//!
//! The same code serves plain and TLS connections (generic over the [`Transport`]). A TLS
//! connection that graced closes while idle — the keep-alive timeout, or a graceful stop —
//! is shut down through hyper (or, parked, through rustls), which sends the TLS `close_notify` alert (bounded by
//! [`CLOSE_NOTIFY_WAIT`]); one that hyper ends (after a `Connection: close` response, or
//! when the client leaves) gets it from hyper. An abort sends nothing, as for plain ones.

use std::convert::Infallible;
use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{HttpService, service_fn};
use hyper_util::rt::TokioIo;

use crate::access_log::Pending;
use crate::body::{Body, Guards};
use crate::generation::GenerationGuard;
use crate::handler;
use crate::limits::{CLOSE_NOTIFY_WAIT, Check, CloseReason, Limits, Watch, instant_at};
use crate::linger;
use crate::meter::{Meter, MeteredIo, RequestGuard, Transport, now_us};
use crate::park::{Unpark, park};
use crate::sendfile::SendfileQueue;
use crate::shared::{Order, Shared, Subscription};

/// The smallest head hyper buffers before giving up (see `serve`).
const HYPER_HEAD_CAP: usize = 72 * 1024;

/// hyper's own default cap on header fields; setting the same value explicitly would
/// make hyper zero a 100-entry array for every request head.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// What hyper is told of the request limits: kept instead of its `Builder` (~100 bytes),
/// which is made again each time a parked connection wakes.
struct HyperLimits {
    max_head: usize,
    max_headers: usize,
}

impl HyperLimits {
    fn new(limits: &graced_config::Limits) -> HyperLimits {
        // hyper's own cap on a request head, beyond which it answers 431 with an empty body.
        // It is set well above our limits so that the handler sees over-long targets and
        // header sections and answers 414 / 431 itself; 72 KiB also lets hyper parse a
        // target up to the `http` crate's 64 KiB maximum (hyper answers 414 beyond it).
        let max_head = (limits.max_request_line + limits.max_header_bytes + 1024).max(HYPER_HEAD_CAP);
        HyperLimits { max_head, max_headers: limits.max_headers }
    }

    fn builder(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        // No hyper timer: the header timeout is enforced below, without a timer per request.
        // Vectored writes: hyper then queues body frames instead of copying them, which the
        // sendfile placeholders rely on (see `sendfile`).
        builder
            .header_read_timeout(None)
            .writev(true)
            .max_header_size(self.max_head)
            .max_buf_size(self.max_head);
        if self.max_headers != HYPER_DEFAULT_MAX_HEADERS {
            builder.max_headers(self.max_headers);
        }
        builder
    }
}

/// What woke the connection's task.
enum Step {
    /// hyper finished with the connection.
    Done(Result<(), hyper::Error>),
    /// Orders wait (see [`Subscription::has_news`]).
    Orders,
    /// The limits' timer fired.
    Timer,
}

/// hyper's HTTP/1.1 connection over the metered stream.
type Conn<S, Svc> = http1::Connection<TokioIo<MeteredIo<S>>, Svc>;

/// Serves `stream` until the client leaves, a limit closes it, or an order aborts it.
/// hyper serves it while requests come; when it has been idle for [`PARK_AFTER`](crate::limits::PARK_AFTER), hyper's
/// state is taken down and the connection [parked](park) until its next request.
///
/// Not an `async fn`: the setup runs here and the future keeps only what it needs (an async
/// fn's future would keep its arguments besides), as idle connections are many.
pub(crate) fn serve<S: Transport>(
    stream: S,
    remote: String,
    shared: Arc<Shared>,
    mut orders: Subscription,
) -> impl Future<Output = ()> + Send {
    let fd = stream.socket().as_raw_fd();
    let tls_version = stream.tls_version();
    let meter = Arc::new(Meter::with_reading_gauge(shared.reading.clone()));
    let sendfile = Arc::new(SendfileQueue::default());
    let config_limits = shared.current().config.limits.clone();
    let mut service = {
        let meter = meter.clone();
        let sendfile = sendfile.clone();
        let shared = shared.clone();
        service_fn(move |req: Request<Incoming>| {
            let generation = shared.current();
            let timed_from = GenerationGuard::times(&generation).then(Instant::now);
            let mut response = handler::handle(&req, &generation, &shared.counters, &remote, S::TLS, S::TLS);
            if shared.is_draining() {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(job) = response.body_mut().take_sendfile_job() {
                sendfile.push(job);
            }
            let pending =
                response.extensions_mut().remove::<Pending>().map(|p| p.with_tls_version(tls_version));
            let guards = Guards::new(
                RequestGuard::new(meter.clone()),
                GenerationGuard::new(generation, timed_from, pending),
            );
            std::future::ready(Ok::<_, Infallible>(response.map(|body| body.with_guards(guards))))
        })
    };
    let hyper_limits = HyperLimits::new(&config_limits);
    let limits = Limits {
        keepalive: config_limits.keepalive_timeout.as_micros() as u64,
        header: config_limits.header_timeout.as_micros() as u64,
        send: config_limits.send_timeout.as_micros() as u64,
    };
    let mut io = MeteredIo::new(stream, meter.clone(), sendfile.clone());
    let mut watch = Watch {
        shared,
        meter,
        sendfile,
        fd,
        limits,
        send_timeout: config_limits.send_timeout,
        drain_started: None,
    };
    async move {
        loop {
            // Boxed, with the task that drives it: a parked connection holds neither.
            let conn = Box::new(hyper_limits.builder().serve_connection(TokioIo::new(io), service));
            let Some(parts) = Box::pin(drive(conn, &mut watch, &mut orders)).await else {
                return;
            };
            // In a function of its own, so that `parts` has no room in this future.
            (io, service) = take_back(parts);
            if !io.has_unread() && park(&mut io, &mut watch, &mut orders).await == Unpark::Close {
                return;
            }
        }
    }
}

/// The stream and the service back from hyper's parts, with what hyper had read and not
/// parsed (a pipelined head's start; rare) to be read again. The parts' view of hyper's
/// read buffer is dropped, as it would keep the whole buffer alive.
fn take_back<S: Transport, Svc>(parts: http1::Parts<TokioIo<MeteredIo<S>>, Svc>) -> (MeteredIo<S>, Svc) {
    let mut io = parts.io.into_inner();
    io.unread(&parts.read_buf);
    (io, parts.service)
}

/// hyper serves the connection until it is done (`None`: the client left, a limit closed
/// it, an order ended it) or idle for [`PARK_AFTER`](crate::limits::PARK_AFTER) (its parts, to park).
async fn drive<S: Transport, Svc>(
    mut boxed: Box<Conn<S, Svc>>,
    watch: &mut Watch,
    orders: &mut Subscription,
) -> Option<http1::Parts<TokioIo<MeteredIo<S>>, Svc>>
where
    Svc: HttpService<Incoming, ResBody = Body> + Unpin,
    Svc::Future: Unpin,
{
    // Owned here (the Arcs' counts move once per wake): `watch` stays free to change.
    let (shared, meter, sendfile) = (watch.shared.clone(), watch.meter.clone(), watch.sendfile.clone());
    let (shared, meter, sendfile, fd) = (&*shared, &*meter, &*sendfile, watch.fd);
    let parked = 'serve: {
        let mut conn = Pin::new(&mut *boxed);
        let first = match watch.limits.check(meter, sendfile, fd, now_us(), watch.drain_started) {
            Check::Again(at) => at,
            Check::Park => now_us(),
            Check::Close(_) => return None,
        };
        let timer = tokio::time::sleep_until(instant_at(first));
        tokio::pin!(timer);
        // The orders channel's sender lives in `shared`, which this task holds: it never
        // closes while the connection runs (were it to, the connection would just stop
        // listening for orders).
        let mut orders_open = true;
        loop {
            // Until orders arrive: serve, and check the limits whenever the timer fires. The
            // waiter registers this task's waker with the channel on its first poll; later
            // wake-ups poll it again only if the channel has news (one atomic load) or the
            // waker changed, since polling a registered waiter takes the channel's lock.
            {
                let mut waiter = orders.waiter();
                let changed = waiter.changed();
                tokio::pin!(changed);
                let mut registered: Option<Waker> = None;
                loop {
                    let step = std::future::poll_fn(|cx| {
                        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                            return Poll::Ready(Step::Done(result));
                        }
                        if orders_open {
                            if orders.has_news() {
                                return Poll::Ready(Step::Orders);
                            }
                            if registered.as_ref().is_none_or(|waker| !waker.will_wake(cx.waker())) {
                                match changed.as_mut().poll(cx) {
                                    Poll::Ready(Ok(())) => return Poll::Ready(Step::Orders),
                                    Poll::Ready(Err(_closed)) => orders_open = false,
                                    Poll::Pending => registered = Some(cx.waker().clone()),
                                }
                            }
                        }
                        if timer.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Step::Timer);
                        }
                        Poll::Pending
                    })
                    .await;
                    match step {
                        Step::Done(result) => {
                            if let Err(err) = result {
                                tracing::debug!(error = %err, "connection ended with an error");
                            }
                            if shared.is_draining() {
                                // SAFETY: `conn` owns the socket and lives until this function
                                // returns, after the wait.
                                let socket = unsafe { BorrowedFd::borrow_raw(fd) };
                                linger::delivered(socket, watch.send_timeout).await;
                            }
                            return None;
                        }
                        Step::Orders => break,
                        Step::Timer => {
                            match watch.limits.check(meter, sendfile, fd, now_us(), watch.drain_started) {
                                Check::Again(at) => timer.as_mut().reset(instant_at(at)),
                                Check::Park => {
                                    // hyper closes an idle connection at once (nothing to flush),
                                    // and hands its socket back without shutting it down.
                                    conn.as_mut().graceful_shutdown();
                                    break 'serve std::future::poll_fn(|cx| conn.poll_without_shutdown(cx))
                                        .await;
                                }
                                Check::Close(reason) => {
                                    reason.log();
                                    close_idle(conn.as_mut(), reason, watch).await;
                                    return None;
                                }
                            }
                        }
                    }
                }
            }
            match orders.take(meter.busy() || sendfile.pending()) {
                // A stop; or a hard restart while a response is in flight. (A connection
                // between requests stays, and its next request takes the new generation.)
                Order::Abort | Order::Restart => return None,
                Order::Drain => {
                    let now = now_us();
                    watch.drain_started = Some(now);
                    match watch.limits.check(meter, sendfile, fd, now, watch.drain_started) {
                        Check::Again(at) => timer.as_mut().reset(instant_at(at)),
                        // Not while draining (the drain's idle grace is shorter).
                        Check::Park => timer.as_mut().reset(instant_at(now)),
                        Check::Close(reason) => {
                            close_idle(conn.as_mut(), reason, watch).await;
                            return None;
                        }
                    }
                }
                Order::None => {}
            }
        }
    };
    match parked {
        Ok(()) => Some(boxed.into_parts()),
        Err(err) => {
            tracing::debug!(error = %err, "connection ended with an error");
            None
        }
    }
}

/// Closes a connection whose limit expired while hyper serves it: an idle TLS connection
/// gets its `close_notify` through hyper, and an idle one in a graceful stop waits until
/// the client has the last response.
async fn close_idle<S: Transport, Svc>(mut conn: Pin<&mut Conn<S, Svc>>, reason: CloseReason, watch: &Watch)
where
    Svc: HttpService<Incoming, ResBody = Body> + Unpin,
    Svc::Future: Unpin,
{
    if reason != CloseReason::Idle {
        return;
    }
    if S::TLS {
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(CLOSE_NOTIFY_WAIT, conn.as_mut()).await;
    }
    if watch.drain_started.is_some() {
        // The last response may still be on its way to a slow client.
        // SAFETY: `conn` owns the socket and lives until the caller returns.
        let socket = unsafe { BorrowedFd::borrow_raw(watch.fd) };
        linger::delivered(socket, watch.send_timeout).await;
    }
}
