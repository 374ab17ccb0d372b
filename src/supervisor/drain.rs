//! Stopping: TERM aborts everything in flight; WINCH stops accepting, removes the pid file and drains until the timeout.

use std::time::Duration;

use graced_lifecycle::command::Command;
use graced_lifecycle::signal::Signals;

use super::state::Supervisor;
use crate::logging::message_id;

impl Supervisor {
    /// TERM: close listeners, abort everything in flight.
    pub(super) async fn stop(&mut self) {
        self.server.stop_accepting_all();
        self.listeners.clear();
        self.server.abort_connections();
        self.notifier.stopping("stopping");
        self.server.wait_connections(Duration::from_secs(2)).await;
    }

    /// WINCH: stop accepting, remove the pid file, let requests finish until the timeout.
    pub(super) async fn graceful_stop(&mut self, signals: &mut Signals, watchdog: Option<Duration>) {
        let timeout = self.config.server.graceful_shutdown_timeout;
        let open = self.server.open_connections();
        // Do, then tell: once systemd (or a test) hears STOPPING=1, the pid file is gone
        // and every response already says `Connection: close`.
        if let Some(pidfile) = &mut self.pidfile {
            pidfile.remove();
        }
        self.server.stop_accepting_all();
        self.listeners.clear();
        self.server.begin_drain();
        // Let the stopped accept loops return (each may still hand over a connection it
        // had just accepted), so every count below is of connections only.
        self.server.wait_connections(Duration::from_millis(50)).await;
        self.notifier.stopping(&format!("graceful stop: draining {open} connections"));
        tracing::info!(
            message_id = message_id::DRAINING,
            generation = self.server.current().id,
            connections = open,
            "graceful stop: draining {open} connections for at most {}",
            humantime::format_duration(timeout)
        );
        let deadline = tokio::time::Instant::now() + timeout;
        let mut aborted = 0;
        loop {
            let left = self.server.open_connections();
            if left == 0 {
                break;
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                aborted = left;
                tracing::warn!(connections = left, "graceful stop timeout: aborting {left} connections");
                self.server.abort_connections();
                self.server.wait_connections(Duration::from_secs(2)).await;
                break;
            }
            // Keep systemd's stop timeout from cutting a drain the configuration allows.
            let status =
                format!("draining: {left} connections left, {}s to forced close", remaining.as_secs());
            self.notifier.extend_timeout(remaining + Duration::from_secs(5), &status);
            if watchdog.is_some() {
                self.notifier.watchdog();
            }
            tokio::select! {
                _ = self.server.wait_connections(remaining.min(Duration::from_secs(1))) => {}
                entry = signals.recv() => {
                    if entry.command == Command::Stop {
                        tracing::info!("stop requested during the graceful stop: aborting");
                        aborted = self.server.open_connections();
                        self.server.abort_connections();
                        self.server.wait_connections(Duration::from_secs(2)).await;
                        break;
                    }
                }
            }
        }
        self.notifier.status(&format!("graceful stop complete; {aborted} connections aborted"));
    }
}
