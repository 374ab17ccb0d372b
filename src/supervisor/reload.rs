//! USR1 (graceful) and HUP (hard): prepare everything that can fail, then switch generations; a failure changes nothing.

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use graced_config::{Config, ListenAddress};
use graced_http::Generation;
use graced_http::access_log::AccessLogSink;
use graced_lifecycle::command::ReloadKind;
use graced_lifecycle::handover::HandedFile;
use graced_lifecycle::listener::Listener;
use graced_lifecycle::reload::ReloadOutcome;
use graced_tls::Handed;

use super::certificates::Prepared;
use super::error::ReloadError;
use super::fd_store::{self, FdStore};
use super::listeners::{ListenerSource, listen_address, listen_spec};
use super::state::{Supervisor, worker_threads};
use crate::logging::message_id;

impl Supervisor {
    /// A graceful reload or a hard restart. A configuration that does not validate
    /// changes nothing: the current generation keeps serving. `files`: certificates and
    /// keys the caller opened (as root) and handed over; they are read instead of their paths.
    pub(super) fn reload(&mut self, kind: ReloadKind, files: Vec<HandedFile>) -> ReloadOutcome<ReloadError> {
        let what = kind.verb();
        let doing = format!("rereading {}", self.config.source.display_name());
        self.generations.begin(&self.notifier, kind, &doing);
        match self.prepare(files) {
            Ok((config, generation, tls)) => {
                let generation = generation.with_origin(match kind {
                    ReloadKind::Hard => "restart",
                    ReloadKind::Graceful => "reload",
                });
                let id = generation.id;
                if kind == ReloadKind::Hard {
                    self.server.abort_connections();
                    self.server.reset_counters();
                }
                self.log.set_level(config.server.log_level);
                if worker_threads(&config) != self.workers {
                    tracing::warn!(
                        "[server] workers changed: {} worker threads keep serving until graced is started again",
                        self.workers
                    );
                }
                self.certificates.install(tls, &config);
                self.config = config;
                self.server.install(generation);
                self.server.counters().reloads.fetch_add(1, Ordering::Relaxed);
                self.publish_report();
                let status = format!("{}; {what}ed", self.status_text());
                let outcome = self.generations.succeeded(&self.notifier, id, &status);
                tracing::info!(
                    message_id = match kind {
                        ReloadKind::Hard => message_id::RESTARTED,
                        ReloadKind::Graceful => message_id::RELOADED,
                    },
                    generation = id,
                    "{what} complete: generation {id} serves new requests"
                );
                outcome
            }
            Err(error) => {
                self.server.counters().failed_reloads.fetch_add(1, Ordering::Relaxed);
                let current = self.generations.current();
                let outcome = self.generations.failed(&self.notifier, kind, error);
                if let Err(error) = &outcome {
                    self.last_reload_error = Some((std::time::SystemTime::now(), error.to_string()));
                    self.publish_report();
                    tracing::error!(
                        message_id = message_id::RELOAD_FAILED,
                        generation = current,
                        "{what} failed; generation {current} keeps serving:\n{error}"
                    );
                }
                outcome
            }
        }
    }

    /// Everything that can fail, done before anything changes.
    fn prepare(&mut self, files: Vec<HandedFile>) -> Result<(Config, Generation, Prepared), ReloadError> {
        let mut config = self.config.reload()?;
        config.load_credentials(super::paths::credentials_directory().as_deref())?;
        let handed =
            Handed::new(files.into_iter().map(|f| (f.label, File::from(f.fd)))).map_err(ReloadError::Tls)?;
        if !handed.is_empty() {
            tracing::debug!(files = handed.len(), "certificate and key files handed over with the request");
        }
        let tls = self.certificates.prepare(&config, &handed).map_err(ReloadError::Tls)?;
        let not_reread = tls.not_reread();
        if handed.is_empty() && !not_reread.is_empty() {
            tracing::warn!(
                "graced may not read these files and nothing was handed over with this reload (a signal, \
                 or a caller that is not root), so they were not read again: {}; a renewal on disk is \
                 served after `systemctl reload graced` (or `graced -k graceful` as root)",
                not_reread.join("; ")
            );
        }
        let access_log = AccessLogSink::open(&config.server.access_log, crate::logging::journal_connected())
            .map_err(ReloadError::AccessLog)?
            .with_format(config.server.access_log_format);
        self.update_listeners(&config)?;
        let id = self.generations.take_next();
        let generation = tls.apply(Generation::new(id, Arc::new(config.clone()), access_log));
        Ok((config, generation, tls))
    }

    /// Makes the listeners match `config`: kept sockets stay open (a reload never closes
    /// one), new ones are bound before any old one is closed. Under socket activation
    /// the set comes from systemd and cannot change here.
    fn update_listeners(&mut self, config: &Config) -> Result<(), ReloadError> {
        let wanted: Vec<(&str, &ListenAddress)> =
            config.listeners.iter().map(|l| (l.name.as_str(), &l.address)).collect();
        let have: Vec<(&str, &ListenAddress)> =
            self.config.listeners.iter().map(|l| (l.name.as_str(), &l.address)).collect();
        if wanted == have {
            return Ok(());
        }
        if self.source == ListenerSource::Systemd {
            return Err(ReloadError::ListenersFromSystemd);
        }
        // Bind every new address first: if one fails, nothing has changed.
        let mut fresh = Vec::new();
        for listener in &config.listeners {
            if !self.listeners.iter().any(|s| s.matches(&listen_address(&listener.address))) {
                let socket = Listener::bind(&listen_spec(listener))
                    .map_err(|source| ReloadError::Bind { name: listener.name.clone(), source })?;
                fresh.push(socket);
            }
        }
        self.server.stop_accepting_all();
        let mut old = std::mem::take(&mut self.listeners);
        for listener in &config.listeners {
            let from = if old.iter().any(|s| s.matches(&listen_address(&listener.address))) {
                &mut old
            } else {
                &mut fresh
            };
            let i =
                from.iter().position(|s| s.matches(&listen_address(&listener.address))).expect("bound above");
            let mut socket = from.swap_remove(i);
            socket.name = listener.name.clone();
            self.listeners.push(socket);
        }
        // What is left in `old` is no longer configured: closed here (and out of the fd store).
        let removed: Vec<String> = old.iter().map(|s| s.name.clone()).collect();
        drop(old);
        fd_store::sync(
            &self.notifier,
            FdStore::from_config(config.server.fd_store),
            &self.listeners,
            &removed,
        );
        self.restart_accept_loops();
        Ok(())
    }

    fn restart_accept_loops(&mut self) {
        for listener in &self.listeners {
            if let Err(err) = self.server.start_accepting(&listener.name, listener.as_fd()) {
                tracing::error!(listener = %listener.name, error = %err, "cannot accept on listener");
            }
        }
    }
}
