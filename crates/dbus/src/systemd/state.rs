//! What systemd says about a unit, as values: [`Snapshot`], [`UnitState`], and how a stop ended.

use std::time::Duration;

/// A unit's `ActiveState` and `SubState`, read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub active: String,
    pub sub: String,
}

impl UnitState {
    /// Whether the unit has finished stopping: inactive, failed, or already on its way
    /// back because `Restart=` restarts it.
    pub fn is_down(&self) -> bool {
        matches!(self.active.as_str(), "inactive" | "failed") || self.sub == "auto-restart"
    }
}

impl std::fmt::Display for UnitState {
    /// `active/running`, the way `systemctl` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.active, self.sub)
    }
}

/// What systemd says about a unit at one moment (every field read afresh).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub unit: String,
    pub active_state: String,
    pub sub_state: String,
    pub main_pid: u32,
    /// `ActiveEnterTimestamp`: µs since the epoch, 0 if never active.
    pub active_enter_usec: u64,
    pub status_text: String,
    pub status_errno: i32,
    /// The service's `Result` (`success`, `timeout`, `signal`, …).
    pub result: String,
}

impl Snapshot {
    /// `active/running`, the way `systemctl` shows it.
    pub fn state(&self) -> String {
        self.unit_state().to_string()
    }

    /// The unit's `ActiveState` and `SubState` as one value.
    pub fn unit_state(&self) -> UnitState {
        UnitState { active: self.active_state.clone(), sub: self.sub_state.clone() }
    }

    /// Whether the unit is up (a graceful stop or a reload makes sense).
    pub fn is_running(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }
}

/// How a graceful stop was sent; see [`GracedUnit::graceful_stop`](super::GracedUnit::graceful_stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMethod {
    /// `StopUnit(unit, "replace")`: the unit's `KillSignal=` is SIGWINCH.
    StopJob,
    /// `KillUnit(unit, "main", SIGWINCH)`: the unit's `KillSignal=` is something else.
    KillMain,
    /// The unit was already stopping; the call only waited.
    AlreadyStopping,
}

/// How a graceful stop ended.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    pub method: StopMethod,
    /// From sending the stop to the unit being down.
    pub drain: Duration,
    /// Whether requests were cut: the server's final StatusText says
    /// `K connections aborted` with K > 0, or, without that text, the unit's `Result` is
    /// not `success` (systemd killed it).
    pub aborted: bool,
    /// K, when the server said it.
    pub aborted_connections: Option<u64>,
    /// The last StatusText seen.
    pub status_text: String,
    /// The unit's state afterwards.
    pub after: Snapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(active: &str, sub: &str) -> UnitState {
        UnitState { active: active.into(), sub: sub.into() }
    }

    #[test]
    fn down_states() {
        assert!(state("inactive", "dead").is_down());
        assert!(state("failed", "failed").is_down());
        assert!(state("activating", "auto-restart").is_down());
        assert!(!state("deactivating", "stop-sigterm").is_down());
        assert!(!state("active", "running").is_down());
        assert_eq!(state("active", "running").to_string(), "active/running");
    }
}
