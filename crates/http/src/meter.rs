//! What a connection's task knows of the traffic hyper is handling: a [`Meter`] of atomics
//! fed by the stream wrapper ([`MeteredIo`]) and by each request's [`RequestGuard`].
//!
//! The hot path costs a few atomic stores and a read of the coarse clock per read, write and
//! response; no lock, no timer.
//!
//! A connection's stream is a [`Transport`]: the accepted socket itself (plain HTTP, with
//! `sendfile`), or a TLS stream over it (its bytes encrypted in user space, so no
//! `sendfile`). Everything is generic over it, so the plain path compiles as before.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use rustix::time::{ClockId, clock_gettime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::listener::Stream;
use crate::sendfile::{self, SendfileQueue, is_placeholder};
use crate::status::tally::Gauge;

/// Microseconds on the coarse monotonic clock: a few ms of resolution is plenty for
/// timeouts of 250 ms and more, and reading it is cheaper than the precise clock, which
/// matters as it is read for every read, write and response. (Through the vDSO.)
#[inline]
pub(crate) fn now_us() -> u64 {
    let t = clock_gettime(ClockId::MonotonicCoarse);
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

/// The traffic of one connection, as times in µs of [`now_us`] and byte counts.
pub(crate) struct Meter {
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
    /// A request head is being read (bytes of it arrived, the request is not dispatched).
    reading: AtomicBool,
    /// The server's count of connections reading a head, kept by HTTP/1.1 connections.
    reading_gauge: Option<Arc<Gauge>>,
}

impl Meter {
    pub(crate) fn new() -> Meter {
        let now = now_us();
        Meter {
            in_flight: AtomicU32::new(0),
            last_progress: AtomicU64::new(now),
            idle_since: AtomicU64::new(now),
            read_total: AtomicU64::new(0),
            read_at_idle: AtomicU64::new(0),
            head_started: AtomicU64::new(now),
            reading: AtomicBool::new(false),
            reading_gauge: None,
        }
    }

    /// A meter that counts its connection in `gauge` while it reads a request head.
    pub(crate) fn with_reading_gauge(gauge: Arc<Gauge>) -> Meter {
        let mut meter = Meter::new();
        meter.reading_gauge = Some(gauge);
        meter
    }

    /// The first bytes of a request head arrived.
    #[inline]
    fn begin_reading(&self) {
        if let Some(gauge) = &self.reading_gauge
            && !self.reading.swap(true, Ordering::AcqRel)
        {
            gauge.increment();
        }
    }

    /// The head was read (the request is dispatched), or the connection ended.
    #[inline]
    fn end_reading(&self) {
        if let Some(gauge) = &self.reading_gauge
            && self.reading.swap(false, Ordering::AcqRel)
        {
            gauge.decrement();
        }
    }

    /// Whether a response is in flight.
    #[inline]
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// The last time bytes moved in either direction.
    pub(crate) fn last_progress(&self) -> u64 {
        self.last_progress.load(Ordering::Acquire)
    }

    /// When the first byte of the request head now arriving was read.
    pub(crate) fn head_started(&self) -> u64 {
        self.head_started.load(Ordering::Acquire)
    }

    /// When the connection last became idle.
    pub(crate) fn idle_since(&self) -> u64 {
        self.idle_since.load(Ordering::Acquire)
    }

    /// Counts the connection as idle from `now` on (a request is on its way after all).
    pub(crate) fn idle_from(&self, now: u64) {
        self.idle_since.store(now, Ordering::Release);
    }

    /// Whether bytes of a request head were read since the connection became idle.
    pub(crate) fn head_arriving(&self) -> bool {
        self.read_total.load(Ordering::Acquire) != self.read_at_idle.load(Ordering::Acquire)
    }

    /// Whether a request is arriving: read already, or waiting in the socket `fd` (peeked).
    pub(crate) fn request_arriving(&self, fd: RawFd) -> bool {
        if self.head_arriving() {
            return true;
        }
        // SAFETY: `fd` is the connection's socket, which the connection task that calls this
        // owns (inside hyper's connection) and closes only after its last call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut byte = [0u8; 1];
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        matches!(rustix::net::recv(fd, &mut byte[..], flags), Ok((n, _)) if n > 0)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.end_reading();
    }
}

/// Marks a request in flight on its connection until its body is done.
pub(crate) struct RequestGuard {
    meter: Arc<Meter>,
}

impl RequestGuard {
    pub(crate) fn new(meter: Arc<Meter>) -> RequestGuard {
        meter.end_reading();
        meter.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard { meter }
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

/// What a connection is served over: a stream of bytes on a socket.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// HTTPS: responses may carry HSTS, plaintext redirects do not apply, and file bodies are
    /// read into memory (no `sendfile`, no placeholders).
    const TLS: bool;

    /// The connection's socket (for `MSG_PEEK`).
    fn socket(&self) -> BorrowedFd<'_>;

    /// The accepted stream under it (to wait for bytes without reading them).
    fn stream(&self) -> &Stream;

    /// The TLS version negotiated, for the access log (`None`: plain).
    fn tls_version(&self) -> Option<&'static str> {
        None
    }

    /// Writes `bufs`, whose slice `at` is a placeholder (see `sendfile`).
    fn poll_write_placeholder(
        &self,
        queue: &SendfileQueue,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
        at: usize,
    ) -> Poll<io::Result<usize>>;
}

impl Transport for Stream {
    const TLS: bool = false;

    #[inline]
    fn socket(&self) -> BorrowedFd<'_> {
        self.fd()
    }

    fn stream(&self) -> &Stream {
        self
    }

    #[inline]
    fn poll_write_placeholder(
        &self,
        queue: &SendfileQueue,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
        at: usize,
    ) -> Poll<io::Result<usize>> {
        sendfile::poll_write(self, queue, cx, bufs, at)
    }
}

impl Transport for tokio_rustls::server::TlsStream<Stream> {
    const TLS: bool = true;

    fn socket(&self) -> BorrowedFd<'_> {
        self.get_ref().0.fd()
    }

    fn stream(&self) -> &Stream {
        self.get_ref().0
    }

    fn tls_version(&self) -> Option<&'static str> {
        Some(match self.get_ref().1.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "TLS",
        })
    }

    fn poll_write_placeholder(
        &self,
        _queue: &SendfileQueue,
        _cx: &mut Context<'_>,
        _bufs: &[io::IoSlice<'_>],
        _at: usize,
    ) -> Poll<io::Result<usize>> {
        // Bodies on TLS connections are read into memory (`Transport::TLS`).
        Poll::Ready(Err(io::Error::other("a sendfile placeholder on a TLS connection")))
    }
}

/// The stream with its traffic counted, and placeholders written with `sendfile`.
pub(crate) struct MeteredIo<S> {
    stream: S,
    meter: Arc<Meter>,
    sendfile: Arc<SendfileQueue>,
    /// Bytes read from the stream that the next reads return first: what hyper had read
    /// but not parsed when the connection was parked (see `connection::park`).
    unread: Bytes,
}

impl<S: Transport> MeteredIo<S> {
    pub(crate) fn new(stream: S, meter: Arc<Meter>, sendfile: Arc<SendfileQueue>) -> MeteredIo<S> {
        MeteredIo { stream, meter, sendfile, unread: Bytes::new() }
    }

    /// The stream being metered.
    pub(crate) fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Puts `bytes` (already read from the stream) back in front of what the stream has.
    /// They are copied: `bytes` may be a view of a much larger buffer (hyper's), which this
    /// would otherwise keep alive.
    pub(crate) fn unread(&mut self, bytes: &[u8]) {
        debug_assert!(self.unread.is_empty());
        if !bytes.is_empty() {
            self.unread = Bytes::copy_from_slice(bytes);
        }
    }

    /// Whether bytes put back with [`unread`](Self::unread) wait to be read.
    pub(crate) fn has_unread(&self) -> bool {
        !self.unread.is_empty()
    }

    #[inline]
    fn progressed(&self, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = result
            && *n > 0
        {
            self.meter.last_progress.store(now_us(), Ordering::Relaxed);
        }
    }
}

impl<S: Transport> AsyncRead for MeteredIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = if this.unread.is_empty() {
            Pin::new(&mut this.stream).poll_read(cx, buf)
        } else {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread.split_to(n));
            Poll::Ready(Ok(()))
        };
        let n = buf.filled().len() - before;
        if n > 0 {
            let meter = &this.meter;
            let now = now_us();
            let total = meter.read_total.fetch_add(n as u64, Ordering::AcqRel);
            if total == meter.read_at_idle.load(Ordering::Acquire)
                && meter.in_flight.load(Ordering::Acquire) == 0
            {
                meter.head_started.store(now, Ordering::Release);
                meter.begin_reading();
            }
            meter.last_progress.store(now, Ordering::Relaxed);
        }
        result
    }
}

impl<S: Transport> AsyncWrite for MeteredIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = if !S::TLS && is_placeholder(buf) {
            this.stream.poll_write_placeholder(&this.sendfile, cx, &[io::IoSlice::new(buf)], 0)
        } else {
            Pin::new(&mut this.stream).poll_write(cx, buf)
        };
        this.progressed(&result);
        result
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let placeholder = if S::TLS { None } else { bufs.iter().position(|b| is_placeholder(b)) };
        let result = match placeholder {
            Some(at) => this.stream.poll_write_placeholder(&this.sendfile, cx, bufs, at),
            None => Pin::new(&mut this.stream).poll_write_vectored(cx, bufs),
        };
        this.progressed(&result);
        result
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
