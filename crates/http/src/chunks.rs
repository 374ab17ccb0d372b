//! File bodies for connections that cannot use `sendfile` (TLS, encrypted in user space):
//! the file is read a [`CHUNK`] at a time into memory and handed to hyper as data frames.
//!
//! **Disk reads stay off the serving threads**, as for `sendfile` bodies: each chunk is
//! first read with `preadv2(RWF_NOWAIT)`, which copies what the page cache holds and fails
//! rather than wait for the disk. Only when it finds nothing is the chunk read on tokio's
//! blocking pool. Where the file system does not do `RWF_NOWAIT` reads (tmpfs, whose pages
//! are memory anyway, and overlayfs) chunks are read on the serving thread, as `sendfile`
//! bodies are sent there.

use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::task::JoinHandle;

/// Bytes read, and handed to hyper as one frame, at a time. 64 KiB: wrk over TLS on
/// loopback (1 MiB file, 64 connections, 2 CPUs, 4–5 alternating rounds) gave 64, 128 and
/// 256 KiB the same throughput within noise (~650–670 req/s), 64 KiB the least server CPU
/// per request (~570 µs against ~590 and ~630), and it holds the least memory per
/// response in flight; a 100 KiB file (two chunks against one) measured the same too.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The rest of a file range, read a chunk at a time.
pub(crate) struct FileChunks {
    file: Arc<File>,
    /// The file offset of the next chunk.
    at: u64,
    remaining: u64,
    /// The file system does not do `RWF_NOWAIT` reads: read on the serving thread.
    no_nowait: bool,
    /// A chunk being read on the blocking pool.
    reading: Option<JoinHandle<io::Result<Vec<u8>>>>,
}

impl FileChunks {
    pub(crate) fn new(file: Arc<File>, offset: u64, len: u64) -> FileChunks {
        FileChunks { file, at: offset, remaining: len, no_nowait: false, reading: None }
    }

    /// Bytes not yet handed out.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next chunk; `None` at the end of the range.
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = self.remaining.min(CHUNK as u64) as usize;
        loop {
            if let Some(reading) = self.reading.as_mut() {
                let result = ready!(Pin::new(reading).poll(cx));
                self.reading = None;
                let read = result.unwrap_or_else(|join| Err(io::Error::other(join)));
                return Poll::Ready(Some(read.and_then(|buf| self.advance(buf))));
            }
            match self.read_now(want) {
                Some(read) => return Poll::Ready(Some(read.and_then(|buf| self.advance(buf)))),
                None => {
                    let (file, at) = (self.file.clone(), self.at);
                    self.reading = Some(tokio::task::spawn_blocking(move || read_at(&file, at, want)));
                }
            }
        }
    }

    /// Reads up to `want` bytes without waiting for the disk; `None`: none are in the page
    /// cache, read on the blocking pool.
    fn read_now(&mut self, want: usize) -> Option<io::Result<Vec<u8>>> {
        use rustix::io::{Errno, ReadWriteFlags, preadv2};
        if self.no_nowait {
            return Some(read_at(&self.file, self.at, want));
        }
        let mut buf = vec![0u8; want];
        loop {
            let flags = ReadWriteFlags::NOWAIT;
            match preadv2(&*self.file, &mut [io::IoSliceMut::new(&mut buf)], self.at, flags) {
                Err(Errno::INTR) => continue,
                Ok(n) if n > 0 => {
                    buf.truncate(n);
                    return Some(Ok(buf));
                }
                // EAGAIN: not in memory; 0 bytes: perhaps not in memory either (or the
                // file ends early: the blocking read finds out).
                Ok(_) | Err(Errno::AGAIN) => return None,
                Err(Errno::OPNOTSUPP) => {
                    tracing::debug!("the file system does no RWF_NOWAIT reads: reading chunks as they are");
                    self.no_nowait = true;
                    return Some(read_at(&self.file, self.at, want));
                }
                Err(err) => return Some(Err(err.into())),
            }
        }
    }

    fn advance(&mut self, buf: Vec<u8>) -> io::Result<Bytes> {
        if buf.is_empty() {
            // The file shrank under us: end the response short rather than hang.
            self.remaining = 0;
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file truncated while being served"));
        }
        let n = (buf.len() as u64).min(self.remaining);
        self.at += n;
        self.remaining -= n;
        Ok(Bytes::from(buf))
    }
}

/// Reads up to `want` bytes of `file` from `at` (fewer only at the end of the file).
fn read_at(file: &File, at: u64, want: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; want];
    let mut done = 0;
    while done < want {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    async fn collect(mut chunks: FileChunks) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| chunks.poll_chunk(cx)).await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn chunks_give_the_range_byte_exact_cached_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * CHUNK + 777).map(|i| (i * 31 % 251) as u8).collect();
        File::create(&path).unwrap().write_all(&data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let got = collect(FileChunks::new(file.clone(), 5, data.len() as u64 - 10)).await.unwrap();
        assert_eq!(got, data[5..data.len() - 5]);
        // Dropped from the page cache (where the file system has one): read on the blocking pool.
        let _ = rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed);
        let got = collect(FileChunks::new(file, 0, data.len() as u64)).await.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_range_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"short").unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let err = collect(FileChunks::new(file, 0, 10 * CHUNK as u64)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
