//! One client connection: hyper serves it, this task decides when it may be closed.
//!
//! A connection is closed by graced only in these cases:
//! * it has been idle (no request in flight, no request bytes read or waiting) for
//!   `keepalive_timeout` — or, once a graceful stop began, for [`DRAIN_IDLE_GRACE`];
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
//! timer re-armed; on a busy keep-alive connection that is once per `keepalive_timeout`.
//! Aborts and the graceful stop reach the connection as orders through its
//! [`Subscription`] (see `shared`).
//!
//! The same code serves plain and TLS connections (generic over the [`Transport`]). A TLS
//! connection that graced closes while idle — the keep-alive timeout, or a graceful stop —
//! is shut down through hyper, which sends the TLS `close_notify` alert (bounded by
//! [`CLOSE_NOTIFY_WAIT`]); one that hyper ends (after a `Connection: close` response, or
//! when the client leaves) gets it from hyper. An abort sends nothing, as for plain ones.

use std::convert::Infallible;
use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::access_log::Pending;
use crate::body::Guards;
use crate::generation::GenerationGuard;
use crate::handler;
use crate::linger;
use crate::meter::{Meter, MeteredIo, RequestGuard, Transport, now_us};
use crate::sendfile::SendfileQueue;
use crate::shared::{Order, Shared, Subscription};

/// How long a graceful stop waits for the next request on an idle keep-alive
/// connection before closing it. A client in a request loop sends within
/// microseconds; one idle for longer is closed (after the peek check).
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(250);

/// How long closing an idle TLS connection may take to send its `close_notify`.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(1);

/// The smallest head hyper buffers before giving up (see `serve`).
const HYPER_HEAD_CAP: usize = 72 * 1024;

/// hyper's own default cap on header fields; setting the same value explicitly would
/// make hyper zero a 100-entry array for every request head.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// The limits that close a connection, in microseconds.
struct Limits {
    keepalive: u64,
    header: u64,
    send: u64,
}

/// What the timer found when it fired.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// A limit expired: close the connection.
    Close(CloseReason),
    /// Nothing expired yet: fire again at this time (µs).
    Again(u64),
}

/// Why graced closes a connection when a limit expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseReason {
    /// Idle (no request in flight, none arriving) for `keepalive_timeout`, or for
    /// [`DRAIN_IDLE_GRACE`] during a graceful stop.
    Idle,
    /// A request head did not complete within `header_timeout` (slowloris).
    HeaderTimeout,
    /// A response made no write progress for `send_timeout` (a reader that stopped).
    SendTimeout,
}

impl CloseReason {
    fn message(self) -> &'static str {
        match self {
            CloseReason::Idle => "the connection was idle for keepalive_timeout",
            CloseReason::HeaderTimeout => "a request head did not complete within header_timeout",
            CloseReason::SendTimeout => "a response made no progress for send_timeout",
        }
    }

    /// How loudly the close is logged: a response cut short is worth an info line, a slow
    /// request head a debug line; closing an idle keep-alive connection is routine (none).
    fn level(self) -> Option<tracing::Level> {
        match self {
            CloseReason::Idle => None,
            CloseReason::HeaderTimeout => Some(tracing::Level::DEBUG),
            CloseReason::SendTimeout => Some(tracing::Level::INFO),
        }
    }

    fn log(self) {
        match self.level() {
            None => {}
            Some(level) if level == tracing::Level::INFO => {
                tracing::info!("closing a connection: {}", self.message());
            }
            Some(_) => tracing::debug!("closing a connection: {}", self.message()),
        }
    }
}

impl Limits {
    /// Checks every limit at `now`. `drain_started`: when the graceful stop reached this connection.
    /// A response counts as in flight until hyper has written it: its guard ends when hyper
    /// takes the last frame, but a file's last window (up to 1 MiB of placeholders) may
    /// still be waiting for `sendfile` in `sending` — a drain that took that for idle cut
    /// slow downloads short by up to a window (measured: 920 KiB of 8 MiB).
    fn check(
        &self,
        meter: &Meter,
        sending: &SendfileQueue,
        fd: RawFd,
        now: u64,
        drain_started: Option<u64>,
    ) -> Check {
        let idle_limit =
            if drain_started.is_some() { DRAIN_IDLE_GRACE.as_micros() as u64 } else { self.keepalive };
        // Any limit that starts later than now expires no sooner than this: checking again
        // then never misses a state change (a response ending, a head starting).
        let horizon = now + idle_limit.min(self.header).min(self.send);
        let deadline = if meter.busy() || sending.pending() {
            let deadline = meter.last_progress() + self.send;
            if now >= deadline {
                return Check::Close(CloseReason::SendTimeout);
            }
            deadline
        } else if meter.head_arriving() {
            let deadline = meter.head_started() + self.header;
            if now >= deadline {
                return Check::Close(CloseReason::HeaderTimeout);
            }
            deadline
        } else {
            let since = meter.idle_since().max(drain_started.unwrap_or(0));
            let deadline = since + idle_limit;
            if now >= deadline {
                if !meter.request_arriving(fd) {
                    return Check::Close(CloseReason::Idle);
                }
                // Bytes wait in the socket: a request is on its way; hyper will read it and
                // the header timeout bounds it from then on.
                meter.idle_from(now);
                return Check::Again(now + idle_limit.min(self.header));
            }
            deadline
        };
        Check::Again(deadline.min(horizon))
    }
}

fn instant_at(at_us: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_micros(at_us.saturating_sub(now_us()))
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

/// Serves `stream` until the client leaves, a limit closes it, or an order aborts it.
pub(crate) async fn serve<S: Transport>(
    stream: S,
    remote: String,
    shared: Arc<Shared>,
    mut orders: Subscription,
) {
    let fd = stream.socket().as_raw_fd();
    let tls_version = stream.tls_version();
    let meter = Arc::new(Meter::with_reading_gauge(shared.reading.clone()));
    let sendfile = Arc::new(SendfileQueue::default());
    let config_limits = shared.current().config.limits.clone();
    let service = {
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
    // hyper's own cap on a request head, beyond which it answers 431 with an empty body.
    // It is set well above our limits so that the handler sees over-long targets and
    // header sections and answers 414 / 431 itself; 72 KiB also lets hyper parse a
    // target up to the `http` crate's 64 KiB maximum (hyper answers 414 beyond it).
    let max_head =
        (config_limits.max_request_line + config_limits.max_header_bytes + 1024).max(HYPER_HEAD_CAP);
    let mut builder = http1::Builder::new();
    // No hyper timer: the header timeout is enforced below, without a timer per request.
    // Vectored writes: hyper then queues body frames instead of copying them, which the
    // sendfile placeholders rely on (see `sendfile`).
    builder.header_read_timeout(None).writev(true).max_header_size(max_head).max_buf_size(max_head);
    if config_limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        builder.max_headers(config_limits.max_headers);
    }
    let io = MeteredIo::new(stream, meter.clone(), sendfile.clone());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let limits = Limits {
        keepalive: config_limits.keepalive_timeout.as_micros() as u64,
        header: config_limits.header_timeout.as_micros() as u64,
        send: config_limits.send_timeout.as_micros() as u64,
    };
    // When the graceful stop began for this connection: the drain grace counts from the
    // later of that and the moment the connection went idle.
    let mut drain_started: Option<u64> = None;
    let first = match limits.check(&meter, &sendfile, fd, now_us(), None) {
        Check::Again(at) => at,
        Check::Close(_) => return,
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
                            linger::delivered(socket, config_limits.send_timeout).await;
                        }
                        return;
                    }
                    Step::Orders => break,
                    Step::Timer => match limits.check(&meter, &sendfile, fd, now_us(), drain_started) {
                        Check::Again(at) => timer.as_mut().reset(instant_at(at)),
                        Check::Close(reason) => {
                            reason.log();
                            if S::TLS && reason == CloseReason::Idle {
                                conn.as_mut().graceful_shutdown();
                                let _ = tokio::time::timeout(CLOSE_NOTIFY_WAIT, conn.as_mut()).await;
                            }
                            if drain_started.is_some() && reason == CloseReason::Idle {
                                // SAFETY: `conn` owns the socket and lives until this returns.
                                let socket = unsafe { BorrowedFd::borrow_raw(fd) };
                                linger::delivered(socket, config_limits.send_timeout).await;
                            }
                            return;
                        }
                    },
                }
            }
        }
        match orders.take(meter.busy() || sendfile.pending()) {
            // A stop; or a hard restart while a response is in flight. (A connection
            // between requests stays, and its next request takes the new generation.)
            Order::Abort | Order::Restart => return,
            Order::Drain => {
                let now = now_us();
                drain_started = Some(now);
                match limits.check(&meter, &sendfile, fd, now, drain_started) {
                    Check::Again(at) => timer.as_mut().reset(instant_at(at)),
                    Check::Close(reason) => {
                        if S::TLS && reason == CloseReason::Idle {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(CLOSE_NOTIFY_WAIT, conn.as_mut()).await;
                        }
                        if reason == CloseReason::Idle {
                            // The last response may still be on its way to a slow client.
                            // SAFETY: `conn` owns the socket and lives until this returns.
                            let socket = unsafe { BorrowedFd::borrow_raw(fd) };
                            linger::delivered(socket, config_limits.send_timeout).await;
                        }
                        return;
                    }
                }
            }
            Order::None => {}
        }
    }
}
