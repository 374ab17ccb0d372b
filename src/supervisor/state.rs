//! The supervisor's state — the running configuration, the server, the listeners the process owns, the pid file — and what it reports about itself.

use std::ffi::OsString;
use std::path::PathBuf;

use graced_config::Config;
use graced_http::Server;
use graced_lifecycle::listener::Listener;
use graced_lifecycle::notify::Notifier;
use graced_lifecycle::pidfile::PidFile;
use graced_lifecycle::reload::Generations;

use super::certificates::Certificates;
use super::error::ReloadError;
use super::listeners::ListenerSource;
use crate::logging::LogHandle;

pub(super) struct Supervisor {
    pub(super) config: Config,
    pub(super) server: Server,
    /// Owned by the process, never by a generation: a reload never closes one it keeps.
    pub(super) listeners: Vec<Listener>,
    pub(super) source: ListenerSource,
    pub(super) pid_path: PathBuf,
    /// `None` for a binary upgrade's successor until its predecessor hands the lock over,
    /// and for a predecessor after it did.
    pub(super) pidfile: Option<PidFile>,
    pub(super) notifier: Notifier,
    pub(super) log: LogHandle,
    /// Generation numbers and the latest reload's outcome (for `await-reload`).
    pub(super) generations: Generations<ReloadError>,
    /// The runtime's worker threads (fixed at start).
    pub(super) workers: usize,
    /// TLS kept for the process lifetime, and the serving generation's certificates.
    pub(super) certificates: Certificates,
    /// What a binary upgrade starts: the path this binary was started from, and its arguments.
    pub(super) exe: Option<PathBuf>,
    pub(super) args: Vec<OsString>,
    /// Names of sockets dropped at start, for the fd store (a successor syncs it once main).
    pub(super) stale_names: Vec<String>,
    /// A binary upgrade's successor under systemd: the process that makes a stop wait for
    /// our drain (`graced_lifecycle::upgrade::spawn_sentinel`); it dies with us.
    pub(super) sentinel: Option<std::process::Child>,
    /// The latest rejected reload: when, and its error (for the status endpoint).
    pub(super) last_reload_error: Option<(std::time::SystemTime, String)>,
}

/// How the serving loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    Stop,
    GracefulStop,
    /// A binary upgrade's successor serves and is the main process: drain, tell nobody.
    HandedOver,
}

/// The worker threads `[server] workers` asks for: a number, or one per CPU this
/// process may use (affinity and cgroup CPU quota included), like nginx's
/// `worker_processes auto`. Read once at start.
pub(super) fn worker_threads(config: &Config) -> usize {
    config.server.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Supervisor {
    pub(super) fn print_first_run_help(&self) {
        let pid = std::process::id();
        for listener in &self.listeners {
            let address = listener.local_addr();
            if address.starts_with('/') {
                eprintln!("graced: serving on unix socket {address}");
            } else {
                let tls = self.config.listeners.iter().any(|l| l.name == listener.name && l.tls);
                eprintln!("graced: serving {}://{address}/", if tls { "https" } else { "http" });
            }
        }
        eprintln!(
            "graced: pid {pid} ({}); Ctrl-C stops, `kill -USR1 {pid}` reloads, `kill -WINCH {pid}` stops gracefully",
            self.pid_path.display()
        );
    }

    /// Tells the status endpoint what only the supervisor knows (after a start or reload).
    pub(super) fn publish_report(&self) {
        self.server.set_report(graced_http::Report {
            last_reload_error: self.last_reload_error.clone(),
            certificates: self.certificates.expiries(),
        });
    }

    /// STATUS=: the server's summary and the nearest certificate expiry.
    pub(super) fn status_text(&self) -> String {
        format!("{}{}", self.server.status(), self.certificates.note())
    }

    pub(super) fn status_line(&self) -> String {
        let status = self.server.status();
        format!(
            "pid={} generation={} connections={} h2_connections={} h2_streams={} requests={} bytes={} \
             reloads={} failed_reloads={} tls_failed_handshakes={} tls_handshake_timeouts={} \
             tls_plaintext_requests={}{}{}",
            std::process::id(),
            status.generation,
            status.connections,
            status.h2_connections,
            status.h2_streams,
            status.requests,
            status.bytes,
            status.reloads,
            status.failed_reloads,
            status.tls_failed_handshakes,
            status.tls_handshake_timeouts,
            status.tls_plaintext_requests,
            status.finishing.iter().map(|(g, n)| format!(" G{g}={n}")).collect::<String>(),
            self.certificates.note()
        )
    }
}
