//! Gives memory back after a burst of connections. glibc keeps what closed connections
//! held: their buffers are spread over the worker threads' arenas between allocations that
//! live on, so a server that held 10,000 idle connections kept their ~100 MiB after they
//! closed (measured: 133 MiB a minute later, from 9.5 MiB at start). Once a second the open
//! connections are counted; when they have fallen by [`TRIM_AFTER_CLOSED`] below the peak
//! since the last trim (the accept loops keep that peak, so a burst between two counts is
//! seen too), `malloc_trim(0)` hands every free page back to the kernel.
//!
//! By hand because it is one libc call: jemalloc would decay its free pages by itself, but
//! changing the allocator of every request for what happens after a burst is not worth it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::shared::Shared;

/// How often the open connections are counted.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Connections closed since the peak that make a trim worth its cost (it walks every
/// arena): what 1,000 idle connections held is ~10 MiB.
const TRIM_AFTER_CLOSED: usize = 1000;

/// Runs for the server's life (the caller aborts it).
pub(crate) async fn watch(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut peak = 0;
    loop {
        tick.tick().await;
        let open = shared.connections.len();
        // The accept loops raise `peak_open`; taking it (and leaving the count now) sees a
        // burst that came and went between two ticks.
        peak = peak.max(open).max(shared.peak_open.swap(open, Ordering::Relaxed));
        if peak - open >= TRIM_AFTER_CLOSED {
            // Off the workers: the walk takes each arena's lock for a few milliseconds.
            let _ = tokio::task::spawn_blocking(trim).await;
            tracing::debug!(peak, open, "connections closed since the peak: free memory handed back");
            peak = open;
        }
    }
}

#[cfg(target_env = "gnu")]
fn trim() {
    // SAFETY: malloc_trim takes no pointers; glibc serialises it with allocations itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
fn trim() {}
