//! What the server sent, frame by frame: a [`Tap`] under the h2 client that parses the bytes
//! it reads (RFC 9113 §4.1 frame headers) without changing them, and the frame constants.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

/// RST_STREAM and GOAWAY error codes (RFC 9113 §7).
pub(crate) const NO_ERROR: u32 = 0x0;
pub(crate) const REFUSED_STREAM: u32 = 0x7;
pub(crate) const ENHANCE_YOUR_CALM: u32 = 0xb;

/// SETTINGS identifiers (RFC 9113 §6.5.2).
pub(crate) const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(crate) const INITIAL_WINDOW_SIZE: u16 = 0x4;
pub(crate) const MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// One frame as it came off the wire.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }

    /// GOAWAY: (last stream id, error code).
    pub(crate) fn goaway(&self) -> Option<(u32, u32)> {
        (self.kind == GOAWAY).then(|| (self.u32_at(0) & 0x7fff_ffff, self.u32_at(4)))
    }

    /// RST_STREAM: the error code.
    pub(crate) fn reset(&self) -> Option<u32> {
        (self.kind == RST_STREAM).then(|| self.u32_at(0))
    }

    /// A SETTINGS frame (not an ACK): its (identifier, value) pairs.
    pub(crate) fn settings(&self) -> Option<Vec<(u16, u32)>> {
        (self.kind == SETTINGS && self.flags & ACK == 0).then(|| {
            self.payload
                .chunks_exact(6)
                .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes(c[2..6].try_into().unwrap())))
                .collect()
        })
    }
}

/// Splits a byte stream into frames.
#[derive(Default)]
pub(crate) struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    /// Takes `bytes` in and returns the frames they completed.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while self.buf.len() >= 9 {
            let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
            if self.buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes(self.buf[5..9].try_into().unwrap()) & 0x7fff_ffff;
            let payload = self.buf[9..9 + len].to_vec();
            frames.push(Frame { kind: self.buf[3], flags: self.buf[4], stream, payload });
            self.buf.drain(..9 + len);
        }
        frames
    }
}

/// The frames a [`Tap`] saw (DATA frames without their payload: only the length counts).
#[derive(Default)]
pub(crate) struct Log {
    parser: Parser,
    pub(crate) frames: Vec<Frame>,
    pub(crate) data_bytes: usize,
}

impl Log {
    pub(crate) fn goaways(&self) -> Vec<(u32, u32)> {
        self.frames.iter().filter_map(Frame::goaway).collect()
    }

    /// The RST_STREAMs the server sent: (stream, code).
    pub(crate) fn resets(&self) -> Vec<(u32, u32)> {
        self.frames.iter().filter_map(|f| Some((f.stream, f.reset()?))).collect()
    }

    /// The server's first SETTINGS (the one that opens the connection).
    pub(crate) fn settings(&self) -> Vec<(u16, u32)> {
        self.frames.iter().find_map(Frame::settings).unwrap_or_default()
    }
}

/// Passes bytes through both ways; records every frame read.
pub(crate) struct Tap<S> {
    inner: S,
    log: Arc<Mutex<Log>>,
}

impl<S> Tap<S> {
    pub(crate) fn new(inner: S) -> (Tap<S>, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        (Tap { inner, log: log.clone() }, log)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let mut log = self.log.lock().unwrap();
        for mut frame in log.parser.feed(&buf.filled()[before..]) {
            if frame.kind == DATA {
                log.data_bytes += frame.payload.len();
                frame.payload = Vec::new();
            }
            log.frames.push(frame);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
