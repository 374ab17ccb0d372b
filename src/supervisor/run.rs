//! The serving loop: READY=1, then signals and control requests, the watchdog and the status line, until a stop.

use std::os::fd::AsFd;
use std::time::Duration;

use graced_lifecycle::command::{Command, ReloadKind, Reply, Request};
use graced_lifecycle::handover::HandedFile;
use graced_lifecycle::inbox::{Asked, Inbox};
use graced_lifecycle::notify;
use graced_lifecycle::reload::{self, ReloadOutcome};
use graced_lifecycle::signal::Signals;

use super::error::{LifecycleError, ReloadError};
use super::listeners::ListenerSource;
use super::state::{Exit, Supervisor};
use crate::logging::message_id;

/// How often a running server looks at its certificates' expiry again.
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// How long a stopped server waits for its access log's last lines to be written.
const LOG_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// What carrying out a request led to: the answer for a control client, and whether to exit.
struct Handled {
    answer: Answer,
    exit: Option<Exit>,
}

/// A control client's answer, typed until it is written to the socket.
enum Answer {
    /// A reload's outcome (`None`: `await-reload` before any reload).
    Reload(Option<ReloadOutcome<ReloadError>>),
    Status(String),
    Stopping(Exit),
    /// `await-reload` found a stop queued instead.
    Interrupted,
    /// `reopen-logs` (without `--wait`): the new generation writes the new files.
    Reopened(String),
    /// `reopen-logs`: the log could not be opened; nothing changed.
    ReopenFailed(ReloadError),
}

impl Answer {
    /// The one place where outcomes become the control socket's text.
    fn into_reply(self) -> Reply {
        match self {
            Answer::Reload(outcome) => reload::await_reply(outcome.as_ref()),
            Answer::Status(line) => Ok(line),
            Answer::Stopping(Exit::Stop) => Ok("stopping".into()),
            Answer::Stopping(Exit::GracefulStop) => Ok("stopping gracefully".into()),
            Answer::Interrupted => Err("the server is stopping".into()),
            Answer::Reopened(text) => Ok(text),
            Answer::ReopenFailed(error) => Err(error.to_string()),
        }
    }
}

impl Supervisor {
    pub(super) async fn run(mut self) -> Result<(), LifecycleError> {
        // Handlers first: USR1 and HUP would otherwise kill us before we are ready.
        let mut inbox = Inbox::open(self.pidfile.path())?;
        for listener in &self.listeners {
            self.server
                .start_accepting(&listener.name, listener.as_fd())
                .map_err(|source| LifecycleError::Bind { name: listener.name.clone(), source })?;
        }
        let activated = self.source == ListenerSource::Systemd;
        let addresses: Vec<String> =
            self.listeners.iter().map(|l| format!("{}={}", l.name, l.local_addr())).collect();
        tracing::info!(
            message_id = message_id::STARTED,
            generation = 1u64,
            pid = std::process::id(),
            workers = self.workers,
            socket_activated = activated,
            config = %self.config.source.display_name(),
            "graced started: listening on {}{}",
            addresses.join(", "),
            if activated { " (sockets from systemd)" } else { "" }
        );
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            self.print_first_run_help();
        }
        self.notifier.ready(&self.status_text());

        let watchdog = notify::watchdog_interval();
        let mut watchdog_tick = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |d| d / 2));
        // The first tick comes 5 s from now: READY=1 just carried the status.
        let mut status_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        let mut last_status = self.status_text();
        // Certificates are checked at start and at each reload, and once a day between.
        let mut expiry_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + EXPIRY_CHECK_INTERVAL,
            EXPIRY_CHECK_INTERVAL,
        );
        let exit = loop {
            tokio::select! {
                mut asked = inbox.next() => {
                    if let Asked::Signal(entry) = &asked {
                        tracing::debug!(signal = entry.name, command = ?entry.command, "signal received");
                    }
                    let files = asked.take_files();
                    let handled = match asked.request() {
                        Request::Status => Handled { answer: Answer::Status(self.status_line()), exit: None },
                        Request::AwaitReload => self.await_reload(inbox.signals()).await,
                        Request::ReopenLogs { wait } => match self.reopen_logs() {
                            Ok((_, closed)) if wait => {
                                // Answered from a task: the loop keeps handling signals meanwhile.
                                tokio::spawn(async move { asked.answer(Ok(closed.await)) });
                                continue;
                            }
                            Ok((now, _)) => Handled { answer: Answer::Reopened(now), exit: None },
                            Err(error) => {
                                tracing::error!("reopening the logs failed; the old ones stay open: {error}");
                                Handled { answer: Answer::ReopenFailed(error), exit: None }
                            }
                        },
                        Request::Command(command) => self.command(command, files),
                    };
                    asked.answer(handled.answer.into_reply());
                    if let Some(exit) = handled.exit { break exit; }
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => {
                    // Ping only if the worker threads that serve requests still run tasks:
                    // a wedged runtime must stop the pings so systemd restarts us.
                    let probe = tokio::time::timeout(Duration::from_secs(1), tokio::spawn(async {})).await;
                    if matches!(probe, Ok(Ok(()))) {
                        self.notifier.watchdog();
                    } else {
                        tracing::error!("the runtime did not run a task within 1s; withholding the watchdog ping");
                    }
                }
                _ = expiry_tick.tick() => self.certificates.warn_expiring(),
                _ = status_tick.tick() => {
                    let status = self.status_text();
                    if status != last_status {
                        self.notifier.status(&status);
                        last_status = status;
                    }
                }
            }
        };
        match exit {
            Exit::Stop => self.stop().await,
            Exit::GracefulStop => self.graceful_stop(inbox.signals(), watchdog).await,
        }
        drop(inbox); // removes the control socket
        let status = self.server.status();
        tracing::info!(
            message_id = message_id::STOPPED,
            generation = status.generation,
            requests = status.requests,
            "graced stopped after {} requests",
            status.requests
        );
        // The lines of requests that ended with the stop wait in the log writers' queues:
        // once the server (and with it the last generation) is gone, they are written and
        // the files closed; wait for that, briefly.
        let closing: Vec<_> = self.server.live_generations().iter().map(|g| g.access_log.closed()).collect();
        drop(self);
        let flushed = async {
            for closed in closing {
                closed.await;
            }
        };
        if tokio::time::timeout(LOG_FLUSH_WAIT, flushed).await.is_err() {
            tracing::warn!(
                "the access log was not closed within {LOG_FLUSH_WAIT:?} of the stop; its last lines may be lost"
            );
        }
        Ok(())
    }

    /// Carries out `command`; `files` came with it (a root caller's open certificates and keys).
    fn command(&mut self, command: Command, files: Vec<HandedFile>) -> Handled {
        match ReloadKind::of(command) {
            Some(kind) => Handled { answer: Answer::Reload(Some(self.reload(kind, files))), exit: None },
            None => {
                let exit = if command == Command::Stop { Exit::Stop } else { Exit::GracefulStop };
                Handled { answer: Answer::Stopping(exit), exit: Some(exit) }
            }
        }
    }

    /// Answers `await-reload`: systemd (`Type=notify-reload`) sent the reload signal
    /// before it ran `ExecReload=`, which asks this. The signal was delivered before that
    /// command even started, so any signal still queued is handled first; then the
    /// latest reload's outcome is the answer — a configuration the server rejected fails
    /// `systemctl reload` even where `graced -t` would accept the file (a listener change
    /// under socket activation, an access log that cannot be opened).
    async fn await_reload(&mut self, signals: &mut Signals) -> Handled {
        while let Some(entry) = signals.pending().await {
            if let Some(exit) = self.command(entry.command, Vec::new()).exit {
                return Handled { answer: Answer::Interrupted, exit: Some(exit) };
            }
        }
        Handled { answer: Answer::Reload(self.generations.last()), exit: None }
    }
}
