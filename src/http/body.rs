//! The response body: in-memory bytes, a file sent with `sendfile(2)`, or a file streamed
//! in chunks, carrying the request's guard.
//!
//! The guard lives inside the body, so a request counts as in flight until its
//! last byte is handed to the connection (or the connection is dropped) — not
//! merely until the handler returns. Draining and generation accounting rely on it.
//!
//! **sendfile through hyper.** hyper only writes bytes it is given, so a file sent
//! with `sendfile` is given to hyper as *placeholder* frames: slices of
//! [`PLACEHOLDER`], a zeroed static that is never read. The file itself goes into the
//! connection's queue of [`SendfileJob`]s; when hyper hands the connection's writer a
//! slice that lies inside `PLACEHOLDER`, the writer sends that many bytes of the next
//! job with `sendfile` instead (see `connection::MeteredIo`). hyper queues body frames
//! without copying them (its vectored-write strategy, which the connection forces), and
//! writes them in order, so placeholders and jobs always line up.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use super::connection::RequestGuard;

/// Files up to this size are sent from the serving thread (they come from the page
/// cache): from memory, read once (see `files`), or with `sendfile`; larger ones are
/// streamed through tokio's blocking pool.
pub const INLINE_LIMIT: u64 = 128 * 1024;
/// Files above this size (up to [`INLINE_LIMIT`]) are sent with `sendfile`; at or below
/// it, copying the bytes costs less than the extra system call.
pub const SENDFILE_MIN: u64 = 16 * 1024;
const CHUNK: usize = 64 * 1024;

/// What placeholder frames point into: never read, so it costs no memory. As large as
/// the largest file sent with `sendfile`, so each response is one frame.
static PLACEHOLDER: [u8; INLINE_LIMIT as usize] = [0; INLINE_LIMIT as usize];

/// Whether `slice` is (part of) a placeholder frame.
pub fn is_placeholder(slice: &[u8]) -> bool {
    let start = PLACEHOLDER.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    !slice.is_empty() && at >= start && at + slice.len() <= start + PLACEHOLDER.len()
}

/// A file range the connection sends with `sendfile` when hyper writes its placeholders.
pub struct SendfileJob {
    pub file: Arc<File>,
    pub offset: u64,
    pub remaining: u64,
}

/// A response body.
pub struct Body {
    kind: Kind,
    _guard: Option<RequestGuard>,
}

enum Kind {
    Bytes(Option<Bytes>),
    File {
        file: tokio::fs::File,
        remaining: u64,
    },
    /// Placeholder frames for `remaining` bytes; `job` until the connection takes it.
    Sendfile {
        job: Option<SendfileJob>,
        remaining: u64,
    },
}

impl Body {
    pub fn empty() -> Body {
        Body { kind: Kind::Bytes(None), _guard: None }
    }

    pub fn bytes(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        Body { kind: Kind::Bytes((!bytes.is_empty()).then_some(bytes)), _guard: None }
    }

    /// `len` bytes of `file` from `offset`: sent with `sendfile` or read now when small,
    /// streamed otherwise.
    pub fn file(file: File, offset: u64, len: u64) -> io::Result<Body> {
        if len <= INLINE_LIMIT {
            return Body::open_file(Arc::new(file), offset, len);
        }
        use std::io::{Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Body { kind: Kind::File { file: tokio::fs::File::from_std(file), remaining: len }, _guard: None })
    }

    /// `len` (at most [`INLINE_LIMIT`]) bytes of a file that may be shared (it is only
    /// read at explicit offsets): sent with `sendfile`, or read now when small.
    pub fn open_file(file: Arc<File>, offset: u64, len: u64) -> io::Result<Body> {
        use std::os::unix::fs::FileExt;
        debug_assert!(len <= INLINE_LIMIT);
        if len > SENDFILE_MIN {
            let job = SendfileJob { file, offset, remaining: len };
            return Ok(Body { kind: Kind::Sendfile { job: Some(job), remaining: len }, _guard: None });
        }
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, offset)?;
        Ok(Body::bytes(buf))
    }

    /// The file this body sends with `sendfile`, for the connection's queue (once).
    pub fn take_sendfile_job(&mut self) -> Option<SendfileJob> {
        match &mut self.kind {
            Kind::Sendfile { job, .. } => job.take(),
            _ => None,
        }
    }

    /// Keeps `guard` alive until the body is finished or dropped.
    pub fn with_guard(mut self, guard: RequestGuard) -> Body {
        self._guard = Some(guard);
        self
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.kind {
            Kind::Bytes(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Sendfile { remaining, .. } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(PLACEHOLDER.len() as u64) as usize;
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&PLACEHOLDER[..n])))))
            }
            Kind::File { file, remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let want = (*remaining).min(CHUNK as u64) as usize;
                let mut buf = BytesMut::zeroed(want);
                let mut read_buf = ReadBuf::new(&mut buf);
                match Pin::new(file).poll_read(cx, &mut read_buf) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err))),
                    Poll::Ready(Ok(())) => {
                        let n = read_buf.filled().len();
                        if n == 0 {
                            // The file shrank under us: end the response short rather than hang.
                            return Poll::Ready(Some(Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "file truncated while being served",
                            ))));
                        }
                        *remaining -= n as u64;
                        buf.truncate(n);
                        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Bytes(bytes) => bytes.is_none(),
            Kind::File { remaining, .. } | Kind::Sendfile { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Bytes(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File { remaining, .. } | Kind::Sendfile { remaining, .. } => {
                SizeHint::with_exact(*remaining)
            }
        }
    }
}
