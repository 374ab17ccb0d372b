//! Generations and reload outcomes: what a reload tells systemd (RELOADING=1 … READY=1) and what `await-reload` is answered with; composes `notify`.
//!
//! A generation is whatever a reload replaces (a configuration, open logs…), numbered from 1.
//! The server prepares the new one, and only when everything validated does it take
//! the next number ([`Generations::take_next`]) and switch; a failure keeps the current
//! generation serving and says so to systemd (READY=1 + STATUS= + ERRNO=).

use std::fmt::Display;
use std::sync::Arc;

use crate::command::{ReloadKind, Reply};
use crate::notify::Notifier;

/// A reload's result: the generation now serving, or why the previous one still serves.
pub type ReloadOutcome<E> = Result<u64, Arc<E>>;

/// The generation serving, the next one's number, and the latest reload's outcome.
#[derive(Debug)]
pub struct Generations<E> {
    current: u64,
    next: u64,
    last: Option<ReloadOutcome<E>>,
}

impl<E> Default for Generations<E> {
    fn default() -> Self {
        Generations { current: 1, next: 2, last: None }
    }
}

impl<E: Display> Generations<E> {
    /// Generation 1 serves; no reload has happened.
    pub fn new() -> Self {
        Self::default()
    }

    /// The generation serving new work.
    pub fn current(&self) -> u64 {
        self.current
    }

    /// RELOADING=1 with MONOTONIC_USEC read now (after the request arrived, as systemd
    /// ≥ 253 requires) and `STATUS=<verb>: <doing>`.
    pub fn begin(&self, notifier: &Notifier, kind: ReloadKind, doing: &str) {
        notifier.reloading(&format!("{}: {doing}", kind.verb()));
    }

    /// The number of the generation being switched to: take it once everything validated.
    pub fn take_next(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }

    /// `generation` serves new requests without a reload (the server switched for another
    /// reason, such as reopening its logs): nothing is told to systemd.
    pub fn switched(&mut self, generation: u64) {
        self.current = generation;
    }

    /// `generation` serves: READY=1 with `status` (and ERRNO=0 when the previous reload
    /// had failed, which clears systemd's StatusErrno).
    pub fn succeeded(&mut self, notifier: &Notifier, generation: u64, status: &str) -> ReloadOutcome<E> {
        if matches!(self.last, Some(Err(_))) {
            notifier.send(&[("READY", "1"), ("STATUS", status), ("ERRNO", "0")]);
        } else {
            notifier.ready(status);
        }
        self.current = generation;
        self.last = Some(Ok(generation));
        Ok(generation)
    }

    /// The reload failed and the current generation keeps serving: READY=1 (a RELOADING=1
    /// without it leaves the unit "reloading" forever), STATUS= naming the error's first
    /// line, ERRNO=22. The error is kept (shared) for later `await-reload` answers.
    pub fn failed(&mut self, notifier: &Notifier, kind: ReloadKind, error: E) -> ReloadOutcome<E> {
        let text = error.to_string();
        let first_line = text.lines().next().unwrap_or_default();
        let status =
            format!("{} failed, still serving generation {}: {first_line}", kind.verb(), self.current);
        notifier.send(&[("READY", "1"), ("STATUS", &status), ("ERRNO", "22")]);
        let error = Arc::new(error);
        self.last = Some(Err(error.clone()));
        Err(error)
    }

    /// The latest reload's outcome (`None` before the first).
    pub fn last(&self) -> Option<ReloadOutcome<E>> {
        self.last.clone()
    }

    /// The answer to `await-reload`: the latest reload's [`reply`].
    pub fn last_reply(&self) -> Reply {
        await_reply(self.last.as_ref())
    }
}

/// The answer to `await-reload` given the latest reload's outcome, if any.
pub fn await_reply<E: Display>(last: Option<&ReloadOutcome<E>>) -> Reply {
    last.map_or_else(|| Err("no reload has happened yet".into()), reply)
}

/// The control-socket reply for a reload's outcome: `generation N serving`, or the error's
/// text — where a typed error becomes text.
pub fn reply<E: Display>(outcome: &ReloadOutcome<E>) -> Reply {
    match outcome {
        Ok(generation) => Ok(format!("generation {generation} serving")),
        Err(error) => Err(error.to_string()),
    }
}
