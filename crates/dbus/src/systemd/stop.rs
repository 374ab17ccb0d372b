//! The graceful stop: a stop job when `KillSignal=SIGWINCH`, else SIGWINCH to the main process.

use std::time::{Duration, Instant};

use super::state::{StopMethod, StopOutcome};
use super::unit::GracedUnit;
use super::watch::Event;
use crate::error::{ControlError, call_failed};
use crate::status::{self, ServerStatus};

/// The signal that makes graced drain and exit (Apache's graceful-stop).
pub const SIGWINCH: i32 = libc::SIGWINCH;

impl GracedUnit {
    /// Stops the unit gracefully: the server stops accepting, lets in-flight requests
    /// finish (up to its `graceful_shutdown_timeout`) and exits. Returns when the unit is
    /// down, or fails with [`ControlError::Timeout`] after `timeout` (the stop goes on).
    /// Every StatusText change on the way is sent to `progress` (dropped when this returns).
    ///
    /// How the stop is sent — the choice:
    ///
    /// * The unit's `KillSignal=` is SIGWINCH (every unit `graced unit` writes): a **stop
    ///   job**, `StopUnit(unit, "replace")`. systemd then knows the unit is stopping: it
    ///   sends WINCH to the unit's processes (`KillMode=control-group`: after a binary
    ///   upgrade the old process, still draining, too), honours the server's
    ///   `EXTEND_TIMEOUT_USEC=` while it drains, SIGKILLs only at the (extended) stop
    ///   timeout, never applies `Restart=`, orders dependent units, and ends the job with
    ///   `JobRemoved` — a definite end to wait for.
    /// * Any other `KillSignal=` (a hand-written unit keeping SIGTERM): a stop job would
    ///   send that signal and abort every request, so WINCH goes to the main process
    ///   directly, `KillUnit(unit, "main", SIGWINCH)` (it reaches the main pid only). The
    ///   server drains and exits 0 on its own; there is no job, so the end is the unit's
    ///   ActiveState reaching inactive/failed (or `auto-restart` under `Restart=always`).
    ///
    /// A unit already `deactivating` is not signalled again: the call just waits.
    pub async fn graceful_stop(
        &self,
        timeout: Duration,
        progress: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<StopOutcome, ControlError> {
        let mut watch = self.watch().await?;
        let before = self.snapshot().await?;
        let started = Instant::now();
        let (method, job) = match before.active_state.as_str() {
            "active" | "reloading" => {
                let kill_signal =
                    self.service.kill_signal().await.map_err(call_failed(&self.context("reading")))?;
                if kill_signal == SIGWINCH {
                    let job = self
                        .manager
                        .stop_unit(self.name.clone(), "replace".into())
                        .await
                        .map_err(call_failed(&format!("StopUnit({})", self.name)))?;
                    (StopMethod::StopJob, Some(job))
                } else {
                    self.manager
                        .kill_unit(self.name.clone(), "main".into(), SIGWINCH)
                        .await
                        .map_err(call_failed(&format!("KillUnit({}, main, SIGWINCH)", self.name)))?;
                    (StopMethod::KillMain, None)
                }
            }
            "deactivating" => (StopMethod::AlreadyStopping, None),
            _ => {
                return Err(ControlError::NotRunning(format!(
                    "{} is not running ({})",
                    self.name,
                    before.state()
                )));
            }
        };
        tracing::debug!(unit = %self.name, ?method, ?job, "graceful stop sent");
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_status = before.status_text.clone();
        let mut down = before.unit_state().is_down();
        while !down {
            let event = tokio::select! {
                event = self.next_event(&mut watch) => event?,
                () = tokio::time::sleep_until(deadline) => {
                    let state = self.states().await?;
                    return Err(ControlError::Timeout(format!(
                        "{} is still {state} after {}s (last status: {last_status}); the stop goes on",
                        self.name,
                        timeout.as_secs()
                    )));
                }
            };
            match event {
                Event::Status(text) => {
                    if text != last_status {
                        last_status = text;
                        let _ = progress.send(last_status.clone());
                    }
                }
                Event::State => {
                    down = self.states().await?.is_down();
                }
                Event::JobRemoved { job: removed, result } => {
                    if job.as_ref() != Some(&removed) {
                        continue;
                    }
                    let state = self.states().await?;
                    down = state.is_down();
                    if !down && result != "done" {
                        return Err(ControlError::StopFailed(format!(
                            "the stop job of {} ended with result \"{result}\"; the unit is {state}",
                            self.name
                        )));
                    }
                }
            }
        }
        let drain = started.elapsed();
        let after = self.snapshot().await?;
        if after.status_text != last_status {
            last_status = after.status_text.clone();
            let _ = progress.send(last_status.clone());
        }
        let aborted_connections = match status::parse(&last_status) {
            ServerStatus::Stopped { aborted } => Some(aborted),
            _ => None,
        };
        let aborted = aborted_connections.map_or(after.result != "success", |n| n > 0);
        Ok(StopOutcome { method, drain, aborted, aborted_connections, status_text: last_status, after })
    }
}
