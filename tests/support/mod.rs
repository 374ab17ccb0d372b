//! What the loopback test helpers (`tests/common`) and the container harness (`tests/harness`) share: the parsed response and the byte pattern for large files.
//!
//! Included by path from both (`#[path = "../support/mod.rs"]`): each test crate that
//! includes either helper compiles its own copy, so a crate uses only what it needs.
#![allow(dead_code)]

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the body is exactly `expected`; a failure says how many bytes came (a
    /// large body is not printed).
    pub fn assert_body(&self, expected: &[u8], what: &str) {
        assert!(
            self.body == expected,
            "{what}: {} of {} bytes arrived, or they differ",
            self.body.len(),
            expected.len()
        );
    }

    /// The server said it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// Deterministic, non-repeating bytes (xorshift), so a misplaced, repeated or lost chunk of
/// a large response cannot go unnoticed in a comparison.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
