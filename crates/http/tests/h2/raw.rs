//! A frame-level h2c client for what no well-behaved client does: opening a stream after
//! GOAWAY, more streams than SETTINGS allow, a preface sent in pieces. Header blocks use
//! HPACK's static table and literals without indexing only (RFC 7541 §6.1, §6.2.2).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::frames::{
    ACK, DATA, END_HEADERS, END_STREAM, Frame, HEADERS, INITIAL_WINDOW_SIZE, PING, Parser, SETTINGS,
    WINDOW_UPDATE,
};

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(crate) struct Raw {
    tcp: TcpStream,
    parser: Parser,
    pending: std::collections::VecDeque<Frame>,
    /// Give back the window of every DATA frame read (else the window is never exhausted).
    auto_window: bool,
}

pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A GET's header block: `:method GET`, `:scheme http` (static entries 2 and 6), `:path`
/// and `:authority` as literals with an indexed name (entries 4 and 1).
pub(crate) fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    for (index, value) in [(0x04u8, path), (0x01, "localhost")] {
        assert!(value.len() < 127);
        block.extend_from_slice(&[index, value.len() as u8]);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

impl Raw {
    /// Connects with the preface and SETTINGS `INITIAL_WINDOW_SIZE = window`. When `window`
    /// is the largest, the connection's window is opened as wide, so nothing ever waits for
    /// a WINDOW_UPDATE; else each DATA frame's window is given back once [`next`](Self::next)
    /// returned it, so the server is never more than `window` ahead of the reader.
    pub(crate) async fn connect(addr: SocketAddr, window: u32) -> Raw {
        let mut raw = Raw::connect_without_preface(addr).await;
        assert!(raw.write(PREFACE).await);
        raw.settings(window).await;
        raw.auto_window = window != 0x7fff_ffff;
        raw
    }

    /// The TCP connection only: the caller sends the preface (or not).
    pub(crate) async fn connect_without_preface(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Raw { tcp, parser: Parser::default(), pending: Default::default(), auto_window: false }
    }

    /// Writes `bytes`; false if the server has closed (or reset) the connection.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    pub(crate) async fn settings(&mut self, window: u32) {
        let mut payload = INITIAL_WINDOW_SIZE.to_be_bytes().to_vec();
        payload.extend_from_slice(&window.to_be_bytes());
        self.write(&frame(SETTINGS, 0, 0, &payload)).await;
        if window == 0x7fff_ffff {
            self.write(&frame(WINDOW_UPDATE, 0, 0, &(0x7fff_ffff - 65_535u32).to_be_bytes())).await;
        }
    }

    /// Opens stream `stream` with a GET for `path` (HEADERS with END_STREAM and END_HEADERS).
    pub(crate) async fn get(&mut self, stream: u32, path: &str) {
        self.write(&frame(HEADERS, END_STREAM | END_HEADERS, stream, &get_block(path))).await;
    }

    /// The next frame the server sends (SETTINGS and PING are acknowledged on the way), or None when
    /// the connection ends or nothing comes within `wait`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Frame> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.pending.is_empty() {
            let n = match tokio::time::timeout(wait, self.tcp.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return None,
            };
            self.pending.extend(self.parser.feed(&buf[..n]));
        }
        let got = self.pending.pop_front()?;
        if got.kind == SETTINGS && got.flags & ACK == 0 {
            self.write(&frame(SETTINGS, ACK, 0, &[])).await;
        }
        if got.kind == PING && got.flags & ACK == 0 {
            self.write(&frame(PING, ACK, 0, &got.payload)).await;
        }
        if got.kind == DATA && self.auto_window && !got.payload.is_empty() {
            let increment = (got.payload.len() as u32).to_be_bytes();
            let mut update = frame(WINDOW_UPDATE, 0, 0, &increment);
            if got.flags & END_STREAM == 0 {
                update.extend(frame(WINDOW_UPDATE, 0, got.stream, &increment));
            }
            self.write(&update).await;
        }
        Some(got)
    }
}
