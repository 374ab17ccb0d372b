//! graced's supervisor: the one place that sequences start → serve → reload → restart → drain → stop.
//!
//! It composes the lifecycle toolkit (`graced_lifecycle`: signals, sd_notify, socket
//! activation, the pid file, the control socket) with the HTTP server (`graced_http`) and
//! the configuration (`graced_config`); the toolkit and the server never see each other.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use graced_config::{Config, ListenAddress, Listener as ListenerConfig};
use graced_http::access_log::AccessLogSink;
use graced_http::{Generation, Server};
use graced_lifecycle::activation::{self, ActivationError};
use graced_lifecycle::control::{self, Pending, Request};
use graced_lifecycle::listener::{self, ListenSpec, Listener};
use graced_lifecycle::notify::{self, Notifier};
use graced_lifecycle::pidfile::{self, PidFile, PidFileError};
use graced_lifecycle::signal::{self, Command};
use tokio::sync::mpsc;

use crate::logging::{LogHandle, message_id};

/// Why the server could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    #[error(transparent)]
    Activation(#[from] ActivationError),
    #[error("cannot listen for {name:?}: {source}")]
    Bind {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the access log: {0}")]
    AccessLog(#[source] std::io::Error),
    #[error("cannot create the control socket {}: {source}", path.display())]
    Control {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The pid file a configuration asks for: its `pid_file`, else [`default_pid_file`].
pub fn pid_file_path(config: &Config) -> PathBuf {
    config.server.pid_file.clone().unwrap_or_else(default_pid_file)
}

/// The pid file a configuration file names even when the file does not validate, so
/// that `-k` can still reach the running server (which then reports the errors itself).
pub fn pid_file_path_lenient(config_file: &std::path::Path) -> PathBuf {
    let named = std::fs::read_to_string(config_file).ok().and_then(|text| {
        let table: toml::Table = toml::from_str(&text).ok()?;
        let path = table.get("server")?.get("pid_file")?.as_str()?.to_owned();
        Some(config_file.parent().unwrap_or(std::path::Path::new("/")).join(path))
    });
    named.unwrap_or_else(default_pid_file)
}

/// `$RUNTIME_DIRECTORY/graced.pid` (systemd's `RuntimeDirectory=`), else
/// `/run/graced/graced.pid` for root and `$XDG_RUNTIME_DIR/graced/graced.pid` (or
/// `/tmp/graced-UID/graced.pid`) for others.
pub fn default_pid_file() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY") {
        // systemd may list several directories separated by ':'; the first is ours.
        let first = dir.to_string_lossy().split(':').next().unwrap_or_default().to_owned();
        return PathBuf::from(first).join("graced.pid");
    }
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/graced/graced.pid");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("graced/graced.pid"),
        None => PathBuf::from(format!("/tmp/graced-{}/graced.pid", uid.as_raw())),
    }
}

/// Runs the server in the foreground until it is stopped. `inherited` are the sockets
/// taken from systemd (empty when not socket-activated).
pub fn serve(
    config: Config,
    inherited: Vec<(String, OwnedFd)>,
    log: LogHandle,
) -> Result<(), LifecycleError> {
    let pid_path = pid_file_path(&config);
    let (pidfile, stale) = PidFile::acquire(&pid_path)?;
    if let Some(stale) = stale {
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
    let activated = !inherited.is_empty();
    let mut stale_names = Vec::new();
    let listeners = if activated {
        let matched = activation::match_listeners(
            inherited,
            &config.listeners.iter().map(listen_spec).collect::<Vec<_>>(),
            notifier.fd_store_max() > 0,
        )?;
        if matched.duplicates > 0 {
            tracing::debug!(
                copies = matched.duplicates,
                "sockets passed twice (socket unit and fd store) used once"
            );
        }
        stale_names = matched.stale_names;
        matched.listeners
    } else {
        config
            .listeners
            .iter()
            .map(|l| {
                Listener::bind(&listen_spec(l))
                    .map_err(|source| LifecycleError::Bind { name: l.name.clone(), source })
            })
            .collect::<Result<_, _>>()?
    };
    sync_fd_store(&notifier, config.server.fd_store, &listeners, &stale_names);
    let access_log = AccessLogSink::open(&config.server.access_log, crate::logging::journal_connected())
        .map_err(LifecycleError::AccessLog)?;
    let workers = worker_threads(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(workers)
        .thread_name("graced-worker")
        .build()
        .map_err(LifecycleError::Runtime)?;
    runtime.block_on(async move {
        let server = Server::new(Generation::new(1, Arc::new(config.clone()), access_log));
        let supervisor = Supervisor {
            config,
            server,
            listeners,
            activated,
            pidfile,
            notifier,
            log,
            next_generation: 2,
            last_reload_failed: false,
            last_reload: None,
            workers,
        };
        supervisor.run().await
    })
}

/// The toolkit's description of a configured listener.
fn listen_spec(config: &ListenerConfig) -> ListenSpec {
    ListenSpec {
        name: config.name.clone(),
        address: listen_address(&config.address),
        backlog: config.backlog,
        ipv6_only: config.ipv6_only,
        no_delay: config.no_delay,
        socket_mode: config.socket_mode,
    }
}

fn listen_address(address: &ListenAddress) -> listener::ListenAddress {
    match address {
        ListenAddress::Tcp(addr) => listener::ListenAddress::Tcp(*addr),
        ListenAddress::Unix(path) => listener::ListenAddress::Unix(path.clone()),
    }
}

/// The worker threads `[server] workers` asks for: a number, or one per CPU this
/// process may use (affinity and cgroup CPU quota included), like nginx's
/// `worker_processes auto`. Read once at start.
fn worker_threads(config: &Config) -> usize {
    config.server.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Keeps systemd's fd store in step with the listeners: names of dropped sockets are
/// removed, and with `[server] fd_store = true` every listener is stored under its name
/// (`FDSTORE=1`, `FDNAME=`). Needs a unit with `FileDescriptorStoreMax=` under systemd
/// ≥ 254, which announces it in `$FDSTORE`; with the store off in the configuration but
/// present in the unit, graced's names are taken out of it.
fn sync_fd_store(notifier: &Notifier, enabled: bool, listeners: &[Listener], stale: &[String]) {
    let max = notifier.fd_store_max();
    if max == 0 {
        if enabled && notifier.enabled() {
            tracing::warn!(
                "fd_store = true, but systemd offers no fd store ($FDSTORE is unset: FileDescriptorStoreMax=0, or \
                 systemd < 254); the listeners are not stored"
            );
        }
        return;
    }
    for name in stale {
        notifier.remove_stored(name);
    }
    if !enabled {
        for listener in listeners {
            notifier.remove_stored(&listener.name);
        }
        return;
    }
    if listeners.len() > max {
        tracing::warn!(
            "{} listeners, but FileDescriptorStoreMax={max}: systemd keeps only {max}",
            listeners.len()
        );
    }
    for listener in listeners {
        if let Err(err) = notifier.store_fd(&listener.name, listener.as_fd()) {
            tracing::warn!(listener = %listener.name, error = %err, "cannot hand the listener to systemd's fd store");
        }
    }
    tracing::debug!(listeners = listeners.len(), max, "listeners handed to systemd's fd store");
}

struct Supervisor {
    config: Config,
    server: Server,
    /// Owned by the process, never by a generation: a reload never closes one it keeps.
    listeners: Vec<Listener>,
    activated: bool,
    pidfile: PidFile,
    notifier: Notifier,
    log: LogHandle,
    next_generation: u64,
    last_reload_failed: bool,
    /// The outcome of the latest reload or restart, for `await-reload`.
    last_reload: Option<Result<u64, String>>,
    /// The runtime's worker threads (fixed at start).
    workers: usize,
}

enum Exit {
    Stop,
    GracefulStop,
}

impl Supervisor {
    async fn run(mut self) -> Result<(), LifecycleError> {
        // Handlers first: USR1 and HUP would otherwise kill us before we are ready.
        let mut signals = signal::Signals::install().map_err(LifecycleError::Runtime)?;
        let control_path = control::socket_path(self.pidfile.path());
        let (control_tx, mut control_rx) = mpsc::channel::<Pending>(16);
        control::serve(&control_path, control_tx)
            .map_err(|source| LifecycleError::Control { path: control_path.clone(), source })?;
        for listener in &self.listeners {
            self.server
                .start_accepting(&listener.name, listener.as_fd())
                .map_err(|source| LifecycleError::Bind { name: listener.name.clone(), source })?;
        }
        let addresses: Vec<String> =
            self.listeners.iter().map(|l| format!("{}={}", l.name, l.local_addr())).collect();
        tracing::info!(
            message_id = message_id::STARTED,
            generation = 1u64,
            pid = std::process::id(),
            workers = self.workers,
            socket_activated = self.activated,
            config = %self.config.source.display_name(),
            "graced started: listening on {}{}",
            addresses.join(", "),
            if self.activated { " (sockets from systemd)" } else { "" }
        );
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            self.print_first_run_help();
        }
        self.notifier.ready(&self.server.status().to_string());

        let watchdog = notify::watchdog_interval();
        let mut watchdog_tick = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |d| d / 2));
        // The first tick comes 5 s from now: READY=1 just carried the status.
        let mut status_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        let mut last_status = self.server.status().to_string();
        let exit = loop {
            tokio::select! {
                (name, command) = signals.recv() => {
                    tracing::debug!(signal = name, ?command, "signal received");
                    if let Some(exit) = self.command(command).await.1 { break exit; }
                }
                Some((request, reply)) = control_rx.recv() => {
                    let (answer, exit) = match request {
                        Request::Status => (Ok(self.status_line()), None),
                        Request::AwaitReload => self.await_reload(&mut signals).await,
                        Request::Command(command) => self.command(command).await,
                    };
                    let _ = reply.send(answer);
                    if let Some(exit) = exit { break exit; }
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
                _ = status_tick.tick() => {
                    let status = self.server.status().to_string();
                    if status != last_status {
                        self.notifier.status(&status);
                        last_status = status;
                    }
                }
            }
        };
        match exit {
            Exit::Stop => self.stop().await,
            Exit::GracefulStop => self.graceful_stop(&mut signals, watchdog).await,
        }
        let _ = std::fs::remove_file(&control_path);
        let status = self.server.status();
        tracing::info!(
            message_id = message_id::STOPPED,
            generation = status.generation,
            requests = status.requests,
            "graced stopped after {} requests",
            status.requests
        );
        Ok(())
    }

    fn print_first_run_help(&self) {
        let pid = std::process::id();
        for listener in &self.listeners {
            let address = listener.local_addr();
            if address.starts_with('/') {
                eprintln!("graced: serving on unix socket {address}");
            } else {
                eprintln!("graced: serving http://{address}/");
            }
        }
        eprintln!(
            "graced: pid {pid} ({}); Ctrl-C stops, `kill -USR1 {pid}` reloads, `kill -WINCH {pid}` stops gracefully",
            self.pidfile.path().display()
        );
    }

    fn status_line(&self) -> String {
        let status = self.server.status();
        format!(
            "pid={} generation={} connections={} requests={} bytes={} reloads={} failed_reloads={}{}",
            std::process::id(),
            status.generation,
            status.connections,
            status.requests,
            status.bytes,
            status.reloads,
            status.failed_reloads,
            status.finishing.iter().map(|(g, n)| format!(" G{g}={n}")).collect::<String>()
        )
    }

    /// Carries out `command`; returns the reply for a control client and whether to exit.
    async fn command(&mut self, command: Command) -> (control::Reply, Option<Exit>) {
        match command {
            Command::Reload | Command::Restart => {
                let hard = command == Command::Restart;
                (self.reload(hard).map(|g| format!("generation {g} serving")), None)
            }
            Command::Stop => (Ok("stopping".into()), Some(Exit::Stop)),
            Command::GracefulStop => (Ok("stopping gracefully".into()), Some(Exit::GracefulStop)),
        }
    }

    /// Answers `await-reload`: systemd (`Type=notify-reload`) sent the reload signal
    /// before it ran `ExecReload=`, which asks this. The signal was delivered before that
    /// command even started, so any signal still queued is handled first; then the
    /// latest reload's outcome is the answer — a configuration the server rejected fails
    /// `systemctl reload` even where `graced -t` would accept the file (a listener change
    /// under socket activation, an access log that cannot be opened).
    async fn await_reload(&mut self, signals: &mut signal::Signals) -> (control::Reply, Option<Exit>) {
        loop {
            let pending = tokio::select! {
                biased;
                (_, command) = signals.recv() => Some(command),
                _ = std::future::ready(()) => None,
            };
            let Some(command) = pending else { break };
            if let (_, Some(exit)) = self.command(command).await {
                return (Err("the server is stopping".into()), Some(exit));
            }
        }
        let outcome = self.last_reload.clone().unwrap_or_else(|| Err("no reload has happened yet".into()));
        (outcome.map(|g| format!("generation {g} serving")), None)
    }

    /// A graceful reload (USR1) or a hard restart (HUP). A configuration that does not
    /// validate changes nothing: the current generation keeps serving.
    fn reload(&mut self, hard: bool) -> Result<u64, String> {
        let outcome = self.reload_inner(hard);
        self.last_reload = Some(outcome.clone());
        outcome
    }

    fn reload_inner(&mut self, hard: bool) -> Result<u64, String> {
        let what = if hard { "restart" } else { "reload" };
        self.notifier.reloading(&format!("{what}: rereading {}", self.config.source.display_name()));
        match self.prepare(hard) {
            Ok((config, generation)) => {
                let id = generation.id;
                if hard {
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
                self.config = config;
                self.server.install(generation);
                self.server.counters().reloads.fetch_add(1, Ordering::Relaxed);
                let status = format!("{}; {what}ed", self.server.status());
                if std::mem::take(&mut self.last_reload_failed) {
                    self.notifier.send(&[("READY", "1"), ("STATUS", &status), ("ERRNO", "0")]);
                } else {
                    self.notifier.ready(&status);
                }
                tracing::info!(
                    message_id = if hard { message_id::RESTARTED } else { message_id::RELOADED },
                    generation = id,
                    "{what} complete: generation {id} serves new requests"
                );
                Ok(id)
            }
            Err(error) => {
                self.server.counters().failed_reloads.fetch_add(1, Ordering::Relaxed);
                self.last_reload_failed = true;
                let current = self.server.current().id;
                let first_line = error.lines().next().unwrap_or_default();
                let status = format!("{what} failed, still serving generation {current}: {first_line}");
                self.notifier.send(&[("READY", "1"), ("STATUS", &status), ("ERRNO", "22")]);
                tracing::error!(
                    message_id = message_id::RELOAD_FAILED,
                    generation = current,
                    "{what} failed; generation {current} keeps serving:\n{error}"
                );
                Err(error)
            }
        }
    }

    /// Everything that can fail, done before anything changes.
    fn prepare(&mut self, hard: bool) -> Result<(Config, Generation), String> {
        let config = self.config.reload().map_err(|e| e.to_string())?;
        let access_log = AccessLogSink::open(&config.server.access_log, crate::logging::journal_connected())
            .map_err(|e| e.to_string())?;
        self.update_listeners(&config)?;
        let _ = hard;
        let id = self.next_generation;
        self.next_generation += 1;
        let generation = Generation::new(id, Arc::new(config.clone()), access_log);
        Ok((config, generation))
    }

    /// Makes the listeners match `config`: kept sockets stay open (a reload never closes
    /// one), new ones are bound before any old one is closed. Under socket activation
    /// the set comes from systemd and cannot change here.
    fn update_listeners(&mut self, config: &Config) -> Result<(), String> {
        let wanted: Vec<(&str, &ListenAddress)> =
            config.listeners.iter().map(|l| (l.name.as_str(), &l.address)).collect();
        let have: Vec<(&str, &ListenAddress)> =
            self.config.listeners.iter().map(|l| (l.name.as_str(), &l.address)).collect();
        if wanted == have {
            return Ok(());
        }
        if self.activated {
            return Err("the [[listen]] tables changed, but listeners come from systemd's socket unit: \
                        regenerate the units (`graced unit`), then `systemctl daemon-reload` and restart the socket"
                .into());
        }
        // Bind every new address first: if one fails, nothing has changed.
        let mut fresh = Vec::new();
        for listener in &config.listeners {
            if !self.listeners.iter().any(|s| s.matches(&listen_address(&listener.address))) {
                let socket = Listener::bind(&listen_spec(listener))
                    .map_err(|err| format!("cannot listen for {:?}: {err}", listener.name))?;
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
        sync_fd_store(&self.notifier, config.server.fd_store, &self.listeners, &removed);
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

    /// TERM: close listeners, abort everything in flight.
    async fn stop(&mut self) {
        self.server.stop_accepting_all();
        self.listeners.clear();
        self.server.abort_connections();
        self.notifier.stopping("stopping");
        self.server.wait_connections(Duration::from_secs(2)).await;
    }

    /// WINCH: stop accepting, remove the pid file, let requests finish until the timeout.
    async fn graceful_stop(&mut self, signals: &mut signal::Signals, watchdog: Option<Duration>) {
        let timeout = self.config.server.graceful_shutdown_timeout;
        let open = self.server.open_connections();
        // Do, then tell: once systemd (or a test) hears STOPPING=1, the pid file is gone
        // and every response already says `Connection: close`.
        self.pidfile.remove();
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
                (_, command) = signals.recv() => {
                    if command == Command::Stop {
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
