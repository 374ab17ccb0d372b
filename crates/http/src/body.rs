//! The response body: in-memory bytes, or a file sent with `sendfile(2)`, carrying the
//! request's guard.
//!
//! The guard lives inside the body, so a request counts as in flight until its
//! last byte is handed to the connection (or the connection is dropped) — not
//! merely until the handler returns. Draining and generation accounting rely on it.
//!
//! **sendfile through hyper.** A file sent with `sendfile` is handed to hyper as
//! placeholder frames, and its [`SendfileJob`] to the connection's queue (see `sendfile`).
//!
//! **Disk reads stay off the serving threads.** A [`SizeClass::Large`] file goes
//! out a [`WINDOW`] at a time, and before each window the body [`probe`]s whether that
//! range is in the page cache: one byte in every [`PROBE_STRIDE`], and the last, read with
//! `preadv2(RWF_NOWAIT)`, which fails rather than wait for the disk. When a probe misses,
//! the window is read into the cache on tokio's blocking pool first, and `sendfile` then
//! finds it there. (`cachestat(2)` would count the pages exactly, but the kernel answers it
//! only for files the caller could write, and a web server's files are not.) Where the file
//! system cannot answer a `RWF_NOWAIT` read — tmpfs, whose pages are memory anyway, and
//! overlayfs — the file is sent as it is, as nginx and Apache send every file.
//!
//! **A compressed variant still being made** (`compress`) is a body of unknown length that
//! waits for it; **multipart/byteranges** bodies are their framing text and file ranges in
//! turn, each range read a chunk at a time (`chunks`).
//!
//! **TLS connections** cannot use `sendfile` (the bytes are encrypted in user space): their
//! file bodies are read a chunk at a time instead (`chunks`), with the same rule.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::chunks::FileChunks;
use crate::compress::Pending;
use crate::generation::GenerationGuard;
use crate::meter::RequestGuard;
use crate::sendfile::{self, SendfileJob};
use crate::size::SizeClass;
use crate::stream::StreamGuard;

/// Bytes of a large file made resident, and handed to hyper as one frame, at a time.
const WINDOW: usize = sendfile::MAX_FRAME;
/// What [`read_in`] reads into (and throws away).
const READ_IN_CHUNK: usize = 64 * 1024;
/// [`probe`] reads one byte in every this many.
const PROBE_STRIDE: u64 = 256 * 1024;

/// A response body.
pub(crate) struct Body {
    kind: Kind,
    _guards: Option<Guards>,
}

/// What a body keeps alive until its last byte is written (or it is dropped): the request
/// counts as in flight on its connection and on its generation. (Fields drop in order: the
/// connection first.)
pub(crate) struct Guards {
    _request: RequestGuard,
    _generation: GenerationGuard,
    /// HTTP/2: the stream's gauge and restart token.
    stream: Option<StreamGuard>,
}

impl Guards {
    pub(crate) fn new(request: RequestGuard, generation: GenerationGuard) -> Guards {
        Guards { _request: request, _generation: generation, stream: None }
    }

    /// The same, for a response on an HTTP/2 stream.
    pub(crate) fn for_stream(
        request: RequestGuard,
        generation: GenerationGuard,
        stream: StreamGuard,
    ) -> Guards {
        Guards { _request: request, _generation: generation, stream: Some(stream) }
    }
}

enum Kind {
    Bytes(Option<Bytes>),
    /// Placeholder frames for `remaining` bytes; `job` until the connection takes it;
    /// `page_in` for a [`SizeClass::Large`] range.
    Sendfile {
        job: Option<SendfileJob>,
        remaining: u64,
        page_in: Option<PageIn>,
    },
    /// A file read a chunk at a time (a connection without `sendfile`).
    Chunks(FileChunks),
    /// Bytes still being made (a compression): one frame once they are there.
    Deferred(Option<Pending>),
    /// The parts of a multipart body in turn; `remaining` bytes in all.
    Parts {
        parts: VecDeque<Part>,
        current: Option<FileChunks>,
        remaining: u64,
    },
}

/// A piece of a body made of parts.
pub(crate) enum Part {
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`.
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

/// Makes each window of a large file resident before its placeholder frame is handed out.
struct PageIn {
    file: Arc<File>,
    /// The file offset of the next frame.
    at: u64,
    /// The file system cannot tell (see [`Residency::Unknown`]): windows are sent as they are.
    unknown: bool,
    /// The window being read in on the blocking pool.
    reading: Option<JoinHandle<io::Result<()>>>,
}

impl PageIn {
    fn new(file: Arc<File>, at: u64) -> PageIn {
        PageIn { file, at, unknown: false, reading: None }
    }

    /// Ready once `len` bytes from `at` are in the page cache (or were just read into it).
    fn poll_resident(&mut self, cx: &mut Context<'_>, len: u64) -> Poll<io::Result<()>> {
        if self.reading.is_none() {
            if self.unknown {
                return Poll::Ready(Ok(()));
            }
            match probe(&self.file, self.at, len) {
                Residency::InMemory => return Poll::Ready(Ok(())),
                Residency::Unknown => {
                    tracing::debug!(
                        "the file system cannot tell whether a large file is in memory: sending it as is"
                    );
                    self.unknown = true;
                    return Poll::Ready(Ok(()));
                }
                Residency::Missing => {}
            }
            let (file, at) = (self.file.clone(), self.at);
            tracing::debug!(offset = at, len, "reading a window of a file into the page cache");
            self.reading = Some(tokio::task::spawn_blocking(move || read_in(&file, at, len)));
        }
        let reading = self.reading.as_mut().expect("a read-in was just started");
        let result = ready!(Pin::new(reading).poll(cx));
        self.reading = None;
        Poll::Ready(result.unwrap_or_else(|join| Err(io::Error::other(join))))
    }
}

/// What [`probe`] found out about a range of a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Residency {
    /// Every probed byte was in the page cache.
    InMemory,
    /// A probed byte was not (or the file ends before the range does).
    Missing,
    /// The file system does not do `RWF_NOWAIT` reads (tmpfs, overlayfs).
    Unknown,
}

/// Whether `len` (> 0) bytes of `file` from `at` are in the page cache, as far as reading
/// one byte in every [`PROBE_STRIDE`] and the last one with `RWF_NOWAIT` can tell: a page
/// dropped between two probes still costs `sendfile` a disk read (rare: the page cache
/// fills and drops whole read-ahead batches and large folios).
pub(crate) fn probe(file: &File, at: u64, len: u64) -> Residency {
    use rustix::io::{Errno, ReadWriteFlags, preadv2};
    let last = at + len.max(1) - 1;
    let offsets = (at..last).step_by(PROBE_STRIDE as usize).chain(std::iter::once(last));
    let mut byte = [0u8; 1];
    for offset in offsets {
        let read = loop {
            match preadv2(file, &mut [io::IoSliceMut::new(&mut byte)], offset, ReadWriteFlags::NOWAIT) {
                Err(Errno::INTR) => continue,
                other => break other,
            }
        };
        match read {
            Ok(1) => {}
            Err(Errno::OPNOTSUPP) => return Residency::Unknown,
            // EAGAIN: not in memory; 0: the file ends early; any other error is left to
            // the read-in, which reports it.
            _ => return Residency::Missing,
        }
    }
    Residency::InMemory
}

/// Reads `len` bytes of `file` from `at` into the page cache (on the blocking pool). A
/// file that ends early is not an error here: `sendfile` finds the end and ends the
/// response short.
fn read_in(file: &File, at: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; READ_IN_CHUNK.min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let want = buf.len().min((len - done) as usize);
        match file.read_at(&mut buf[..want], at + done) {
            Ok(0) => break,
            Ok(n) => done += n as u64,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

impl Body {
    pub(crate) fn empty() -> Body {
        Body { kind: Kind::Bytes(None), _guards: None }
    }

    pub(crate) fn bytes(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        Body { kind: Kind::Bytes((!bytes.is_empty()).then_some(bytes)), _guards: None }
    }

    /// `len` bytes of `file` from `offset`: read now when [`SizeClass::Small`], sent with
    /// `sendfile` otherwise (a window at a time when [`SizeClass::Large`]) — or, when
    /// `copy` (the connection cannot `sendfile`), read a chunk at a time.
    pub(crate) fn file(file: File, offset: u64, len: u64, copy: bool) -> io::Result<Body> {
        let file = Arc::new(file);
        if SizeClass::of(len) != SizeClass::Large || copy {
            return Body::open_file(file, offset, len, copy);
        }
        let page_in = PageIn::new(file.clone(), offset);
        let job = SendfileJob { file, offset, remaining: len };
        Ok(Body {
            kind: Kind::Sendfile { job: Some(job), remaining: len, page_in: Some(page_in) },
            _guards: None,
        })
    }

    /// `len` bytes (not [`SizeClass::Large`] unless `copy`) of a file that may be shared
    /// (it is only read at explicit offsets): sent with `sendfile`, or read now when
    /// [`SizeClass::Small`]; when `copy`, read a chunk at a time.
    pub(crate) fn open_file(file: Arc<File>, offset: u64, len: u64, copy: bool) -> io::Result<Body> {
        use std::os::unix::fs::FileExt;
        debug_assert!(copy || SizeClass::of(len) != SizeClass::Large);
        if copy && SizeClass::of(len) != SizeClass::Small {
            return Ok(Body { kind: Kind::Chunks(FileChunks::new(file, offset, len)), _guards: None });
        }
        if SizeClass::of(len) != SizeClass::Small {
            let job = SendfileJob { file, offset, remaining: len };
            return Ok(Body {
                kind: Kind::Sendfile { job: Some(job), remaining: len, page_in: None },
                _guards: None,
            });
        }
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, offset)?;
        Ok(Body::bytes(buf))
    }

    /// A body of unknown length: the bytes `pending` resolves to.
    pub(crate) fn deferred(pending: Pending) -> Body {
        Body { kind: Kind::Deferred(Some(pending)), _guards: None }
    }

    /// `parts` in turn, `len` bytes in all.
    pub(crate) fn parts(parts: Vec<Part>, len: u64) -> Body {
        Body { kind: Kind::Parts { parts: parts.into(), current: None, remaining: len }, _guards: None }
    }

    /// The file this body sends with `sendfile`, for the connection's queue (once).
    pub(crate) fn take_sendfile_job(&mut self) -> Option<SendfileJob> {
        match &mut self.kind {
            Kind::Sendfile { job, .. } => job.take(),
            _ => None,
        }
    }

    /// Keeps `guards` alive until the body is finished or dropped.
    pub(crate) fn with_guards(mut self, guards: Guards) -> Body {
        self._guards = Some(guards);
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
        // A hard restart ends the HTTP/2 streams in flight (hyper resets the stream on the
        // error) and keeps their connection.
        if let Some(Guards { stream: Some(stream), .. }) = &self._guards
            && stream.restarted()
        {
            return Poll::Ready(Some(Err(io::Error::other("the stream was reset by a hard restart"))));
        }
        match &mut self.kind {
            Kind::Bytes(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Sendfile { remaining, page_in, .. } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(WINDOW as u64);
                if let Some(page_in) = page_in {
                    if let Err(err) = ready!(page_in.poll_resident(cx, n)) {
                        return Poll::Ready(Some(Err(err)));
                    }
                    page_in.at += n;
                }
                *remaining -= n;
                Poll::Ready(Some(Ok(Frame::data(sendfile::placeholder(n as usize)))))
            }
            Kind::Chunks(chunks) => chunks.poll_chunk(cx).map(|chunk| chunk.map(|c| c.map(Frame::data))),
            Kind::Deferred(pending) => {
                let Some(future) = pending.as_mut() else { return Poll::Ready(None) };
                let bytes = ready!(future.as_mut().poll(cx));
                *pending = None;
                Poll::Ready(Some(bytes.map(Frame::data)))
            }
            Kind::Parts { parts, current, remaining } => loop {
                if let Some(chunks) = current {
                    match ready!(chunks.poll_chunk(cx)) {
                        Some(Ok(chunk)) => {
                            *remaining -= chunk.len() as u64;
                            return Poll::Ready(Some(Ok(Frame::data(chunk))));
                        }
                        Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                        None => *current = None,
                    }
                }
                match parts.pop_front() {
                    None => return Poll::Ready(None),
                    Some(Part::Bytes(bytes)) => {
                        *remaining -= bytes.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    Some(Part::File { file, offset, len }) => {
                        *current = Some(FileChunks::new(file, offset, len))
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Bytes(bytes) => bytes.is_none(),
            Kind::Sendfile { remaining, .. } => *remaining == 0,
            Kind::Chunks(chunks) => chunks.remaining() == 0,
            Kind::Deferred(pending) => pending.is_none(),
            Kind::Parts { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Bytes(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Sendfile { remaining, .. } => SizeHint::with_exact(*remaining),
            Kind::Chunks(chunks) => SizeHint::with_exact(chunks.remaining()),
            Kind::Deferred(Some(_)) => SizeHint::default(),
            Kind::Deferred(None) => SizeHint::with_exact(0),
            Kind::Parts { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The `statfs` magic of tmpfs.
    const TMPFS_MAGIC: i64 = 0x0102_1994;

    #[test]
    fn probe_tells_cached_pages_from_evicted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        file.write_all(&vec![7u8; 3 * WINDOW + 100]).unwrap();
        file.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        let len = 3 * WINDOW as u64 + 100;

        if rustix::fs::fstatfs(&file).unwrap().f_type as i64 == TMPFS_MAGIC {
            assert_eq!(probe(&file, 0, len), Residency::Unknown, "tmpfs does no RWF_NOWAIT reads");
            println!("tmpfs: the eviction half is not run");
            return;
        }
        assert_eq!(probe(&file, 0, len), Residency::InMemory, "a file just written is in the page cache");
        assert_eq!(probe(&file, 12_345, 1), Residency::InMemory, "one byte in the middle");
        // A range that ends past the end of the file is not all there.
        assert_eq!(probe(&file, len - 10, 4096 * 4), Residency::Missing, "bytes beyond the end of the file");

        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        assert_eq!(probe(&file, 0, len), Residency::Missing, "the pages were dropped");
        assert_eq!(
            probe(&file, WINDOW as u64, WINDOW as u64),
            Residency::Missing,
            "the second window was dropped"
        );

        // Reading a window in makes that window resident, and not the one after it.
        read_in(&file, WINDOW as u64, WINDOW as u64).unwrap();
        assert_eq!(probe(&file, WINDOW as u64, WINDOW as u64), Residency::InMemory, "the window read in");
        rustix::fs::fadvise(&file, 2 * WINDOW as u64, None, rustix::fs::Advice::DontNeed).unwrap();
        assert_eq!(probe(&file, 2 * WINDOW as u64, 100), Residency::Missing, "the window after it");
    }

    #[test]
    fn read_in_stops_quietly_at_the_end_of_a_shorter_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"short").unwrap();
        let file = File::open(&path).unwrap();
        read_in(&file, 0, 10 * WINDOW as u64).unwrap();
        read_in(&file, 1 << 30, 4096).unwrap();
    }
}
