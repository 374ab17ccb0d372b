//! Write batching for HTTP/2: the frames of every response a connection produced in one turn leave in one write (one TLS record run, one `writev`), not one write per DATA frame.
//!
//! The h2 crate flushes its encoder before it takes the next frame whenever the frame
//! before was a DATA frame whose payload it chains instead of copying (`FramedWrite`:
//! a payload ≥ 256 bytes, or ≥ 1024 without vectored writes), and flushing ends in the
//! transport's `poll_flush`. So 10 responses of 1 KiB that a client asked for together
//! went out as 10 TLS records and 10 `writev` calls. nginx collects a connection's output
//! and writes once.
//!
//! [`Batched`] copies what hyper writes into its own buffer and makes `poll_flush` lazy:
//! it only notes that bytes wait ([`FlushOrder`]). The connection's task
//! ([`poll_batched`]) polls the connection; when it would sleep with bytes waiting it
//! polls once more with flushing switched on, and the batch goes out — before the task
//! sleeps, so nothing waits for another event. Large writes (a download's DATA frames)
//! go out uncopied, behind what is buffered in the same vectored write, and the buffer is
//! written out whenever it holds [`HIGH_WATER`] bytes, so a download streams as before. The buffer is freed after every
//! batch: an idle connection holds none.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffered bytes beyond which a write goes out without waiting for the turn to end
/// (a few TLS records' worth).
pub(crate) const HIGH_WATER: usize = 48 * 1024;

/// A write at least this large, with nothing buffered, goes straight through.
const PASS_THROUGH: usize = 16 * 1024;

/// What the connection's task and its [`Batched`] transport tell each other. Both run
/// in the connection's one task: relaxed orderings suffice.
#[derive(Default)]
pub(crate) struct FlushOrder {
    /// A flush was put off: bytes wait in the buffer.
    deferred: AtomicBool,
    /// Flush for real (the task is about to sleep, or the connection is closing).
    now: AtomicBool,
}

impl FlushOrder {
    /// From now on every flush is real (a connection going away writes its last frames
    /// and waits for the client; nothing may stay in the buffer meanwhile).
    pub(crate) fn always(&self) {
        self.now.store(true, Ordering::Relaxed);
    }
}

/// A transport whose writes are batched until the connection's task flushes them.
pub(crate) struct Batched<T> {
    inner: T,
    out: Vec<u8>,
    /// How much of `out` has been written.
    written: usize,
    order: Arc<FlushOrder>,
}

impl<T: AsyncWrite + Unpin> Batched<T> {
    pub(crate) fn new(inner: T, order: Arc<FlushOrder>) -> Batched<T> {
        Batched { inner, out: Vec::new(), written: 0, order }
    }

    /// Writes out everything buffered; frees the buffer once it is all out.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total >= PASS_THROUGH {
            return self.poll_write_through(cx, bufs);
        }
        if self.out.len() + total > HIGH_WATER {
            ready!(self.poll_drain(cx))?;
        }
        if self.out.capacity() == 0 {
            self.out.reserve(total.max(4096));
        }
        for buf in bufs {
            self.out.extend_from_slice(buf);
        }
        Poll::Ready(Ok(total))
    }

    /// A large write goes out uncopied, in one vectored write behind what is buffered.
    fn poll_write_through(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            let pending = &self.out[self.written..];
            if pending.is_empty() {
                self.out = Vec::new();
                self.written = 0;
                return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            }
            let mut slices = [io::IoSlice::new(&[]); 8];
            slices[0] = io::IoSlice::new(pending);
            let n = bufs.len().min(slices.len() - 1);
            slices[1..=n].copy_from_slice(&bufs[..n]);
            let pending_len = pending.len();
            let wrote = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices[..=n]))?;
            if wrote == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if wrote <= pending_len {
                // Only buffered bytes went: none of `bufs` yet; write again.
                self.written += wrote;
                continue;
            }
            self.out = Vec::new();
            self.written = 0;
            return Poll::Ready(Ok(wrote - pending_len));
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Batched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Batched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, &[io::IoSlice::new(buf)])
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, bufs)
    }
    /// Vectored: h2 then chains payloads of ≥ 256 bytes instead of copying them into its
    /// encoder; they are copied once, here.
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.out.is_empty() && !this.order.now.load(Ordering::Relaxed) {
            this.order.deferred.store(true, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Polls a connection whose transport is [`Batched`] with `order`: if it would sleep
/// with a flush put off, it is polled once more with flushing on, so the batch leaves
/// before the task sleeps. (Polling again is what makes h2 flush: every poll of its
/// connection ends in a flush.)
pub(crate) fn poll_batched<F: Future + ?Sized>(
    mut conn: Pin<&mut F>,
    order: &FlushOrder,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    if let Poll::Ready(done) = conn.as_mut().poll(cx) {
        return Poll::Ready(done);
    }
    if !order.deferred.swap(false, Ordering::Relaxed) || order.now.load(Ordering::Relaxed) {
        return Poll::Pending;
    }
    order.now.store(true, Ordering::Relaxed);
    let polled = conn.poll(cx);
    order.now.store(false, Ordering::Relaxed);
    polled
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn small_writes_wait_for_the_real_flush_and_leave_in_one_write() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let order = Arc::new(FlushOrder::default());
        let mut io = Batched::new(ours, order.clone());
        for i in 0..10u8 {
            io.write_all(&[i; 1024]).await.unwrap();
            io.flush().await.unwrap();
        }
        assert!(order.deferred.load(Ordering::Relaxed), "the flushes were put off");
        let mut buf = [0u8; 1];
        let early = tokio::time::timeout(std::time::Duration::from_millis(20), theirs.read(&mut buf)).await;
        assert!(early.is_err(), "nothing is written before the real flush");
        order.always();
        io.flush().await.unwrap();
        let mut got = vec![0u8; 10 * 1024];
        theirs.read_exact(&mut got).await.unwrap();
        assert!(got.chunks(1024).enumerate().all(|(i, c)| c.iter().all(|&b| b == i as u8)));
        assert_eq!(io.out.capacity(), 0, "the buffer is freed after the batch");
    }

    #[tokio::test]
    async fn large_writes_pass_through_and_the_buffer_never_passes_high_water() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 22);
        let mut io = Batched::new(ours, Arc::new(FlushOrder::default()));
        let big = vec![7u8; 100 * 1024];
        io.write_all(&big).await.unwrap();
        assert!(io.out.is_empty(), "a large write with nothing buffered is not copied");
        for _ in 0..100 {
            io.write_all(&[1u8; 1000]).await.unwrap();
            assert!(io.out.len() <= HIGH_WATER);
        }
        // A large write behind buffered bytes goes out with them, not copied.
        io.write_all(&big).await.unwrap();
        assert!(io.out.is_empty(), "the buffered bytes left with the large write");
        io.write_all(b"tail").await.unwrap();
        io.shutdown().await.unwrap();
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 2 * 100 * 1024 + 100 * 1000 + 4, "shutdown writes what was buffered");
        let mut expected = big.clone();
        expected.extend(std::iter::repeat_n(1u8, 100 * 1000));
        expected.extend(&big);
        expected.extend(b"tail");
        assert!(got == expected, "the bytes arrive in order");
    }

    #[tokio::test]
    async fn a_poll_that_would_sleep_with_bytes_waiting_flushes_them() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let order = Arc::new(FlushOrder::default());
        // A "connection" that writes once and then waits for ever, as h2 does between a
        // client's requests; like h2's, every poll of it ends in a flush.
        let mut io = Batched::new(ours, order.clone());
        let mut wrote = false;
        let conn = std::future::poll_fn(move |cx| {
            if !wrote {
                assert!(Pin::new(&mut io).poll_write(cx, b"response").is_ready());
                wrote = true;
            }
            let _ = Pin::new(&mut io).poll_flush(cx);
            Poll::<()>::Pending
        });
        let mut conn = std::pin::pin!(conn);
        let polled = std::future::poll_fn(|cx| Poll::Ready(poll_batched(conn.as_mut(), &order, cx))).await;
        assert!(polled.is_pending());
        let mut got = [0u8; 8];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"response");
    }
}
