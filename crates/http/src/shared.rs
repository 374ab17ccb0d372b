//! What the server and every connection share: the current generation, the counters, the
//! open connections, and the orders (abort, drain) the server gives them.
//!
//! **Orders** go out on one `tokio::sync::watch` channel holding an [`Orders`] value; each
//! connection holds a receiver ([`Subscription`]). Subscribing and dropping a receiver
//! are atomic counter updates, so accepting and closing a connection take no lock shared
//! by all connections (the old design kept a global map of per-connection controls
//! behind a mutex). A connection registers its waker with the channel once per wait (at
//! its start and after each order) and afterwards checks the channel's version, one atomic
//! load, on each wake-up; it polls the channel's future again only when that changed
//! (see `connection`), so a request costs no lock either.
//!
//! Which connections an order reaches:
//! * a stop aborts every connection, and — until accepting starts again — every
//!   connection registered afterwards (a stopped accept loop may hand over one last one);
//! * a hard restart aborts the connections with a response in flight at that moment; an
//!   idle keep-alive connection stays open and its next request takes the new generation;
//! * a graceful stop makes responses say `Connection: close` and closes idle connections
//!   once no request bytes wait; connections registered afterwards start draining too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::generation::{Counters, Generation, Registry};
use crate::status::report::Report;
use crate::status::tally::Gauge;

/// State shared by the accept loops and every connection.
pub(crate) struct Shared {
    current: ArcSwap<Generation>,
    pub(crate) counters: Counters,
    pub(crate) registry: Registry,
    /// Set once, when a graceful stop begins: responses say `Connection: close`.
    draining: AtomicBool,
    orders: watch::Sender<Orders>,
    pub(crate) connections: TaskTracker,
    /// HTTP/2 connections and streams open now (gauges: a hard restart leaves them).
    pub(crate) h2_connections: AtomicU64,
    pub(crate) h2_streams: AtomicU64,
    /// Connections to the status endpoint open now.
    pub(crate) status_connections: AtomicU64,
    /// HTTP/1.1 connections reading a request head (Apache's "R"): bytes of a head read,
    /// the request not dispatched yet (see `Meter::with_reading_gauge`).
    pub(crate) reading: Arc<Gauge>,
    /// What the caller reports for the status endpoint (set after each reload).
    pub(crate) report: Mutex<Report>,
    /// When the server started.
    pub(crate) started: SystemTime,
}

impl Shared {
    pub(crate) fn new(generation: Generation) -> Shared {
        let counters = Counters::default();
        let generation = Arc::new(adopt(generation, &counters));
        let registry = Registry::default();
        registry.add(&generation);
        Shared {
            current: ArcSwap::new(generation),
            counters,
            registry,
            draining: AtomicBool::new(false),
            orders: watch::Sender::new(Orders::default()),
            connections: TaskTracker::new(),
            h2_connections: AtomicU64::new(0),
            h2_streams: AtomicU64::new(0),
            status_connections: AtomicU64::new(0),
            reading: Arc::new(Gauge::default()),
            report: Mutex::new(Report::default()),
            started: SystemTime::now(),
        }
    }

    /// The generation a request starting now takes.
    pub(crate) fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Makes `generation` the one every new request takes.
    pub(crate) fn install(&self, generation: Generation) {
        let generation = Arc::new(adopt(generation, &self.counters));
        self.registry.add(&generation);
        self.current.store(generation);
    }

    /// Whether a graceful stop began (responses say `Connection: close`).
    #[inline]
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Registers a connection: from now on the orders reach it.
    pub(crate) fn subscribe(&self) -> Subscription {
        let mut rx = self.orders.subscribe();
        let now = *rx.borrow_and_update();
        let seen = now.baseline();
        Subscription { rx, seen, unread: now != seen }
    }

    /// A stop: aborts every open connection, and every one registered until
    /// [`resume`](Self::resume).
    pub(crate) fn stop_all(&self) {
        self.orders.send_modify(|orders| {
            orders.stops += 1;
            orders.stopped = true;
        });
    }

    /// Accepting starts again: connections registered from now on are not aborted by the
    /// last stop.
    pub(crate) fn resume(&self) {
        self.orders.send_if_modified(|orders| std::mem::replace(&mut orders.stopped, false));
    }

    /// A hard restart: aborts the connections with a response in flight now.
    pub(crate) fn restart(&self) {
        self.orders.send_modify(|orders| orders.restarts += 1);
    }

    /// A graceful stop: from now on responses say `Connection: close` and idle
    /// connections, open or registered later, are closed once no request bytes wait.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.orders.send_modify(|orders| orders.draining = true);
    }
}

/// `generation`, counting into `counters`; requests are timed while a status listener is configured.
fn adopt(mut generation: Generation, counters: &Counters) -> Generation {
    counters.tally.set_timing(generation.config.listeners.iter().any(|l| l.status));
    generation.tally = Some(counters.tally.clone());
    generation
}

/// Every order given so far; a connection compares it with the last value it acted on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Orders {
    /// Stops so far: each aborts every connection open at that moment.
    stops: u64,
    /// The last stop still holds (accepting has not started again): a connection
    /// registered now is aborted too.
    stopped: bool,
    /// Hard restarts so far: each aborts the connections with a response in flight then.
    restarts: u64,
    /// A graceful stop began.
    draining: bool,
}

impl Orders {
    /// What a connection registered now counts as already acted on: everything but the
    /// orders that also hold for later connections (a stop that still holds, the drain).
    fn baseline(self) -> Orders {
        Orders { stops: self.stops - u64::from(self.stopped), stopped: false, draining: false, ..self }
    }
}

/// What an order means for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Close the connection now.
    Abort,
    /// A hard restart while requests are in flight: end them (HTTP/1.1: the connection;
    /// HTTP/2: the streams).
    Restart,
    /// A graceful stop reached this connection: close it once idle.
    Drain,
    /// Nothing for this connection.
    None,
}

/// A connection's receiver of orders.
pub(crate) struct Subscription {
    rx: watch::Receiver<Orders>,
    /// The orders this connection has acted on.
    seen: Orders,
    /// Orders that held when the connection registered wait to be acted on.
    unread: bool,
}

impl Subscription {
    /// Whether orders wait that [`take`](Self::take) has not acted on: the ones that held at
    /// registration, or any given since. Lock-free (one atomic load). A closed channel has
    /// no news (its waiter reports it).
    #[inline]
    pub(crate) fn has_news(&self) -> bool {
        self.unread || self.rx.has_changed().unwrap_or(false)
    }

    /// A receiver to wait on with `changed()` while `self` stays free for
    /// [`has_news`](Self::has_news).
    pub(crate) fn waiter(&self) -> watch::Receiver<Orders> {
        self.rx.clone()
    }

    /// Waits for a stop this connection has not acted on, without acting on it ([`take`](Self::take)
    /// still reports it): a TLS handshake in progress ends at a stop.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.rx.clone();
        loop {
            if rx.borrow_and_update().stops != self.seen.stops {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// What the orders given since the last call mean for this connection; `busy`: a
    /// response is in flight.
    pub(crate) fn take(&mut self, busy: bool) -> Order {
        self.unread = false;
        let now = *self.rx.borrow_and_update();
        let seen = std::mem::replace(&mut self.seen, now);
        if now.stops != seen.stops {
            Order::Abort
        } else if busy && now.restarts != seen.restarts {
            Order::Restart
        } else if now.draining && !seen.draining {
            Order::Drain
        } else {
            Order::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        let config = graced_config::Config::embedded_default();
        let generation = Generation::new(1, Arc::new(config), crate::access_log::AccessLogSink::off());
        Shared::new(generation)
    }

    #[test]
    fn a_stop_reaches_every_connection_and_later_ones_until_accepting_resumes() {
        let shared = shared();
        let mut open = shared.subscribe();
        assert!(!open.has_news());
        shared.stop_all();
        let mut handed_over = shared.subscribe();
        shared.resume();
        let mut later = shared.subscribe();
        // The open one learns of the stop even after the stop stopped holding.
        assert!(open.has_news());
        assert_eq!(open.take(false), Order::Abort);
        assert!(handed_over.has_news());
        assert_eq!(handed_over.take(false), Order::Abort);
        assert_eq!(later.take(false), Order::None);
    }

    #[tokio::test]
    async fn stopped_waits_for_a_stop_without_acting_on_it() {
        let shared = shared();
        let mut open = shared.subscribe();
        shared.drain();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), open.stopped()).await;
        assert!(waited.is_err(), "a drain is not a stop");
        shared.stop_all();
        open.stopped().await;
        assert_eq!(open.take(false), Order::Abort, "the stop is still there to act on");
    }

    #[test]
    fn a_restart_aborts_only_busy_connections_and_is_not_sticky() {
        let shared = shared();
        let mut busy = shared.subscribe();
        let mut idle = shared.subscribe();
        shared.restart();
        let mut later = shared.subscribe();
        assert_eq!(busy.take(true), Order::Restart);
        assert_eq!(idle.take(false), Order::None);
        // Idle, it stays; a later response in flight is not aborted by the old restart.
        assert_eq!(idle.take(true), Order::None);
        assert!(!later.has_news());
        assert_eq!(later.take(true), Order::None);
    }

    #[test]
    fn a_drain_is_sticky_and_told_once() {
        let shared = shared();
        let mut open = shared.subscribe();
        shared.drain();
        assert!(shared.is_draining());
        let mut later = shared.subscribe();
        assert_eq!(open.take(false), Order::Drain);
        assert_eq!(later.take(false), Order::Drain);
        shared.drain();
        assert_eq!(open.take(false), Order::None);
    }
}
