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
//! Aborts and the graceful stop reach the connection through its own [`Control`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body::{SendfileJob, is_placeholder};
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

/// hyper's own default cap on header fields; setting the same value explicitly would
/// make hyper zero a 100-entry array for every request head.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Microseconds on the coarse monotonic clock: a few ms of resolution is plenty for
/// timeouts of 250 ms and more, and reading it is cheaper than the precise clock, which
/// matters as it is read for every read, write and response.
fn now_us() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `t` is. (libc's, through the vDSO.)
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) };
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

/// Abort every connection now (a stop).
pub(super) const ABORT_ALL: u8 = 1;
/// Abort the connection if a response is in flight (a hard restart).
pub(super) const ABORT_IN_FLIGHT: u8 = 2;
/// A graceful stop began.
pub(super) const DRAIN: u8 = 4;

/// How the server reaches one connection: events set by [`Server`](super::Server) and
/// the waker of the connection's task.
pub(super) struct Control {
    events: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl Control {
    pub(super) fn new(events: u8) -> Control {
        Control { events: AtomicU8::new(events), waker: Mutex::new(None) }
    }

    pub(super) fn signal(&self, event: u8) {
        self.events.fetch_or(event, Ordering::AcqRel);
        if let Some(waker) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            waker.wake_by_ref();
        }
    }

    /// Takes the events signalled since the last call, registering `cx`'s waker first.
    fn poll_events(&self, cx: &mut Context<'_>) -> u8 {
        {
            let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        if self.events.load(Ordering::Acquire) == 0 {
            return 0;
        }
        self.events.swap(0, Ordering::AcqRel)
    }
}

/// What the connection task knows of the traffic hyper is handling.
pub(super) struct Meter {
    in_flight: AtomicU32,
    /// Last time bytes moved in either direction.
    last_progress: AtomicU64,
    /// When the last response finished (or the connection was accepted).
    idle_since: AtomicU64,
    read_total: AtomicU64,
    /// `read_total` when the connection last became idle: more read since means a request is arriving.
    read_at_idle: AtomicU64,
    /// When the first byte of the request head now arriving was read.
    head_started: AtomicU64,
    /// Files whose bytes hyper writes as placeholders, in response order.
    sendfile: Mutex<VecDeque<SendfileJob>>,
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
            head_started: AtomicU64::new(now),
            sendfile: Mutex::new(VecDeque::new()),
        }
    }

    fn head_arriving(&self) -> bool {
        self.read_total.load(Ordering::Acquire) != self.read_at_idle.load(Ordering::Acquire)
    }

    fn request_arriving(&self, fd: RawFd) -> bool {
        if self.head_arriving() {
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
pub(super) struct RequestGuard {
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
        meter.in_flight.fetch_sub(1, Ordering::AcqRel);
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
            let meter = &this.meter;
            let now = now_us();
            let total = meter.read_total.fetch_add(n as u64, Ordering::AcqRel);
            if total == meter.read_at_idle.load(Ordering::Acquire)
                && meter.in_flight.load(Ordering::Acquire) == 0
            {
                meter.head_started.store(now, Ordering::Release);
            }
            meter.last_progress.store(now, Ordering::Relaxed);
        }
        result
    }
}

impl MeteredIo {
    /// Writes `bufs`, whose slice `at` is a placeholder: the slices before it go out with
    /// `MSG_MORE` (the file follows at once), then the placeholder's bytes are sent from
    /// the next queued file with `sendfile`. Returns the bytes written, as a write would.
    fn poll_write_sendfile(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
        at: usize,
    ) -> Poll<io::Result<usize>> {
        let mut written = 0;
        if at > 0 {
            let head = &bufs[..at];
            let flags = rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL;
            let sent = self.stream.poll_write_with(cx, |fd| {
                let mut control = rustix::net::SendAncillaryBuffer::default();
                Ok(rustix::net::sendmsg(fd, head, &mut control, flags)?)
            });
            let n = std::task::ready!(sent)?;
            written = n;
            if n < head.iter().map(|b| b.len()).sum::<usize>() {
                return Poll::Ready(Ok(n));
            }
        }
        let mut jobs = self.meter.sendfile.lock().unwrap_or_else(|e| e.into_inner());
        let Some(job) = jobs.front_mut() else {
            return Poll::Ready(Err(io::Error::other("a placeholder frame without a file to send")));
        };
        // Consecutive placeholders are one send, as far as this job goes.
        let placeholders: usize = bufs[at..].iter().take_while(|b| is_placeholder(b)).map(|b| b.len()).sum();
        let count = (placeholders as u64).min(job.remaining) as usize;
        let sent = self.stream.poll_write_with(cx, |fd| {
            let mut offset = job.offset;
            Ok(rustix::fs::sendfile(fd, &job.file, Some(&mut offset), count)?)
        });
        match sent {
            Poll::Pending if written > 0 => Poll::Ready(Ok(written)),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) if written > 0 => {
                tracing::debug!(error = %err, "sendfile failed after the head was sent");
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(0)) => {
                // The file shrank under us: end the response short rather than hang.
                jobs.pop_front();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file truncated while being served",
                )))
            }
            Poll::Ready(Ok(n)) => {
                job.offset += n as u64;
                job.remaining -= n as u64;
                if job.remaining == 0 {
                    jobs.pop_front();
                }
                Poll::Ready(Ok(written + n))
            }
        }
    }
}

impl AsyncWrite for MeteredIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = if is_placeholder(buf) {
            this.poll_write_sendfile(cx, &[io::IoSlice::new(buf)], 0)
        } else {
            Pin::new(&mut this.stream).poll_write(cx, buf)
        };
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
        let result = match bufs.iter().position(|b| is_placeholder(b)) {
            Some(at) => this.poll_write_sendfile(cx, bufs, at),
            None => Pin::new(&mut this.stream).poll_write_vectored(cx, bufs),
        };
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

/// The limits that close a connection, in microseconds.
struct Limits {
    keepalive: u64,
    header: u64,
    send: u64,
}

/// What the timer found when it fired.
enum Check {
    Close(&'static str),
    /// Nothing expired yet: fire again at this time (µs).
    Again(u64),
}

impl Limits {
    /// Checks every limit at `now`. `drain_started`: when the graceful stop reached this connection.
    fn check(&self, meter: &Meter, fd: RawFd, now: u64, drain_started: Option<u64>) -> Check {
        let idle_limit =
            if drain_started.is_some() { DRAIN_IDLE_GRACE.as_micros() as u64 } else { self.keepalive };
        // Any limit that starts later than now expires no sooner than this: checking again
        // then never misses a state change (a response ending, a head starting).
        let horizon = now + idle_limit.min(self.header).min(self.send);
        let deadline = if meter.in_flight.load(Ordering::Acquire) > 0 {
            let deadline = meter.last_progress.load(Ordering::Acquire) + self.send;
            if now >= deadline {
                return Check::Close("a response made no progress for send_timeout");
            }
            deadline
        } else if meter.head_arriving() {
            let deadline = meter.head_started.load(Ordering::Acquire) + self.header;
            if now >= deadline {
                return Check::Close("a request head did not complete within header_timeout");
            }
            deadline
        } else {
            let since = meter.idle_since.load(Ordering::Acquire).max(drain_started.unwrap_or(0));
            let deadline = since + idle_limit;
            if now >= deadline {
                if !meter.request_arriving(fd) {
                    return Check::Close("");
                }
                // Bytes wait in the socket: a request is on its way; hyper will read it and
                // the header timeout bounds it from then on.
                meter.idle_since.store(now, Ordering::Release);
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

/// Serves `stream` until the client leaves, a limit closes it, or `control` aborts it.
pub(super) async fn serve(stream: Stream, remote: String, shared: Arc<Shared>, control: Arc<Control>) {
    let fd = stream.fd().as_raw_fd();
    let meter = Arc::new(Meter::new());
    let config_limits = shared.current().config.limits.clone();
    let service = {
        let meter = meter.clone();
        let shared = shared.clone();
        service_fn(move |req: Request<Incoming>| {
            let generation = shared.current();
            let mut response = handler::handle(&req, &generation, &shared.counters, &remote);
            if shared.is_draining() {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(job) = response.body_mut().take_sendfile_job() {
                meter.sendfile.lock().unwrap_or_else(|e| e.into_inner()).push_back(job);
            }
            let guard = RequestGuard::new(meter.clone(), GenerationGuard::new(generation));
            std::future::ready(Ok::<_, Infallible>(response.map(|body| body.with_guard(guard))))
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
    // sendfile placeholders rely on (see `body`).
    builder.header_read_timeout(None).writev(true).max_header_size(max_head).max_buf_size(max_head);
    if config_limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        builder.max_headers(config_limits.max_headers);
    }
    let io = MeteredIo { stream, meter: meter.clone() };
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
    let first = match limits.check(&meter, fd, now_us(), None) {
        Check::Again(at) => at,
        Check::Close(_) => return,
    };
    let timer = tokio::time::sleep_until(instant_at(first));
    tokio::pin!(timer);
    loop {
        let step = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(Step::Done(result));
            }
            let events = control.poll_events(cx);
            if events != 0 {
                return Poll::Ready(Step::Events(events));
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
                return;
            }
            Step::Events(events) => {
                if events & ABORT_ALL != 0 {
                    return;
                }
                // A hard restart ends the responses in flight; a connection between
                // requests stays, and its next request takes the new generation.
                if events & ABORT_IN_FLIGHT != 0 && meter.in_flight.load(Ordering::Acquire) > 0 {
                    return;
                }
                if events & DRAIN != 0 && drain_started.is_none() {
                    let now = now_us();
                    drain_started = Some(now);
                    match limits.check(&meter, fd, now, drain_started) {
                        Check::Again(at) => timer.as_mut().reset(instant_at(at)),
                        Check::Close(_) => return,
                    }
                }
            }
            Step::Timer => match limits.check(&meter, fd, now_us(), drain_started) {
                Check::Again(at) => timer.as_mut().reset(instant_at(at)),
                Check::Close(why) => {
                    if why.starts_with("a response") {
                        tracing::info!("closing a connection: {why}");
                    } else if !why.is_empty() {
                        tracing::debug!("closing a connection: {why}");
                    }
                    return;
                }
            },
        }
    }
}

enum Step {
    Done(Result<(), hyper::Error>),
    Events(u8),
    Timer,
}
