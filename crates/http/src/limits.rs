//! When graced closes or parks an HTTP/1.1 connection: its limits (`keepalive_timeout`,
//! `header_timeout`, `send_timeout`, a graceful stop's grace, the idle time before parking)
//! checked against its meter when its timer fires.
//!
//! One timer per connection is armed lazily — at the earliest moment any limit could expire —
//! so a request touches no timer; on a busy keep-alive connection it fires about once a second.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::meter::{Meter, now_us};
use crate::sendfile::SendfileQueue;
use crate::shared::Shared;

/// How long a graceful stop waits for the next request on an idle keep-alive
/// connection before closing it. A client in a request loop sends within
/// microseconds; one idle for longer is closed (after the peek check).
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(250);

/// How long closing an idle TLS connection may take to send its `close_notify`.
pub(crate) const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(1);

/// How long a keep-alive connection stays idle with hyper's state before it is parked
/// without it (see `park`). A client that sends its requests one after another (a page's
/// assets, a load generator) sends the next well within it, so the hot path never rebuilds
/// hyper's state; one that waits longer costs ~1 KiB instead of ~12 while it waits.
pub(crate) const PARK_AFTER: Duration = Duration::from_secs(1);

/// The limits that close a connection, in microseconds.
pub(crate) struct Limits {
    pub(crate) keepalive: u64,
    pub(crate) header: u64,
    pub(crate) send: u64,
}

/// What the timer found when it fired.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// A limit expired: close the connection.
    Close(CloseReason),
    /// Idle for [`PARK_AFTER`] with nothing arriving: park it (see [`park`](crate::park::park)).
    Park,
    /// Nothing expired yet: fire again at this time (µs).
    Again(u64),
}

/// Why graced closes a connection when a limit expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// Idle (no request in flight, none arriving) for `keepalive_timeout`, or for
    /// [`DRAIN_IDLE_GRACE`] during a graceful stop.
    Idle,
    /// A request head did not complete within `header_timeout` (slowloris).
    HeaderTimeout,
    /// A response made no write progress for `send_timeout` (a reader that stopped).
    SendTimeout,
}

impl CloseReason {
    fn message(self) -> &'static str {
        match self {
            CloseReason::Idle => "the connection was idle for keepalive_timeout",
            CloseReason::HeaderTimeout => "a request head did not complete within header_timeout",
            CloseReason::SendTimeout => "a response made no progress for send_timeout",
        }
    }

    /// How loudly the close is logged: a response cut short is worth an info line, a slow
    /// request head a debug line; closing an idle keep-alive connection is routine (none).
    fn level(self) -> Option<tracing::Level> {
        match self {
            CloseReason::Idle => None,
            CloseReason::HeaderTimeout => Some(tracing::Level::DEBUG),
            CloseReason::SendTimeout => Some(tracing::Level::INFO),
        }
    }

    pub(crate) fn log(self) {
        match self.level() {
            None => {}
            Some(level) if level == tracing::Level::INFO => {
                tracing::info!("closing a connection: {}", self.message());
            }
            Some(_) => tracing::debug!("closing a connection: {}", self.message()),
        }
    }
}

impl Limits {
    /// How long an idle connection may stay: `keepalive_timeout`, or once a graceful stop
    /// reached it (`drain_started`), the drain's grace.
    fn idle_limit(&self, drain_started: Option<u64>) -> u64 {
        match drain_started {
            Some(_) => DRAIN_IDLE_GRACE.as_micros() as u64,
            None => self.keepalive,
        }
    }

    /// When an idle connection is closed: its idle limit after the later of the moment it
    /// went idle and the moment the graceful stop reached it.
    pub(crate) fn idle_deadline(&self, meter: &Meter, drain_started: Option<u64>) -> u64 {
        meter.idle_since().max(drain_started.unwrap_or(0)) + self.idle_limit(drain_started)
    }

    /// Checks every limit at `now`. `drain_started`: when the graceful stop reached this connection.
    /// A response counts as in flight until hyper has written it: its guard ends when hyper
    /// takes the last frame, but a file's last window (up to 1 MiB of placeholders) may
    /// still be waiting for `sendfile` in `sending` — a drain that took that for idle cut
    /// slow downloads short by up to a window (measured: 920 KiB of 8 MiB).
    pub(crate) fn check(
        &self,
        meter: &Meter,
        sending: &SendfileQueue,
        fd: RawFd,
        now: u64,
        drain_started: Option<u64>,
    ) -> Check {
        let idle_limit = self.idle_limit(drain_started);
        // Any limit that starts later than now expires no sooner than this: checking again
        // then never misses a state change (a response ending, a head starting).
        let horizon = now + idle_limit.min(self.header).min(self.send).min(PARK_AFTER.as_micros() as u64);
        let deadline = if meter.busy() || sending.pending() {
            let deadline = meter.last_progress() + self.send;
            if now >= deadline {
                return Check::Close(CloseReason::SendTimeout);
            }
            deadline
        } else if meter.head_arriving() {
            let deadline = meter.head_started() + self.header;
            if now >= deadline {
                return Check::Close(CloseReason::HeaderTimeout);
            }
            deadline
        } else {
            let deadline = self.idle_deadline(meter, drain_started);
            if now >= deadline {
                if !meter.request_arriving(fd) {
                    return Check::Close(CloseReason::Idle);
                }
                // Bytes wait in the socket: a request is on its way; hyper will read it and
                // the header timeout bounds it from then on.
                meter.idle_from(now);
                return Check::Again(now + idle_limit.min(self.header));
            }
            if drain_started.is_some() {
                deadline
            } else {
                let park_at = meter.idle_since() + PARK_AFTER.as_micros() as u64;
                if now < park_at {
                    deadline.min(park_at)
                } else if !meter.request_arriving(fd) {
                    return Check::Park;
                } else {
                    // hyper reads what waits as soon as this task yields.
                    deadline.min(now + PARK_AFTER.as_micros() as u64)
                }
            }
        };
        Check::Again(deadline.min(horizon))
    }
}

pub(crate) fn instant_at(at_us: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_micros(at_us.saturating_sub(now_us()))
}

/// The connection's limits and what they are measured on, for `connection` and `park`.
pub(crate) struct Watch {
    pub(crate) shared: Arc<Shared>,
    pub(crate) meter: Arc<Meter>,
    pub(crate) sendfile: Arc<SendfileQueue>,
    pub(crate) fd: RawFd,
    pub(crate) limits: Limits,
    pub(crate) send_timeout: Duration,
    /// When the graceful stop began for this connection: the drain grace counts from the
    /// later of that and the moment the connection went idle.
    pub(crate) drain_started: Option<u64>,
}
