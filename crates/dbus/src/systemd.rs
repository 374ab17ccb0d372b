//! The systemd side of the helper: finds graced units, stops, reloads and reads them.
//!
//! Everything goes through `org.freedesktop.systemd1` on the bus: `LoadUnit` and unit
//! properties to look, `StopUnit`/`KillUnit`/`ReloadUnit` to act, and the signals
//! `PropertiesChanged` (StatusText, ActiveState) and `JobRemoved` to learn how it went —
//! never command output, never polling. Proxies are built with
//! [`CacheProperties::No`]: every property read is a fresh `Get`, so a value can never be
//! older than a signal already seen. Signal streams are opened *before* the action, so
//! no change can slip between acting and listening.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_core::Stream;
use zbus::fdo::{PropertiesChangedStream, PropertiesProxy};
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath};
use zbus_systemd::systemd1::{JobRemovedStream, ManagerProxy, ServiceProxy, UnitProxy};

use super::error::{ControlError, systemd_error, zbus_error_name};
use super::status::{self, ServerStatus};

/// The signal that makes graced drain and exit (Apache's graceful-stop).
pub const SIGWINCH: i32 = libc::SIGWINCH;

const DESTINATION: &str = "org.freedesktop.systemd1";
const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_INTERFACE: &str = "org.freedesktop.systemd1.Service";

/// How long a successful reload may take to show its new generation in StatusText.
const GENERATION_GRACE: Duration = Duration::from_secs(2);

/// The unit name `requested` stands for, if it is one a graced unit may have.
///
/// Accepted: `graced.service`, `graced@INSTANCE.service` (the template's instances, as
/// the generator writes them) and `graced-NAME.service` (units written by `graced unit`
/// under another name). A name without `.service` gets it appended, so `graced`,
/// `graced@blog` and `graced-blog` work. The rule is only the first gate: the unit must
/// also run `graced` (see [`Systemd::unit`]).
pub fn graced_unit_name(requested: &str) -> Result<String, ControlError> {
    let name =
        if requested.ends_with(".service") { requested.to_owned() } else { format!("{requested}.service") };
    let stem = &name[..name.len() - ".service".len()];
    let suffix = stem.strip_prefix("graced@").or_else(|| stem.strip_prefix("graced-"));
    let valid = stem == "graced"
        || suffix.is_some_and(|s| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b":-_.\\".contains(&b))
        });
    if valid && name.len() <= 255 {
        Ok(name)
    } else {
        Err(ControlError::NotAGracedUnit(format!(
            "{requested:?} is not a graced unit: only graced.service, graced@INSTANCE.service and \
             graced-NAME.service may be acted on"
        )))
    }
}

/// Whether every command in a unit's `ExecStart=` runs a binary named `graced`.
pub fn runs_graced<'a>(exec_paths: impl IntoIterator<Item = &'a str>) -> bool {
    let mut any = false;
    for path in exec_paths {
        any = true;
        if std::path::Path::new(path).file_name().is_none_or(|name| name != "graced") {
            return false;
        }
    }
    any
}

/// Whether a unit in this state has finished stopping: inactive, failed, or already on its
/// way back because `Restart=` restarts it.
fn is_down(active_state: &str, sub_state: &str) -> bool {
    matches!(active_state, "inactive" | "failed") || sub_state == "auto-restart"
}

/// The next item of a signal stream.
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

fn call_failed(context: &str) -> impl FnOnce(zbus::Error) -> ControlError + '_ {
    move |err| systemd_error(context, err)
}

/// systemd's manager, as the helper uses it.
pub struct Systemd {
    conn: Connection,
    manager: ManagerProxy<'static>,
}

impl Systemd {
    /// The manager on `conn` (no call is made yet; see [`Systemd::subscribe`]).
    pub async fn new(conn: &Connection) -> Result<Systemd, ControlError> {
        let manager = ManagerProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call_failed("org.freedesktop.systemd1"))?;
        Ok(Systemd { conn: conn.clone(), manager })
    }

    /// Subscribes to the manager's signals: systemd sends unit and job signals on the
    /// system bus only while someone is subscribed (the subscription ends with our
    /// connection).
    pub async fn subscribe(&self) -> Result<(), ControlError> {
        match self.manager.subscribe().await {
            Ok(()) => Ok(()),
            Err(err) if zbus_error_name(&err).is_some_and(|n| n.ends_with(".AlreadySubscribed")) => Ok(()),
            Err(err) => Err(systemd_error("Subscribe", err)),
        }
    }

    /// The graced unit `requested` names: the name must pass [`graced_unit_name`], the unit
    /// must be loaded and its `ExecStart=` must run `graced`. Anything else is refused
    /// before any action.
    pub async fn unit(&self, requested: &str) -> Result<GracedUnit, ControlError> {
        let name = graced_unit_name(requested)?;
        let path = self.manager.load_unit(name.clone()).await.map_err(|err| {
            if zbus_error_name(&err).is_some_and(|n| n.ends_with(".NoSuchUnit")) {
                ControlError::NoSuchUnit(format!("{name}: no such unit"))
            } else {
                systemd_error(&format!("LoadUnit({name})"), err)
            }
        })?;
        let context = format!("reading {name}");
        let unit = UnitProxy::builder(&self.conn)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call_failed(&context))?;
        let service = ServiceProxy::builder(&self.conn)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call_failed(&context))?;
        let properties = PropertiesProxy::builder(&self.conn)
            .destination(DESTINATION)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call_failed(&context))?;
        let load_state = unit.load_state().await.map_err(call_failed(&context))?;
        if load_state != "loaded" {
            return Err(ControlError::NoSuchUnit(format!("{name}: no such unit (LoadState={load_state})")));
        }
        let exec_start = service.exec_start().await.map_err(call_failed(&context))?;
        let paths: Vec<&str> = exec_start.iter().map(|command| command.0.as_str()).collect();
        if !runs_graced(paths.iter().copied()) {
            let runs = if paths.is_empty() { "nothing".to_owned() } else { paths.join(", ") };
            return Err(ControlError::NotAGracedUnit(format!(
                "{name} is not a graced unit: its ExecStart= runs {runs}, not graced"
            )));
        }
        Ok(GracedUnit { name, path, manager: self.manager.clone(), unit, service, properties })
    }
}

/// What systemd says about a unit at one moment (every field read afresh).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub unit: String,
    pub active_state: String,
    pub sub_state: String,
    pub main_pid: u32,
    /// `ActiveEnterTimestamp`: µs since the epoch, 0 if never active.
    pub active_enter_usec: u64,
    pub status_text: String,
    pub status_errno: i32,
    /// The service's `Result` (`success`, `timeout`, `signal`, …).
    pub result: String,
}

impl Snapshot {
    /// `active/running`, the way `systemctl` shows it.
    pub fn state(&self) -> String {
        format!("{}/{}", self.active_state, self.sub_state)
    }

    /// Whether the unit is up (a graceful stop or a reload makes sense).
    pub fn is_running(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }
}

/// How a graceful stop was sent; see [`GracedUnit::graceful_stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMethod {
    /// `StopUnit(unit, "replace")`: the unit's `KillSignal=` is SIGWINCH.
    StopJob,
    /// `KillUnit(unit, "main", SIGWINCH)`: the unit's `KillSignal=` is something else.
    KillMain,
    /// The unit was already stopping; the call only waited.
    AlreadyStopping,
}

/// How a graceful stop ended.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    pub method: StopMethod,
    /// From sending the stop to the unit being down.
    pub drain: Duration,
    /// Whether requests were cut: the server's final StatusText says
    /// `K connections aborted` with K > 0, or, without that text, the unit's `Result` is
    /// not `success` (systemd killed it).
    pub aborted: bool,
    /// K, when the server said it.
    pub aborted_connections: Option<u64>,
    /// The last StatusText seen.
    pub status_text: String,
    /// The unit's state afterwards.
    pub after: Snapshot,
}

/// A unit that passed every check of [`Systemd::unit`].
pub struct GracedUnit {
    name: String,
    path: OwnedObjectPath,
    manager: ManagerProxy<'static>,
    unit: UnitProxy<'static>,
    service: ServiceProxy<'static>,
    properties: PropertiesProxy<'static>,
}

/// The signal streams one operation listens to, opened before it acts.
struct Watch {
    changes: PropertiesChangedStream,
    removed: JobRemovedStream,
}

/// A change a [`Watch`] reported.
enum Event {
    Status(String),
    State,
    JobRemoved { job: OwnedObjectPath, result: String },
}

impl GracedUnit {
    /// The full unit name, e.g. `graced.service`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The unit's object path.
    pub fn path(&self) -> &OwnedObjectPath {
        &self.path
    }

    fn context(&self, what: &str) -> String {
        format!("{what} {}", self.name)
    }

    /// Reads the unit's state afresh.
    pub async fn snapshot(&self) -> Result<Snapshot, ControlError> {
        let context = self.context("reading");
        let err = || call_failed(&context);
        Ok(Snapshot {
            unit: self.name.clone(),
            active_state: self.unit.active_state().await.map_err(err())?,
            sub_state: self.unit.sub_state().await.map_err(err())?,
            main_pid: self.service.main_pid().await.map_err(err())?,
            active_enter_usec: self.unit.active_enter_timestamp().await.map_err(err())?,
            status_text: self.service.status_text().await.map_err(err())?,
            status_errno: self.service.status_errno().await.map_err(err())?,
            result: self.service.result().await.map_err(err())?,
        })
    }

    async fn watch(&self) -> Result<Watch, ControlError> {
        let context = self.context("watching");
        let changes = self.properties.receive_properties_changed().await.map_err(call_failed(&context))?;
        let removed = self.manager.receive_job_removed().await.map_err(call_failed(&context))?;
        Ok(Watch { changes, removed })
    }

    /// Waits for the next change of this unit that matters: its StatusText, its
    /// ActiveState/SubState, or any job's removal (the caller matches the job).
    async fn next_event(&self, watch: &mut Watch) -> Result<Event, ControlError> {
        loop {
            tokio::select! {
                change = next(&mut watch.changes) => {
                    let Some(change) = change else { return Err(self.lost()) };
                    let Ok(args) = change.args() else { continue };
                    let changed = args.changed_properties();
                    match args.interface_name().as_str() {
                        SERVICE_INTERFACE => {
                            if let Some(text) = changed.get("StatusText").and_then(|v| String::try_from(v).ok()) {
                                return Ok(Event::Status(text));
                            }
                        }
                        UNIT_INTERFACE => {
                            let invalidated = args.invalidated_properties();
                            if ["ActiveState", "SubState"]
                                .iter()
                                .any(|p| changed.contains_key(p) || invalidated.contains(p))
                            {
                                return Ok(Event::State);
                            }
                        }
                        _ => {}
                    }
                }
                removed = next(&mut watch.removed) => {
                    let Some(removed) = removed else { return Err(self.lost()) };
                    let Ok(args) = removed.args() else { continue };
                    if args.unit() == &self.name {
                        return Ok(Event::JobRemoved { job: args.job().clone(), result: args.result().clone() });
                    }
                }
            }
        }
    }

    fn lost(&self) -> ControlError {
        ControlError::Systemd(format!("lost the signal stream from systemd while watching {}", self.name))
    }

    async fn states(&self) -> Result<(String, String), ControlError> {
        let context = self.context("reading");
        Ok((
            self.unit.active_state().await.map_err(call_failed(&context))?,
            self.unit.sub_state().await.map_err(call_failed(&context))?,
        ))
    }

    /// Stops the unit gracefully: the server stops accepting, lets in-flight requests
    /// finish (up to its `graceful_shutdown_timeout`) and exits. Returns when the unit is
    /// down, or fails with [`ControlError::Timeout`] after `timeout` (the stop goes on).
    /// Every StatusText change on the way is sent to `progress` (dropped when this returns).
    ///
    /// How the stop is sent — the choice:
    ///
    /// * The unit's `KillSignal=` is SIGWINCH (every unit `graced unit` writes): a **stop
    ///   job**, `StopUnit(unit, "replace")`. systemd then knows the unit is stopping: it
    ///   sends WINCH to the main process only (`KillMode=mixed`), honours the server's
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
        let mut down = is_down(&before.active_state, &before.sub_state);
        while !down {
            let event = tokio::select! {
                event = self.next_event(&mut watch) => event?,
                () = tokio::time::sleep_until(deadline) => {
                    let (active, sub) = self.states().await?;
                    return Err(ControlError::Timeout(format!(
                        "{} is still {active}/{sub} after {}s (last status: {last_status}); the stop goes on",
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
                    let (active, sub) = self.states().await?;
                    down = is_down(&active, &sub);
                }
                Event::JobRemoved { job: removed, result } => {
                    if job.as_ref() != Some(&removed) {
                        continue;
                    }
                    let (active, sub) = self.states().await?;
                    down = is_down(&active, &sub);
                    if !down && result != "done" {
                        return Err(ControlError::StopFailed(format!(
                            "the stop job of {} ended with result \"{result}\"; the unit is {active}/{sub}",
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

    /// Reloads the unit (`ReloadUnit(unit, "replace")`, which runs the unit's
    /// `ExecReload=`, i.e. `graced -k graceful --wait`) and waits for the job's
    /// `JobRemoved`. On `done`, returns the generation now serving, read from StatusText.
    /// Otherwise fails with [`ControlError::ReloadFailed`] carrying the server's StatusText
    /// (`reload failed, still serving generation N: FILE:LINE:COL: …`).
    pub async fn reload(&self, timeout: Duration) -> Result<u64, ControlError> {
        let mut watch = self.watch().await?;
        let before = self.snapshot().await?;
        if !before.is_running() {
            return Err(ControlError::NotRunning(format!(
                "{} is not running ({})",
                self.name,
                before.state()
            )));
        }
        let old_generation = status::parse(&before.status_text).generation();
        let job = self
            .manager
            .reload_unit(self.name.clone(), "replace".into())
            .await
            .map_err(call_failed(&format!("ReloadUnit({})", self.name)))?;
        tracing::debug!(unit = %self.name, %job, "reload job queued");
        let deadline = tokio::time::Instant::now() + timeout;
        // StatusTexts seen while the job ran, oldest first.
        let mut seen: Vec<String> = Vec::new();
        let result = loop {
            let event = tokio::select! {
                event = self.next_event(&mut watch) => event?,
                () = tokio::time::sleep_until(deadline) => return Err(ControlError::Timeout(format!(
                    "the reload job of {} did not finish within {}s; it goes on in systemd",
                    self.name,
                    timeout.as_secs()
                ))),
            };
            match event {
                Event::Status(text) => seen.push(text),
                Event::JobRemoved { job: removed, result } if removed == job => break result,
                _ => {}
            }
        };
        let after = self.snapshot().await?;
        if result != "done" {
            let report = seen
                .iter()
                .rev()
                .chain(std::iter::once(&after.status_text))
                .find(|text| matches!(status::parse(text), ServerStatus::ReloadFailed { .. }));
            return Err(ControlError::ReloadFailed(match report {
                Some(text) => text.clone(),
                None => format!(
                    "the reload job of {} ended with result \"{result}\" (status: {})",
                    self.name, after.status_text
                ),
            }));
        }
        let newer = |text: &str| {
            status::parse(text)
                .generation()
                .filter(|g| old_generation.is_none_or(|old| *g > old))
                .filter(|_| matches!(status::parse(text), ServerStatus::Serving { .. }))
        };
        if let Some(generation) =
            std::iter::once(&after.status_text).chain(seen.iter().rev()).find_map(|text| newer(text))
        {
            return Ok(generation);
        }
        // The job is done, but systemd may still hold the server's READY=1/STATUS= in its
        // queue: give the new generation a moment to show.
        let grace = tokio::time::Instant::now() + GENERATION_GRACE;
        loop {
            tokio::select! {
                event = self.next_event(&mut watch) => {
                    if let Event::Status(text) = event?
                        && let Some(generation) = newer(&text)
                    {
                        return Ok(generation);
                    }
                }
                () = tokio::time::sleep_until(grace) => break,
            }
        }
        let now = self.service.status_text().await.map_err(call_failed(&self.context("reading")))?;
        status::parse(&now).generation().ok_or_else(|| {
            ControlError::Systemd(format!(
                "the reload job of {} succeeded, but its status names no generation: {now:?}",
                self.name
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graced_names() {
        for (requested, name) in [
            ("graced", "graced.service"),
            ("graced.service", "graced.service"),
            ("graced@blog", "graced@blog.service"),
            ("graced@blog.service", "graced@blog.service"),
            ("graced-alt", "graced-alt.service"),
            ("graced-alt.example.service", "graced-alt.example.service"),
            ("graced@x\\x2dy", "graced@x\\x2dy.service"),
        ] {
            assert_eq!(graced_unit_name(requested).unwrap(), name);
        }
    }

    #[test]
    fn other_names_are_refused() {
        for requested in [
            "dbus.service",
            "dbus",
            "graced.socket",
            "graced@.service",
            "graced-.service",
            "graced@a/b",
            "gracedx.service",
            "sshd.service",
            "",
            "graced@a b",
            "graced@a@b",
            &format!("graced-{}", "x".repeat(250)),
        ] {
            let err = graced_unit_name(requested).unwrap_err();
            assert!(matches!(err, ControlError::NotAGracedUnit(_)), "{requested:?}: {err}");
        }
    }

    #[test]
    fn exec_start_must_run_graced() {
        assert!(runs_graced(["/usr/sbin/graced"]));
        assert!(runs_graced(["/usr/local/bin/graced", "/usr/sbin/graced"]));
        assert!(!runs_graced([]));
        assert!(!runs_graced(["/usr/bin/dbus-daemon"]));
        assert!(!runs_graced(["/usr/sbin/graced-dbus"]));
        assert!(!runs_graced(["/usr/sbin/graced", "/bin/sh"]));
        assert!(!runs_graced(["/"]));
    }

    #[test]
    fn down_states() {
        assert!(is_down("inactive", "dead"));
        assert!(is_down("failed", "failed"));
        assert!(is_down("activating", "auto-restart"));
        assert!(!is_down("deactivating", "stop-sigterm"));
        assert!(!is_down("active", "running"));
    }
}
