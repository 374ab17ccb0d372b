//! Start-up: the pid file's lock, the listeners (from systemd, a predecessor, or bound), the fd store, the access log and the runtime, then the serving loop.

use std::sync::Arc;

use graced_config::Config;
use graced_http::access_log::AccessLogSink;
use graced_http::{Generation, Server};
use graced_lifecycle::activation::{self, Inherited, Leftovers};
use graced_lifecycle::listener::Listener;
use graced_lifecycle::notify::Notifier;
use graced_lifecycle::pidfile::{self, PidFile};
use graced_lifecycle::reload::Generations;
use graced_lifecycle::upgrade::{Origin, Predecessor, Start};

use super::certificates::Certificates;
use super::error::LifecycleError;
use super::fd_store::{self, FdStore};
use super::listeners::{ListenerSource, listen_spec};
use super::paths::{credentials_directory, own_command, pid_file_path};
use super::state::{Supervisor, worker_threads};
use crate::logging::{LogHandle, message_id};

/// Runs the server in the foreground until it is stopped. `start`: the sockets taken
/// from systemd (empty when not socket-activated), or from the predecessor of a binary
/// upgrade with the hand-shake to it.
pub fn serve(config: Config, start: Start, log: LogHandle) -> Result<(), LifecycleError> {
    let Start { inherited, mut predecessor } = start;
    let origin = predecessor.as_ref().map(|p| p.origin);
    match prepare(config, inherited, origin, log) {
        Ok(prepared) => prepared.run(predecessor),
        Err(err) => {
            // The predecessor keeps serving and reports why this binary could not.
            if let Some(predecessor) = &mut predecessor {
                predecessor.failed(&crate::logging::error_chain(&err));
            }
            Err(err)
        }
    }
}

/// Everything start-up takes before the runtime runs.
struct Prepared {
    config: Config,
    listeners: Vec<graced_lifecycle::listener::Listener>,
    source: ListenerSource,
    pidfile: Option<PidFile>,
    notifier: Notifier,
    stale_names: Vec<String>,
    access_log: AccessLogSink,
    certificates: Certificates,
    tls: super::certificates::Prepared,
    log: LogHandle,
}

/// Certificates, the pid file (not for a successor: it takes its predecessor's lock
/// later), the listeners and the access log: everything that can fail at start.
fn prepare(
    config: Config,
    inherited: Inherited,
    origin: Option<Origin>,
    log: LogHandle,
) -> Result<Prepared, LifecycleError> {
    // Certificates first: a broken key must fail the start before anything is taken.
    let certificates = Certificates::new(credentials_directory()).map_err(LifecycleError::Tls)?;
    let tls = certificates.prepare(&config, &graced_tls::Handed::default()).map_err(LifecycleError::Tls)?;
    let pid_path = pid_file_path(&config);
    let pidfile = match origin {
        Some(_) => None,
        None => Some(PidFile::acquire(&pid_path)?),
    };
    if let Some(stale) = pidfile.as_ref().and_then(PidFile::stale_pid) {
        let info = pidfile::ProcessInfo::of(stale);
        tracing::warn!(
            message_id = message_id::STALE_PID_FILE,
            stale_pid = stale,
            boot_id = pidfile::boot_id().unwrap_or_default(),
            "pid file {} named {info}, which no longer held its lock; it was replaced (a crash or power \
             loss leaves such files, and they never block a start)",
            pid_path.display()
        );
    }
    let notifier = Notifier::from_env();
    let source = match origin {
        Some(Origin::Bound) => ListenerSource::Bound,
        Some(Origin::Systemd) => ListenerSource::Systemd,
        None if inherited.is_empty() => ListenerSource::Bound,
        None => ListenerSource::Systemd,
    };
    let mut stale_names = Vec::new();
    let listeners = match (source, origin) {
        // A predecessor hands over exactly the listeners it served.
        (_, Some(_)) => {
            let specs: Vec<_> = config.listeners.iter().map(listen_spec).collect();
            activation::match_listeners(inherited, &specs, Leftovers::Refuse)?.listeners
        }
        (ListenerSource::Systemd, None) => {
            // With an fd store in the unit, a socket no listener uses is a leftover of an
            // earlier configuration, not an error.
            let leftovers = if notifier.fd_store_max() > 0 { Leftovers::Close } else { Leftovers::Refuse };
            let specs: Vec<_> = config.listeners.iter().map(listen_spec).collect();
            let matched = activation::match_listeners(inherited, &specs, leftovers)?;
            if matched.duplicates > 0 {
                tracing::debug!(
                    copies = matched.duplicates,
                    "sockets passed twice (socket unit and fd store) used once"
                );
            }
            stale_names = matched.stale_names;
            matched.listeners
        }
        (ListenerSource::Bound, None) => config
            .listeners
            .iter()
            .map(|l| {
                Listener::bind(&listen_spec(l))
                    .map_err(|source| LifecycleError::Bind { name: l.name.clone(), source })
            })
            .collect::<Result<_, _>>()?,
    };
    // A successor tells systemd nothing before it is the main process (NotifyAccess=main).
    if origin.is_none() {
        fd_store::sync(&notifier, FdStore::from_config(config.server.fd_store), &listeners, &stale_names);
    }
    let access_log = AccessLogSink::open(&config.server.access_log, crate::logging::journal_connected())
        .map_err(LifecycleError::AccessLog)?
        .with_format(config.server.access_log_format);
    Ok(Prepared {
        config,
        listeners,
        source,
        pidfile,
        notifier,
        stale_names,
        access_log,
        certificates,
        tls,
        log,
    })
}

impl Prepared {
    fn run(self, predecessor: Option<Predecessor>) -> Result<(), LifecycleError> {
        let Prepared {
            config,
            listeners,
            source,
            pidfile,
            notifier,
            stale_names,
            access_log,
            mut certificates,
            tls,
            log,
        } = self;
        let workers = worker_threads(&config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .worker_threads(workers)
            .thread_name("graced-worker")
            .build()
            .map_err(LifecycleError::Runtime)?;
        let (exe, args) = own_command();
        runtime.block_on(async move {
            let server = Server::new(tls.apply(Generation::new(1, Arc::new(config.clone()), access_log)));
            certificates.install(tls, &config);
            let supervisor = Supervisor {
                pid_path: pid_file_path(&config),
                config,
                server,
                listeners,
                source,
                pidfile,
                notifier,
                log,
                generations: Generations::new(),
                workers,
                certificates,
                exe,
                args,
                stale_names,
                sentinel: None,
                last_reload_error: None,
            };
            supervisor.publish_report();
            supervisor.run(predecessor).await
        })
    }
}
