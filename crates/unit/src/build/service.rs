//! The `.service` unit: start, reload, stop, restart, limits and the sandbox.

use std::time::Duration;

use super::hardening::sandbox;
use super::plan::Plan;
use super::reload::ReloadForm;
use crate::model::*;
use crate::versions::FD_STORE_SINCE;

/// Added to `graceful_shutdown_timeout` for `TimeoutStopSec=`: after the drain deadline the
/// server aborts what is left, removes its pid file and exits, which takes well under a
/// second; 5 s of slack still kills a wedged server promptly. (A drain in progress extends
/// the timeout itself with EXTEND_TIMEOUT_USEC.)
pub const STOP_MARGIN: Duration = Duration::from_secs(5);
/// `StartLimitIntervalSec=`/`StartLimitBurst=`: systemd's 5 starts in 10 s counts manual
/// restarts and, when hit, fails the .socket too, closing the listener socket activation
/// keeps open. 50 starts in 10 s lets a burst of manual restarts through, while
/// `RestartSec=` paces a crash loop at one start a second, well under it.
pub const START_LIMIT_INTERVAL: Duration = Duration::from_secs(10);
pub const START_LIMIT_BURST: u32 = 50;
pub const RESTART_SEC: Duration = Duration::from_secs(1);
/// `LimitNOFILE=` = 2 per connection (its socket + the file being sent) + a reserve for
/// listeners, logs, the journal, the notify and control sockets, capped at the kernel's
/// default `fs.nr_open` (a higher value makes the start fail).
const NOFILE_PER_CONNECTION: u64 = 2;
const NOFILE_RESERVE: u64 = 64;
const NOFILE_CEILING: u64 = 1 << 20;
/// Files the service creates are not readable by others (pid file, control socket, logs).
const UMASK: u32 = 0o027;

impl Plan<'_> {
    /// The service unit.
    pub(super) fn service(&self) -> UnitFile {
        let (config, options, names, exec, paths) =
            (self.config, self.options, &self.names, &self.exec, &self.paths);
        let systemd = self.systemd;
        let reload = ReloadForm::choose(systemd, !self.credentials.is_empty());
        let unit = UnitSection {
            description: format!("graced web server{}", names.description_suffix()),
            documentation: options.documentation.clone(),
            source_path: self.source_path.clone(),
            requires: names.sockets.clone(),
            wants: Vec::new(),
            part_of: Vec::new(),
            after: names.sockets.clone(),
            requires_mounts_for: paths.mounts.clone(),
            start_limit_interval: Some(START_LIMIT_INTERVAL),
            start_limit_burst: Some(START_LIMIT_BURST),
        };
        let check = exec.command(&["-t"]);
        let service = ServiceSection {
            service_type: reload.service_type(),
            // A binary upgrade (`graced -k upgrade`) needs no wider access: the old process
            // sends MAINPID= while it is main, and the new one speaks only once it is.
            notify_access: NotifyAccess::Main,
            reload_signal: reload.reload_signal(),
            sockets: names.sockets.clone(),
            exec_start_pre: vec![check],
            exec_start: exec.command(&[]),
            // See ReloadForm: the reload's outcome fails the job, on every systemd.
            exec_reload: vec![reload.exec_reload(exec)],
            // WINCH to every process: a stop during a binary upgrade's drain reaches the old
            // process too, which keeps draining (it already does) instead of being SIGKILLed.
            kill_mode: KillMode::ControlGroup,
            kill_signal: Signal::Winch,
            timeout_stop: config.server.graceful_shutdown_timeout + STOP_MARGIN,
            restart: Restart::OnFailure,
            restart_sec: RESTART_SEC,
            watchdog: config.server.watchdog,
            // Opt-in: the socket units already keep every listener across restart, crash and
            // stop + start; a stored copy adds nothing for them, and keeps the port of a
            // stopped socket unit bound (restarting graced.socket then fails: EADDRINUSE).
            fd_store: (config.server.fd_store && systemd >= FD_STORE_SINCE).then(|| FdStore {
                max: config.listeners.len().max(1) as u32,
                preserve: FdStorePreserve::Yes,
            }),
            account: match (&config.server.user, &config.server.group) {
                (Some(user), group) => Account::Static { user: user.clone(), group: group.clone() },
                (None, group) => Account::Dynamic { group: group.clone() },
            },
            runtime_directory: self.runtime_directory.clone(),
            logs_directory: paths.logs_directory.clone(),
            syslog_identifier: names.identifier(&options.name),
            limit_nofile: (config.limits.max_connections as u64 * NOFILE_PER_CONNECTION + NOFILE_RESERVE)
                .min(NOFILE_CEILING),
            umask: UMASK,
            credentials: self.credentials.clone(),
            sandbox: sandbox(systemd, paths),
        };
        UnitFile {
            header: self.header.clone(),
            unit,
            body: Body::Service(Box::new(service)),
            install: None, // only the socket is enabled; traffic or the socket's start brings the service
        }
    }
}
