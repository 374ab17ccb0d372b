//! `sendfile(2)` through hyper: placeholder frames in the body, the files behind them in a
//! per-connection queue, and the write that turns one into the other.
//!
//! hyper only writes bytes it is given, so a file sent with `sendfile` is given to hyper as
//! *placeholder* frames: slices of [`PLACEHOLDER`], a zeroed static that is never read. The
//! file itself goes into the connection's [`SendfileQueue`]; when hyper hands the
//! connection's writer a slice that lies inside `PLACEHOLDER`, the writer sends that many
//! bytes of the next job with `sendfile` instead ([`poll_write`]). hyper queues body frames
//! without copying them (its vectored-write strategy, which the connection forces), and
//! writes them in order, so placeholders and jobs always line up.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;

use crate::listener::Stream;

/// The longest placeholder frame, in bytes.
pub(crate) const MAX_FRAME: usize = 1024 * 1024;

/// What placeholder frames point into: never read, so it costs no memory.
static PLACEHOLDER: [u8; MAX_FRAME] = [0; MAX_FRAME];

/// A placeholder frame of `len` (at most [`MAX_FRAME`]) bytes.
#[inline]
pub(crate) fn placeholder(len: usize) -> Bytes {
    Bytes::from_static(&PLACEHOLDER[..len])
}

/// Whether `slice` is (part of) a placeholder frame.
#[inline]
pub(crate) fn is_placeholder(slice: &[u8]) -> bool {
    let start = PLACEHOLDER.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    !slice.is_empty() && at >= start && at + slice.len() <= start + PLACEHOLDER.len()
}

/// A file range the connection sends with `sendfile` when hyper writes its placeholders.
pub(crate) struct SendfileJob {
    pub(crate) file: Arc<File>,
    pub(crate) offset: u64,
    pub(crate) remaining: u64,
}

/// One connection's files whose bytes hyper writes as placeholders, in response order.
#[derive(Default)]
pub(crate) struct SendfileQueue {
    jobs: Mutex<VecDeque<SendfileJob>>,
}

impl SendfileQueue {
    /// Queues the file of a response about to be handed to hyper.
    pub(crate) fn push(&self, job: SendfileJob) {
        self.lock().push_back(job);
    }

    /// Whether a file still has bytes to send (hyper may hold its last placeholders after
    /// the response's body, and with it the request's guard, is done).
    pub(crate) fn pending(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Frees the queue's room while the connection is parked (nothing is queued then).
    pub(crate) fn release(&self) {
        let mut jobs = self.lock();
        if jobs.is_empty() {
            *jobs = VecDeque::new();
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<SendfileJob>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes `bufs` to `stream`, whose slice `at` is a placeholder: the slices before it go
/// out with `MSG_MORE` (the file follows at once), then the placeholder's bytes are sent
/// from the next queued file with `sendfile`. Returns the bytes written, as a write would.
pub(crate) fn poll_write(
    stream: &Stream,
    queue: &SendfileQueue,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
    at: usize,
) -> Poll<io::Result<usize>> {
    let mut written = 0;
    if at > 0 {
        let head = &bufs[..at];
        let flags = rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL;
        let sent = stream.poll_write_with(cx, |fd| {
            let mut control = rustix::net::SendAncillaryBuffer::default();
            Ok(rustix::net::sendmsg(fd, head, &mut control, flags)?)
        });
        let n = std::task::ready!(sent)?;
        written = n;
        if n < head.iter().map(|b| b.len()).sum::<usize>() {
            return Poll::Ready(Ok(n));
        }
    }
    let mut jobs = queue.lock();
    let Some(job) = jobs.front_mut() else {
        return Poll::Ready(Err(io::Error::other("a placeholder frame without a file to send")));
    };
    // Consecutive placeholders are one send, as far as this job goes.
    let placeholders: usize = bufs[at..].iter().take_while(|b| is_placeholder(b)).map(|b| b.len()).sum();
    let count = (placeholders as u64).min(job.remaining) as usize;
    let sent = stream.poll_write_with(cx, |fd| {
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
