//! `multipart/byteranges` (RFC 9110 §14.6): the parts of a 206 that answers several ranges,
//! each with its own `Content-Type` and `Content-Range`, between boundaries.
//!
//! Which ranges are allowed, and how they are merged, is decided in `conditional`; this only
//! lays out the body. The boundary is 32 random hex digits per response, so content that
//! happens to hold a boundary line of another response cannot end a part early.

use std::hash::{BuildHasher, Hasher};
use std::ops::Range;

use std::sync::Arc;

use bytes::Bytes;

use crate::body::{Body, Part};
use crate::files::Content;

/// One piece of a multipart body, in order: framing text, or a range of the representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(Bytes),
    Range(Range<u64>),
}

/// A multipart/byteranges body's layout.
#[derive(Debug)]
pub(crate) struct Layout {
    /// The response's `Content-Type`.
    pub(crate) content_type: String,
    pub(crate) pieces: Vec<Piece>,
    /// The body's length in bytes.
    pub(crate) len: u64,
}

/// The layout of a 206 with `ranges` (sorted, disjoint, within `total`) of a representation
/// of `total` bytes whose type is `content_type`.
pub(crate) fn layout(ranges: &[Range<u64>], total: u64, content_type: &str) -> Layout {
    let boundary = boundary();
    let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut len = 0u64;
    for (i, range) in ranges.iter().enumerate() {
        // The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
        let lead = if i == 0 { "" } else { "\r\n" };
        let head = format!(
            "{lead}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {}-{}/{total}\r\n\r\n",
            range.start,
            range.end - 1
        );
        len += head.len() as u64 + (range.end - range.start);
        pieces.push(Piece::Text(Bytes::from(head)));
        pieces.push(Piece::Range(range.clone()));
    }
    let tail = format!("\r\n--{boundary}--\r\n");
    len += tail.len() as u64;
    pieces.push(Piece::Text(Bytes::from(tail)));
    Layout { content_type: format!("multipart/byteranges; boundary={boundary}"), pieces, len }
}

/// The body of a 206 with `ranges` of `content` (`total` bytes of `content_type`), and its
/// `Content-Type`.
pub(crate) fn body(
    ranges: &[Range<u64>],
    total: u64,
    content_type: &str,
    content: Content,
) -> (String, Body) {
    let layout = layout(ranges, total, content_type);
    let (memory, file): (Option<Bytes>, Option<Arc<std::fs::File>>) = match content {
        Content::Static(bytes) => (Some(Bytes::from_static(bytes)), None),
        Content::Cached(bytes) => (Some(bytes), None),
        Content::File(file) => (None, Some(Arc::new(file))),
        Content::Open(file) => (None, Some(file)),
    };
    let parts = layout
        .pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => Part::Bytes(text),
            Piece::Range(r) => match (&memory, &file) {
                (Some(bytes), _) => Part::Bytes(bytes.slice(r.start as usize..r.end as usize)),
                (None, Some(file)) => {
                    Part::File { file: file.clone(), offset: r.start, len: r.end - r.start }
                }
                (None, None) => unreachable!("content is in memory or in a file"),
            },
        })
        .collect();
    (layout.content_type, Body::parts(parts, layout.len))
}

/// 32 hex digits from std's randomly keyed hasher (a fresh key per call), so no crate is
/// needed for a value that must only be unpredictable, not secret.
fn boundary() -> String {
    let word = |n: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_adds_up_and_frames_each_part() {
        let data: Vec<u8> = (0..100u8).collect();
        let l = layout(&[0..10, 50..60], 100, "text/plain");
        let mut body = Vec::new();
        for p in &l.pieces {
            match p {
                Piece::Text(t) => body.extend_from_slice(t),
                Piece::Range(r) => body.extend_from_slice(&data[r.start as usize..r.end as usize]),
            }
        }
        assert_eq!(body.len() as u64, l.len);
        let boundary = l.content_type.strip_prefix("multipart/byteranges; boundary=").unwrap();
        assert_eq!(boundary.len(), 32);
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!(
            "--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-9/100\r\n\r\n"
        )));
        assert!(text.contains("Content-Range: bytes 50-59/100"));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        assert_ne!(boundary, layout(&[0..1, 2..3], 100, "x/y").content_type.rsplit('=').next().unwrap());
    }
}
