//! Generations: the configuration a request is served with, and the counters that outlive them.
//!
//! Each request takes the current generation when it starts and keeps it to its
//! end, so a graceful reload never has to close a connection: the next request on
//! the same keep-alive connection simply takes the new one. Old generations stay
//! alive (Apache's mod_status "G") exactly as long as a request still holds them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Instant, SystemTime};

use crate::access_log::{AccessLogSink, Pending};
use crate::files::RootDir;
use crate::status::tally::{Gauge, Tally};
use graced_config::Config;

/// One configuration being served, with its own access-log sink.
pub struct Generation {
    pub id: u64,
    pub config: Arc<Config>,
    /// One per site, in `config.sites` order.
    pub(crate) roots: Vec<RootDir>,
    pub access_log: AccessLogSink,
    /// What TLS listeners hand to a connection's handshake: certificates by SNI, the
    /// protocol policy, the session cache and ticketer (kept across generations by the
    /// caller). `None` when no listener is TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub created: SystemTime,
    /// How it began, for the status endpoint: "start", "reload", "restart", "reopen-logs".
    pub origin: &'static str,
    /// Requests in flight, by thread (one shared counter would bounce between the workers
    /// twice a request).
    in_flight: Gauge,
    /// The server's counters, where its requests' durations go (set when the server takes it).
    pub(crate) tally: Option<Arc<Tally>>,
}

impl Generation {
    pub fn new(id: u64, config: Arc<Config>, access_log: AccessLogSink) -> Generation {
        let roots = config.sites.iter().map(|site| RootDir::new(&site.root)).collect();
        crate::rules::access::warn_plain_http(&config);
        Generation {
            id,
            config,
            roots,
            access_log,
            tls: None,
            created: SystemTime::now(),
            origin: "start",
            in_flight: Gauge::default(),
            tally: None,
        }
    }

    /// The same generation, begun by `origin` ("reload", "restart", "reopen-logs").
    pub fn with_origin(mut self, origin: &'static str) -> Generation {
        self.origin = origin;
        self
    }

    /// The same generation with `tls` for its TLS listeners' handshakes.
    pub fn with_tls(mut self, tls: Arc<rustls::ServerConfig>) -> Generation {
        self.tls = Some(tls);
        self
    }

    /// Requests currently being served with this generation.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get() as usize
    }
}

/// Counts a request against its generation for as long as it lives; when it ends, its
/// duration goes into the histogram (while requests are timed: `started`) and its
/// access-log line (`pending`) to the generation's log.
pub(crate) struct GenerationGuard {
    generation: Arc<Generation>,
    started: Option<Instant>,
    pending: Option<Pending>,
}

impl GenerationGuard {
    pub(crate) fn new(
        generation: Arc<Generation>,
        started: Option<Instant>,
        pending: Option<Pending>,
    ) -> GenerationGuard {
        generation.in_flight.increment();
        GenerationGuard { generation, started, pending }
    }

    /// Whether a request served with `generation` is timed: for the histogram (a status
    /// listener is configured) or for its log line (JSON lines carry the duration).
    #[inline]
    pub(crate) fn times(generation: &Generation) -> bool {
        generation.tally.as_ref().is_some_and(|t| t.timing()) || generation.access_log.timed()
    }
}

impl Drop for GenerationGuard {
    fn drop(&mut self) {
        let generation = &self.generation;
        let elapsed = self.started.map(|started| started.elapsed());
        if let (Some(elapsed), Some(tally)) = (elapsed, &generation.tally)
            && tally.timing()
        {
            tally.observe(elapsed);
        }
        if let Some(pending) = self.pending.take() {
            generation.access_log.finish(pending, elapsed);
        }
        generation.in_flight.decrement();
    }
}

/// Counters that survive a graceful reload and are reset by a hard restart, as in Apache.
#[derive(Default)]
pub struct Counters {
    /// Responses by status class, body bytes, and the duration histogram (per thread).
    pub(crate) tally: Arc<Tally>,
    pub reloads: AtomicU64,
    pub failed_reloads: AtomicU64,
    /// TLS connections that ended before their handshake did: garbage, a broken or
    /// truncated ClientHello, a failed handshake, a client that left.
    pub tls_failed_handshakes: AtomicU64,
    /// TLS handshakes cut at `[tls] handshake_timeout`.
    pub tls_handshake_timeouts: AtomicU64,
    /// Plaintext HTTP requests on a TLS port (answered with a 400 page).
    pub tls_plaintext_requests: AtomicU64,
}

impl Counters {
    pub fn reset(&self) {
        self.tally.reset();
        for counter in [
            &self.reloads,
            &self.failed_reloads,
            &self.tls_failed_handshakes,
            &self.tls_handshake_timeouts,
            &self.tls_plaintext_requests,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// Every generation still alive: the current one plus old ones finishing requests.
#[derive(Default)]
pub(crate) struct Registry {
    all: Mutex<Vec<Weak<Generation>>>,
}

impl Registry {
    pub(crate) fn add(&self, generation: &Arc<Generation>) {
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|g| g.strong_count() > 0);
        all.push(Arc::downgrade(generation));
    }

    /// (generation id, requests in flight) for every live generation other than `current`.
    pub(crate) fn finishing(&self, current: u64) -> Vec<(u64, usize)> {
        let all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .filter_map(Weak::upgrade)
            .filter(|g| g.id != current && g.in_flight() > 0)
            .map(|g| (g.id, g.in_flight()))
            .collect()
    }

    /// Every live generation, oldest first.
    pub(crate) fn live(&self) -> Vec<Arc<Generation>> {
        let all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        let mut live: Vec<_> = all.iter().filter_map(Weak::upgrade).collect();
        live.sort_by_key(|g| g.id);
        live
    }
}
