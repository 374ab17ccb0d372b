//! One client connection: hyper serves it, this task decides when it may be closed.
//!
//! A connection is closed by graced only in these cases:
//! * it has been idle (no request in flight, no request bytes read or waiting) for
//!   `keepalive_timeout` — or, once a graceful stop began, for [`DRAIN_IDLE_GRACE`];
//! * a response has made no write progress for `send_timeout` (a reader that stopped);
//! * a hard stop or restart aborts it.
//!
//! Before closing an idle connection it checks, with `MSG_PEEK`, that no request
//! bytes are waiting: a keep-alive client may have sent its next request a moment
//! ago, and closing on it would lose that request. During a graceful stop every
//! response built carries `Connection: close`, so busy keep-alive clients learn of
//! the stop from the response itself. A reload never closes anything.

use std::convert::Infallible;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use super::generation::GenerationGuard;
use super::handler;
use super::listener::Stream;
use super::server::Shared;

/// How long a graceful stop waits for the next request on an idle keep-alive
/// connection before closing it. A client in a request loop sends within
/// microseconds; one idle for longer is closed (after the peek check).
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(250);

/// The smallest head hyper buffers before giving up (see `serve`).
const HYPER_HEAD_CAP: usize = 72 * 1024;

fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// What the connection task knows of the traffic hyper is handling.
struct Meter {
    in_flight: AtomicU32,
    /// Last time bytes moved in either direction.
    last_progress: AtomicU64,
    /// When the last response finished (or the connection was accepted).
    idle_since: AtomicU64,
    read_total: AtomicU64,
    /// `read_total` when the connection last became idle: more read since means a request is arriving.
    read_at_idle: AtomicU64,
    /// Wakes the connection task when the last request in flight finishes, so the idle
    /// and drain timers start from that moment.
    became_idle: tokio::sync::Notify,
}

impl Meter {
    fn new() -> Meter {
        let now = now_us();
        Meter {
            in_flight: AtomicU32::new(0),
            last_progress: AtomicU64::new(now),
            idle_since: AtomicU64::new(now),
            read_total: AtomicU64::new(0),
            read_at_idle: AtomicU64::new(0),
            became_idle: tokio::sync::Notify::new(),
        }
    }

    fn request_arriving(&self, fd: RawFd) -> bool {
        if self.read_total.load(Ordering::Acquire) != self.read_at_idle.load(Ordering::Acquire) {
            return true;
        }
        // SAFETY: the connection (and so the fd) is alive for as long as the task that calls this.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut byte = [0u8; 1];
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        matches!(rustix::net::recv(fd, &mut byte[..], flags), Ok((n, _)) if n > 0)
    }
}

/// Marks a request in flight on its connection and its generation until its body is done.
struct RequestGuard {
    meter: Arc<Meter>,
    _generation: GenerationGuard,
}

impl RequestGuard {
    fn new(meter: Arc<Meter>, generation: GenerationGuard) -> RequestGuard {
        meter.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard { meter, _generation: generation }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let meter = &self.meter;
        meter.read_at_idle.store(meter.read_total.load(Ordering::Acquire), Ordering::Release);
        meter.idle_since.store(now_us(), Ordering::Release);
        if meter.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            meter.became_idle.notify_one();
        }
    }
}

/// The stream with its traffic counted.
struct MeteredIo {
    stream: Stream,
    meter: Arc<Meter>,
}

impl AsyncRead for MeteredIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.meter.read_total.fetch_add(n as u64, Ordering::AcqRel);
            this.meter.last_progress.store(now_us(), Ordering::Relaxed);
        }
        result
    }
}

impl AsyncWrite for MeteredIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            this.meter.last_progress.store(now_us(), Ordering::Relaxed);
        }
        result
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            this.meter.last_progress.store(now_us(), Ordering::Relaxed);
        }
        result
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Serves `stream` until the client leaves, a limit closes it, or `abort` fires.
pub(super) async fn serve(stream: Stream, remote: String, shared: Arc<Shared>, abort: CancellationToken) {
    let fd = stream.fd().as_raw_fd();
    let meter = Arc::new(Meter::new());
    let limits = shared.current().config.limits.clone();
    let service = {
        let meter = meter.clone();
        let shared = shared.clone();
        service_fn(move |req: Request<Incoming>| {
            let generation = shared.current();
            let guard = RequestGuard::new(meter.clone(), GenerationGuard::new(generation.clone()));
            let mut response = handler::handle(&req, &generation, &shared.counters, &remote);
            if shared.is_draining() {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            std::future::ready(Ok::<_, Infallible>(response.map(|body| body.with_guard(guard))))
        })
    };
    // hyper's own cap on a request head, beyond which it answers 431 with an empty body.
    // It is set well above our limits so that the handler sees over-long targets and
    // header sections and answers 414 / 431 itself; 72 KiB also lets hyper parse a
    // target up to the `http` crate's 64 KiB maximum (hyper answers 414 beyond it).
    let max_head = (limits.max_request_line + limits.max_header_bytes + 1024).max(HYPER_HEAD_CAP);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(max_head)
        .max_buf_size(max_head);
    let io = MeteredIo { stream, meter: meter.clone() };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // When the graceful stop began for this connection: the drain grace counts from the
    // later of that and the moment the connection went idle.
    let mut drain_started: Option<u64> = shared.is_draining().then(now_us);
    let idle_limit = |drain_started: Option<u64>| match drain_started {
        Some(started) => (meter.idle_since.load(Ordering::Acquire).max(started), DRAIN_IDLE_GRACE),
        None => (meter.idle_since.load(Ordering::Acquire), limits.keepalive_timeout),
    };
    loop {
        let deadline = {
            let base = if meter.in_flight.load(Ordering::Acquire) > 0 {
                meter.last_progress.load(Ordering::Acquire) + limits.send_timeout.as_micros() as u64
            } else {
                let (since, limit) = idle_limit(drain_started);
                since + limit.as_micros() as u64
            };
            tokio::time::Instant::now() + Duration::from_micros(base.saturating_sub(now_us()))
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            _ = abort.cancelled() => return,
            _ = shared.drained(), if drain_started.is_none() => drain_started = Some(now_us()),
            // The deadline is recomputed from the new idle time on the next turn.
            _ = meter.became_idle.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {
                let now = now_us();
                if meter.in_flight.load(Ordering::Acquire) > 0 {
                    let stalled = now.saturating_sub(meter.last_progress.load(Ordering::Acquire));
                    if stalled >= limits.send_timeout.as_micros() as u64 {
                        tracing::info!("closing a connection whose response made no progress for send_timeout");
                        return;
                    }
                } else {
                    let (since, limit) = idle_limit(drain_started);
                    if now.saturating_sub(since) >= limit.as_micros() as u64 {
                        if !meter.request_arriving(fd) {
                            return;
                        }
                        // A request is on its way: give it a fresh idle period; hyper's
                        // header_read_timeout bounds a client that never finishes it.
                        meter.idle_since.store(now, Ordering::Release);
                    }
                }
            }
        }
    }
}
