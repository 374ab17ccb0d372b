//! HTTP/1.1 as the tests see it: one parsed [`Response`], one parser, and the clients built on them.
//!
//! [`read_response`] reads a response from any buffered reader (Content-Length, chunked or
//! to end of file); [`parse_head`] parses a response head already read (a slow reader reads
//! it byte by byte so no body byte is consumed, an exchange read to end of file keeps every
//! byte after the head as the body). Header names are kept lowercased. Every failure is a
//! [`Failure`] naming what went wrong; nothing is retried.

mod client;
mod keepalive;
mod response;
mod slow;
mod tls;

pub use client::{Client, exchange, read_to_eof, read_until_end, refused, wait_refused};
pub use keepalive::{IO_TIMEOUT, KeepAlive, connect, get, must_get};
pub use response::{Failure, Response, parse_head, parse_raw, read_head, read_response};
pub use slow::{
    FAST, SLOW, STALL, SlowDownload, SlowGet, SlowOutcome, connect_small_rcvbuf, loopback, slow_get,
};
pub use tls::{Tls, TlsEnd, TlsKeepAlive, serial_hex, serial_of};
