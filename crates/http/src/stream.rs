//! [`StreamGuard`]: an HTTP/2 stream in flight — counted in the server's gauge, and ended by a hard restart that reaches it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::shared::Shared;

/// Held by an HTTP/2 response body until its last frame (or until it is dropped).
pub(crate) struct StreamGuard {
    shared: Arc<Shared>,
    /// The connection's hard restarts so far, and how many there were when the stream began.
    restarts: Arc<AtomicU64>,
    at: u64,
}

impl StreamGuard {
    pub(crate) fn new(shared: Arc<Shared>, restarts: Arc<AtomicU64>) -> StreamGuard {
        shared.h2_streams.fetch_add(1, Ordering::Relaxed);
        let at = restarts.load(Ordering::Acquire);
        StreamGuard { shared, restarts, at }
    }

    /// A hard restart reached the connection since the stream began: the stream is reset.
    #[inline]
    pub(crate) fn restarted(&self) -> bool {
        self.restarts.load(Ordering::Acquire) != self.at
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.h2_streams.fetch_sub(1, Ordering::Relaxed);
    }
}
