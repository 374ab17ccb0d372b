//! Everything the status endpoint shows, read at one moment from what the server shares:
//! plain values the page, the JSON and `/metrics` render (none of them reads the server).

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::shared::Shared;
use crate::status::report::Report;
use crate::status::tally::Totals;

/// One live generation.
#[derive(Debug, Clone)]
pub(crate) struct GenerationView {
    pub(crate) id: u64,
    pub(crate) created: SystemTime,
    pub(crate) origin: &'static str,
    pub(crate) in_flight: u64,
    pub(crate) current: bool,
}

/// Open connections by what they are doing.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionStates {
    /// HTTP/1.1 connections with a response in flight.
    pub(crate) writing: u64,
    /// HTTP/1.1 connections reading a request head (Apache's "R").
    pub(crate) reading: u64,
    /// HTTP/1.1 (or TLS) connections between requests: idle keep-alive, or a TLS handshake.
    pub(crate) idle: u64,
    /// HTTP/2 connections (their streams are counted apart).
    pub(crate) http2: u64,
    /// Connections to the status endpoint itself.
    pub(crate) status: u64,
}

impl ConnectionStates {
    pub(crate) fn open(&self) -> u64 {
        self.writing + self.reading + self.idle + self.http2 + self.status
    }
}

/// The status at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) version: &'static str,
    pub(crate) now: SystemTime,
    /// When the server (the process) started serving.
    pub(crate) started: SystemTime,
    pub(crate) generations: Vec<GenerationView>,
    pub(crate) connections: ConnectionStates,
    /// A graceful stop began: every connection is draining.
    pub(crate) draining: bool,
    pub(crate) h2_streams: u64,
    pub(crate) totals: Totals,
    /// Whether requests are timed (they are while a status listener is configured).
    pub(crate) timed: bool,
    pub(crate) reloads: u64,
    pub(crate) failed_reloads: u64,
    pub(crate) tls_failed_handshakes: u64,
    pub(crate) tls_handshake_timeouts: u64,
    pub(crate) tls_plaintext_requests: u64,
    pub(crate) report: Report,
    /// Access-log lines dropped (a destination that did not keep up), since the process started.
    pub(crate) access_log_dropped: u64,
}

impl Snapshot {
    pub(crate) fn take(shared: &Shared) -> Snapshot {
        let current = shared.current().id;
        let generations: Vec<GenerationView> = shared
            .registry
            .live()
            .iter()
            .map(|g| GenerationView {
                id: g.id,
                created: g.created,
                origin: g.origin,
                in_flight: g.in_flight() as u64,
                current: g.id == current,
            })
            .collect();
        let counters = &shared.counters;
        let h2_connections = shared.h2_connections.load(Ordering::Relaxed);
        let h2_streams = shared.h2_streams.load(Ordering::Relaxed);
        let status = shared.status_connections.load(Ordering::Relaxed);
        let in_flight: u64 = generations.iter().map(|g| g.in_flight).sum();
        let writing = in_flight.saturating_sub(h2_streams);
        let open = shared.connections.len() as u64;
        let reading = shared.reading.get();
        let idle = open.saturating_sub(writing + reading + h2_connections + status);
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            now: SystemTime::now(),
            started: shared.started,
            generations,
            connections: ConnectionStates { writing, reading, idle, http2: h2_connections, status },
            draining: shared.is_draining(),
            h2_streams,
            totals: counters.tally.totals(),
            timed: counters.tally.timing(),
            reloads: counters.reloads.load(Ordering::Relaxed),
            failed_reloads: counters.failed_reloads.load(Ordering::Relaxed),
            tls_failed_handshakes: counters.tls_failed_handshakes.load(Ordering::Relaxed),
            tls_handshake_timeouts: counters.tls_handshake_timeouts.load(Ordering::Relaxed),
            tls_plaintext_requests: counters.tls_plaintext_requests.load(Ordering::Relaxed),
            report: shared.report.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            access_log_dropped: crate::access_log::dropped_lines(),
        }
    }

    /// The generation serving new requests.
    pub(crate) fn current(&self) -> Option<&GenerationView> {
        self.generations.iter().find(|g| g.current)
    }
}

/// Seconds since the epoch, as Prometheus and JSON carry times.
pub(crate) fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
