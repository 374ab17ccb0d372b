//! USR2 and `-k upgrade` in the old process: start the installed binary with the listeners; once it serves, hand it systemd's main PID, the pid file and the control socket, then drain — or kill it and keep serving.

use std::time::Duration;

use graced_lifecycle::inbox::Inbox;
use graced_lifecycle::notify::Notifier;
use graced_lifecycle::upgrade::{self, Origin, UpgradeError};

use super::listeners::ListenerSource;
use super::state::Supervisor;
use crate::logging::message_id;

/// How long the successor may take, once told it is main, to take the pid file's lock,
/// bind the control socket and confirm (it already serves by then).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Variables the successor must not inherit: `WATCHDOG_PID` names this process (without
/// it the successor takes `WATCHDOG_USEC` as its own, as it becomes main).
const NOT_INHERITED: &[&str] = &["WATCHDOG_PID"];

impl Supervisor {
    /// A binary upgrade. `Ok(new pid)`: the new process serves and is main; this one must
    /// drain and exit, telling systemd nothing more. `Err(why)`: this one keeps serving
    /// (systemd was told READY=1 with STATUS= naming why).
    pub(super) async fn upgrade(&mut self, inbox: &mut Inbox) -> Result<u32, String> {
        let old = std::process::id();
        let Some(exe) = self.exe.clone() else {
            return Err(self.upgrade_failed(
                "the path this binary was started from is unknown (/proc/self/exe \
                                            could not be read at start)",
            ));
        };
        self.notifier.status(&format!("upgrade: starting {}", exe.display()));
        tracing::info!(
            listeners = self.listeners.len(),
            "binary upgrade: starting {} with the {} listening sockets",
            exe.display(),
            self.listeners.len()
        );
        let origin = match self.source {
            ListenerSource::Systemd => Origin::Systemd,
            ListenerSource::Bound => Origin::Bound,
        };
        let mut successor = match upgrade::spawn(&exe, &self.args, &self.listeners, origin, NOT_INHERITED) {
            Ok(successor) => successor,
            Err(err) => return Err(self.upgrade_failed(&err.to_string())),
        };
        let timeout = self.config.server.upgrade_timeout;
        if let Err(err) = successor.ready(timeout).await {
            successor.abandon().await;
            return Err(self.upgrade_failed(&failure_text(&err)));
        }
        let new = successor.pid();
        // Both processes accept on the same sockets now; from here on only the new one
        // does. Closing our copies never shuts the sockets down: the new process holds them.
        self.server.stop_accepting_all();
        self.listeners.clear();
        // systemd first (MAINPID= is accepted from the main process, which we still are),
        // then the lock, then the successor: once it hears `main` it may tell systemd
        // READY=1, and its datagram queues behind ours on the one notify socket.
        let status = format!("upgrade: pid {new} serves; pid {old} drains");
        self.notifier.send(&[("MAINPID", &new.to_string()), ("STATUS", &status)]);
        self.notifier = Notifier::disabled();
        if let Some(pidfile) = self.pidfile.take() {
            pidfile.release();
        }
        inbox.hand_over(&format!(
            "pid {old} has handed over to pid {new} and is draining; ask again (the new process answers)"
        ));
        match successor.hand_over(CONFIRM_TIMEOUT).await {
            Ok(()) => tracing::info!(
                message_id = message_id::UPGRADED,
                new_pid = new,
                "binary upgrade complete: pid {new} ({}) serves and is the main process; pid {old} drains",
                exe.display()
            ),
            Err(err) => tracing::error!(
                new_pid = new,
                "binary upgrade: pid {new} serves and was made the main process, but did not confirm: {err}"
            ),
        }
        successor.release();
        Ok(new)
    }

    /// Says why an upgrade failed — READY=1 + STATUS=, and the journal — and returns the text.
    fn upgrade_failed(&mut self, why: &str) -> String {
        let old = std::process::id();
        let text = format!("upgrade failed: {why}; pid {old} keeps serving");
        self.notifier.ready(&format!("{}; {text}", self.status_text()));
        tracing::error!(message_id = message_id::UPGRADE_FAILED, "{text}");
        text
    }
}

fn failure_text(err: &UpgradeError) -> String {
    match err {
        UpgradeError::Exited { status, .. } if status.ends_with("status 78") => {
            format!("{err} (78: its configuration or certificates are invalid; see its log)")
        }
        other => other.to_string(),
    }
}
