//! The response body: in-memory bytes or a file streamed in chunks, carrying the request's guard.
//!
//! The guard lives inside the body, so a request counts as in flight until its
//! last byte is handed to the connection (or the connection is dropped) — not
//! merely until the handler returns. Draining and generation accounting rely on it.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

/// Files up to this size are read in one go on the serving thread (they come from the
/// page cache); larger ones are streamed through tokio's blocking pool.
pub const INLINE_LIMIT: u64 = 128 * 1024;
const CHUNK: usize = 64 * 1024;

/// A response body.
pub struct Body {
    kind: Kind,
    _guard: Option<Box<dyn Send + Sync>>,
}

enum Kind {
    Bytes(Option<Bytes>),
    File { file: tokio::fs::File, remaining: u64 },
}

impl Body {
    pub fn empty() -> Body {
        Body { kind: Kind::Bytes(None), _guard: None }
    }

    pub fn bytes(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        Body { kind: Kind::Bytes((!bytes.is_empty()).then_some(bytes)), _guard: None }
    }

    /// `len` bytes of `file` from `offset`: read now when small, streamed otherwise.
    pub fn file(file: File, offset: u64, len: u64) -> io::Result<Body> {
        use std::os::unix::fs::FileExt;
        if len <= INLINE_LIMIT {
            let mut buf = vec![0; len as usize];
            file.read_exact_at(&mut buf, offset)?;
            return Ok(Body::bytes(buf));
        }
        use std::io::{Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Body { kind: Kind::File { file: tokio::fs::File::from_std(file), remaining: len }, _guard: None })
    }

    /// Keeps `guard` alive until the body is finished or dropped.
    pub fn with_guard(mut self, guard: impl Send + Sync + 'static) -> Body {
        self._guard = Some(Box::new(guard));
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
            Kind::File { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Bytes(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}
