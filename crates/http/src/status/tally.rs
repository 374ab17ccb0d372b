//! The request counters on the hot path: per-thread shards of relaxed atomics, summed only
//! when someone reads them (the status endpoint, `-k status`, `STATUS=`).
//!
//! A request adds to its thread's shard (one cache line of its own, so two worker threads
//! never bounce a line between them): its status class and body bytes when the response
//! is built, its duration into the histogram when it ends. No lock, no shared line. A
//! reader sums every shard; a reset (hard restart) zeroes them, racing harmlessly with
//! requests still counting (a count lands before or after it).
//!
//! Written here rather than with a metrics crate: `prometheus-client` and `metrics` keep
//! one atomic per counter shared by all threads (and the former a lock per histogram),
//! which is the cache-line traffic this avoids.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The histogram's upper bounds in seconds (`le`); `+Inf` follows. Static files are served
/// in microseconds to a client on the same network, minutes to a slow one far away.
pub(crate) const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

/// Shards: more than any worker count that matters; threads beyond share.
const SHARDS: usize = 64;

/// Status classes counted: 1xx … 5xx.
pub(crate) const CLASSES: usize = 5;

/// One thread's counters, on cache lines of their own.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    by_class: [AtomicU64; CLASSES],
    bytes: AtomicU64,
    /// Non-cumulative: `buckets[i]` counts durations in (BUCKETS[i-1], BUCKETS[i]]; the last, +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_ns: AtomicU64,
}

/// The counters of every thread.
pub(crate) struct Tally {
    shards: Box<[Shard]>,
    /// Whether requests are timed (a status listener is configured): the histogram's two
    /// clock reads are all "metrics on" adds to a request.
    timing: AtomicBool,
}

impl Default for Tally {
    fn default() -> Self {
        Tally { shards: (0..SHARDS).map(|_| Shard::default()).collect(), timing: AtomicBool::new(false) }
    }
}

/// The sums at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Totals {
    /// Responses by status class, 1xx first.
    pub(crate) by_class: [u64; CLASSES],
    pub(crate) bytes: u64,
    /// Cumulative counts per bucket of [`BUCKETS`], then `+Inf` (= the number of requests timed).
    pub(crate) cumulative: [u64; BUCKETS.len() + 1],
    pub(crate) duration_seconds: f64,
}

impl Totals {
    pub(crate) fn requests(&self) -> u64 {
        self.by_class.iter().sum()
    }
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's shard index: handed out in turn at a thread's first request.
#[inline]
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.with(|cell| {
        let index = cell.get();
        if index != usize::MAX {
            return index;
        }
        let index = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        cell.set(index);
        index
    })
}

impl Tally {
    #[inline]
    fn shard(&self) -> &Shard {
        &self.shards[shard_index()]
    }

    /// Counts a response with `status` and `bytes` of body.
    #[inline]
    pub(crate) fn count(&self, status: u16, bytes: u64) {
        let shard = self.shard();
        let class = usize::from(status / 100).clamp(1, CLASSES) - 1;
        shard.by_class[class].fetch_add(1, Ordering::Relaxed);
        shard.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Whether requests are timed now.
    #[inline]
    pub(crate) fn timing(&self) -> bool {
        self.timing.load(Ordering::Relaxed)
    }

    pub(crate) fn set_timing(&self, on: bool) {
        self.timing.store(on, Ordering::Relaxed);
    }

    /// Adds a request that took `elapsed` from its head to its last byte.
    #[inline]
    pub(crate) fn observe(&self, elapsed: Duration) {
        let shard = self.shard();
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&le| seconds <= le).unwrap_or(BUCKETS.len());
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        shard.duration_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The sums over every shard.
    pub(crate) fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        let mut buckets = [0u64; BUCKETS.len() + 1];
        let mut duration_ns = 0u64;
        for shard in &self.shards {
            for (sum, n) in totals.by_class.iter_mut().zip(&shard.by_class) {
                *sum += n.load(Ordering::Relaxed);
            }
            totals.bytes += shard.bytes.load(Ordering::Relaxed);
            for (sum, n) in buckets.iter_mut().zip(&shard.buckets) {
                *sum += n.load(Ordering::Relaxed);
            }
            duration_ns = duration_ns.wrapping_add(shard.duration_ns.load(Ordering::Relaxed));
        }
        let mut running = 0;
        for (cumulative, n) in totals.cumulative.iter_mut().zip(buckets) {
            running += n;
            *cumulative = running;
        }
        totals.duration_seconds = duration_ns as f64 / 1e9;
        totals
    }

    /// Zeroes every counter (a hard restart).
    pub(crate) fn reset(&self) {
        for shard in &self.shards {
            for n in shard.by_class.iter().chain([&shard.bytes, &shard.duration_ns]).chain(&shard.buckets) {
                n.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// A count that rises and falls on any thread (a connection's task may start reading a head
/// on one worker and be dispatched on another): per-thread shards of signed relaxed atomics,
/// like [`Tally`]'s, summed when read; so the hot path never writes a line another worker
/// writes too. The sum is not of one instant (shards are read one after another), so it is
/// for reports (the status page, `-k status`), never for a decision such as "drained".
pub(crate) struct Gauge {
    shards: Box<[GaugeShard]>,
}

/// One thread's share of a [`Gauge`], on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct GaugeShard(AtomicI64);

impl Default for Gauge {
    fn default() -> Self {
        Gauge { shards: (0..SHARDS).map(|_| GaugeShard::default()).collect() }
    }
}

impl Gauge {
    #[inline]
    pub(crate) fn increment(&self) {
        self.shards[shard_index()].0.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn decrement(&self) {
        self.shards[shard_index()].0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The sum over every shard (a shard alone may be negative; the sum is not, unless read
    /// between a fall on one thread and its rise being seen from another: then 0).
    pub(crate) fn get(&self) -> u64 {
        let sum: i64 = self.shards.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
        u64::try_from(sum).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What timing adds to a request, measured in process (run it in release:
    /// `cargo test --release -p graced-http --lib tally -- --ignored --nocapture`): the two
    /// clock reads and the histogram update, against the count every request pays anyway.
    #[test]
    #[ignore = "a measurement, not a check; run it in release"]
    fn cost_of_timing_a_request() {
        let tally = Tally::default();
        let n = 10_000_000u32;
        let started = std::time::Instant::now();
        for i in 0..n {
            tally.count(200, u64::from(i & 1023));
        }
        let counted = started.elapsed() / n;
        let started = std::time::Instant::now();
        for i in 0..n {
            let from = std::time::Instant::now();
            tally.count(200, u64::from(i & 1023));
            tally.observe(std::hint::black_box(from).elapsed());
        }
        let timed = started.elapsed() / n;
        println!(
            "per request: count {counted:?}; count + timing {timed:?}; timing adds {:?}",
            timed - counted
        );
        assert_eq!(tally.totals().requests(), 2 * u64::from(n));
    }

    #[test]
    fn counts_from_many_threads_add_up_and_buckets_are_cumulative() {
        let tally = std::sync::Arc::new(Tally::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let tally = tally.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        tally.count(if i % 10 == 0 { 404 } else { 200 }, 3);
                        tally.observe(Duration::from_micros(i % 2 * 2000 + 50));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let totals = tally.totals();
        assert_eq!(totals.by_class, [0, 3600, 0, 400, 0]);
        assert_eq!(totals.requests(), 4000);
        assert_eq!(totals.bytes, 12_000);
        // 50 µs ≤ 0.0001 s; 2050 µs ≤ 0.0025 s.
        assert_eq!(totals.cumulative[0], 2000);
        assert_eq!(totals.cumulative[3], 2000);
        assert_eq!(totals.cumulative[4], 4000);
        assert_eq!(*totals.cumulative.last().unwrap(), 4000);
        assert!((totals.duration_seconds - (2000.0 * 50e-6 + 2000.0 * 2050e-6)).abs() < 1e-6);
        tally.reset();
        assert_eq!(tally.totals(), Totals::default());
    }

    #[test]
    fn a_gauge_raised_on_one_thread_and_lowered_on_another_sums_right() {
        let gauge = std::sync::Arc::new(Gauge::default());
        for _ in 0..3 {
            gauge.increment();
        }
        let other = gauge.clone();
        std::thread::spawn(move || {
            other.decrement();
            other.decrement();
        })
        .join()
        .unwrap();
        assert_eq!(gauge.get(), 1);
        gauge.decrement();
        assert_eq!(gauge.get(), 0);
    }
}
