//! The serving loop: READY=1, then signals and control requests, the watchdog and the status line, until a stop.

use std::os::fd::AsFd;
use std::time::Duration;

use graced_lifecycle::command::{Command, ReloadKind, Reply, Request};
use graced_lifecycle::handover::HandedFile;
use graced_lifecycle::inbox::{Asked, Inbox};
use graced_lifecycle::notify;
use graced_lifecycle::reload::{self, ReloadOutcome};
use graced_lifecycle::signal::Signals;
use graced_lifecycle::upgrade::Predecessor;

use super::error::{LifecycleError, ReloadError};
use super::fd_store::{self, FdStore};
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
    /// A binary upgrade's outcome, as text.
    Upgrade(Reply),
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
            Answer::Stopping(Exit::HandedOver) => Ok("handed over".into()),
            Answer::Upgrade(reply) => reply,
            Answer::Interrupted => Err("the server is stopping".into()),
            Answer::Reopened(text) => Ok(text),
            Answer::ReopenFailed(error) => Err(error.to_string()),
        }
    }
}

impl Supervisor {
    pub(super) async fn run(mut self, predecessor: Option<Predecessor>) -> Result<(), LifecycleError> {
        let upgraded = predecessor.is_some();
        let mut inbox = match predecessor {
            None => {
                // Handlers first: USR1 and HUP would otherwise kill us before we are ready.
                let inbox = Inbox::open(&self.pid_path)?;
                self.start_accepting()?;
                inbox
            }
            Some(predecessor) => self.take_over(predecessor).await?,
        };
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
            "graced started: listening on {}{}{}",
            addresses.join(", "),
            if activated { " (sockets from systemd)" } else { "" },
            if upgraded { " (a binary upgrade: the sockets came from the previous process)" } else { "" }
        );
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            self.print_first_run_help();
        }
        if !upgraded {
            self.notifier.ready(&self.status_text());
        }

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
                        Request::Command(Command::Upgrade) => match self.upgrade(&mut inbox).await {
                            Ok(new) => Handled {
                                answer: Answer::Upgrade(Ok(format!(
                                    "upgraded: pid {new} serves; pid {} drains its connections",
                                    std::process::id()
                                ))),
                                exit: Some(Exit::HandedOver),
                            },
                            Err(why) => Handled { answer: Answer::Upgrade(Err(why)), exit: None },
                        },
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
            // systemd no longer hears from us (the notifier is off): the new process is main.
            Exit::HandedOver => self.graceful_stop(inbox.signals(), None).await,
        }
        // Replies given last (`-k upgrade --wait`'s) are written before the runtime ends.
        inbox.settle(Duration::from_secs(1)).await;
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

    /// Starts the accept loops on every listener.
    fn start_accepting(&mut self) -> Result<(), LifecycleError> {
        for listener in &self.listeners {
            self.server
                .start_accepting(&listener.name, listener.as_fd())
                .map_err(|source| LifecycleError::Bind { name: listener.name.clone(), source })?;
        }
        Ok(())
    }

    /// A binary upgrade's successor: serve on the sockets handed over, say so, and once
    /// the predecessor has made us the main process, take the pid file's lock and the
    /// control socket, keep the fd store in step and tell systemd READY=1. Until then we
    /// tell systemd nothing (`NotifyAccess=main` would refuse it).
    async fn take_over(&mut self, mut predecessor: Predecessor) -> Result<Inbox, LifecycleError> {
        // Signal handlers before anything: a USR1 in this window must not kill us.
        let early_signals = Signals::install().map_err(LifecycleError::Runtime)?;
        if let Err(err) = self.start_accepting() {
            predecessor.failed(&err.to_string());
            return Err(err);
        }
        let handshake = |source| LifecycleError::Predecessor(source);
        predecessor.ready().map_err(handshake)?;
        if !predecessor.wait_main(self.config.server.upgrade_timeout * 2).await.map_err(handshake)? {
            return Err(LifecycleError::Predecessor(std::io::Error::other(
                "the previous process gave up on this one before handing over",
            )));
        }
        self.pidfile = Some(graced_lifecycle::pidfile::PidFile::acquire(&self.pid_path)?);
        let inbox = Inbox::open(&self.pid_path)?;
        drop(early_signals);
        fd_store::sync(
            &self.notifier,
            FdStore::from_config(self.config.server.fd_store),
            &self.listeners,
            &std::mem::take(&mut self.stale_names),
        );
        // Not systemd's child: without another process in the unit's group, a stop would
        // SIGKILL us at once instead of waiting for the drain (see `spawn_sentinel`).
        if self.notifier.enabled() {
            match graced_lifecycle::upgrade::spawn_sentinel() {
                Ok(sentinel) => self.sentinel = Some(sentinel),
                Err(err) => tracing::warn!(
                    error = %err,
                    "cannot start the stop sentinel (`sleep infinity`): a `systemctl stop` of this process \
                     will not wait for its drain"
                ),
            }
        }
        // READY=1 below, then the predecessor hears we serve as main.
        self.notifier.ready(&self.status_text());
        predecessor.serving().map_err(handshake)?;
        Ok(inbox)
    }

    /// Carries out `command`; `files` came with it (a root caller's open certificates and keys).
    fn command(&mut self, command: Command, files: Vec<HandedFile>) -> Handled {
        match ReloadKind::of(command) {
            Some(kind) => Handled { answer: Answer::Reload(Some(self.reload(kind, files))), exit: None },
            None if command == Command::Upgrade => {
                // Only the serving loop upgrades (it awaits the new process); here (a
                // signal queued behind `await-reload`) the request is dropped, and said so.
                tracing::warn!("an upgrade asked for while a reload was awaited was ignored; ask again");
                Handled { answer: Answer::Upgrade(Err("ignored; ask again".into())), exit: None }
            }
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
