//! `org.graced.Control1`: the `#[zbus::interface]` adapter and the helper's run loop.
//!
//! The adapter only checks arguments, logs who asked, and maps results to D-Bus; the work
//! is in [`super::systemd`]. The helper owns its name while it has something to do and
//! exits after a period without calls: bus activation starts it again on the next call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, OwnedVariant, Str};

use super::error::{ControlError, HelperError};
use super::status::{self, ServerStatus};
use super::systemd::{Snapshot, Systemd};
use super::{BUS_NAME, OBJECT_PATH};

/// How the helper behaves; the defaults are the ones `graced-dbus` runs with.
#[derive(Debug, Clone)]
pub struct HelperOptions {
    /// Exit after this long without a call (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// How long `GracefulStop(unit, 0)` waits.
    pub default_stop_timeout: Duration,
    /// How long `Reload` waits for the reload job (systemd bounds `ExecReload=` itself
    /// with `TimeoutStartSec=`; this is only a safety net).
    pub reload_timeout: Duration,
}

impl Default for HelperOptions {
    fn default() -> Self {
        HelperOptions {
            idle_timeout: Some(Duration::from_secs(60)),
            default_stop_timeout: Duration::from_secs(600),
            reload_timeout: Duration::from_secs(300),
        }
    }
}

/// Counts calls in flight and remembers when the last one ended.
#[derive(Debug)]
struct Idle {
    state: Mutex<(usize, Instant)>,
    changed: tokio::sync::Notify,
}

/// Marks a call in flight until dropped.
struct Busy(Arc<Idle>);

impl Idle {
    fn new() -> Arc<Idle> {
        Arc::new(Idle { state: Mutex::new((0, Instant::now())), changed: tokio::sync::Notify::new() })
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        self.changed.notify_waiters();
        Busy(self.clone())
    }

    /// Returns once no call is in flight and none has ended for `period`.
    async fn wait(&self, period: Duration) {
        loop {
            let changed = self.changed.notified();
            let (busy, last) = *self.state.lock().unwrap_or_else(|e| e.into_inner());
            if busy > 0 {
                changed.await;
                continue;
            }
            let deadline = last + period;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        state.1 = Instant::now();
        drop(state);
        self.0.changed.notify_waiters();
    }
}

/// The object at `/org/graced/Control1`.
pub struct Control {
    systemd: Systemd,
    options: HelperOptions,
    idle: Arc<Idle>,
}

/// `uid N (:1.42)` for the log: who asked.
async fn caller(conn: &Connection, header: &Header<'_>) -> String {
    let Some(sender) = header.sender() else { return "an unknown caller".into() };
    let uid = match zbus::fdo::DBusProxy::new(conn).await {
        Ok(bus) => bus.get_connection_unix_user(sender.clone().into()).await.ok(),
        Err(_) => None,
    };
    match uid {
        Some(uid) => format!("uid {uid} ({sender})"),
        None => format!("{sender}"),
    }
}

/// Logs a refused or failed call.
fn logged<T>(what: &str, unit: &str, result: Result<T, ControlError>) -> Result<T, ControlError> {
    if let Err(err) = &result {
        tracing::warn!(unit, error = %err, "{what} of {unit:?} failed: {err}");
    }
    result
}

#[zbus::interface(name = "org.graced.Control1")]
impl Control {
    /// Stops a graced unit gracefully: in-flight requests finish, then the server exits.
    /// Waits until the unit is inactive, at most `timeout_sec` seconds (0: the helper's
    /// default, 10 minutes). Returns how long the drain took (µs) and whether requests
    /// had to be aborted. Emits DrainProgress with each StatusText while draining.
    #[zbus(out_args("drain_usec", "aborted"))]
    async fn graceful_stop(
        &self,
        unit: &str,
        timeout_sec: u32,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(u64, bool), ControlError> {
        let _busy = self.idle.busy();
        let who = caller(conn, &header).await;
        let result = async {
            let target = self.systemd.unit(unit).await?;
            let name = target.name().to_owned();
            tracing::info!(unit = %name, "graceful stop of {name} requested by {who}");
            let timeout = match timeout_sec {
                0 => self.options.default_stop_timeout,
                n => Duration::from_secs(n.into()),
            };
            let (progress, mut statuses) = tokio::sync::mpsc::unbounded_channel::<String>();
            let forward = async {
                while let Some(text) = statuses.recv().await {
                    if let Err(err) = Self::drain_progress(&emitter, &name, &text).await {
                        tracing::warn!("cannot emit DrainProgress: {err}");
                    }
                }
            };
            // The stop drops `progress` when it returns, which ends `forward` once every
            // status is out: all signals precede the reply.
            let (outcome, ()) = tokio::join!(target.graceful_stop(timeout, progress), forward);
            let outcome = outcome?;
            tracing::info!(
                unit = %name,
                method = ?outcome.method,
                aborted = outcome.aborted,
                "{name} stopped after draining for {:.3}s ({})",
                outcome.drain.as_secs_f64(),
                outcome.status_text
            );
            Ok((u64::try_from(outcome.drain.as_micros()).unwrap_or(u64::MAX), outcome.aborted))
        }
        .await;
        logged("graceful stop", unit, result)
    }

    /// Reloads a graced unit's configuration; returns the generation now serving. A
    /// rejected configuration fails with org.graced.Control1.Error.ReloadFailed carrying
    /// the server's status (`… FILE:LINE:COL: message`); the old generation keeps serving.
    async fn reload(
        &self,
        unit: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u64, ControlError> {
        let _busy = self.idle.busy();
        let who = caller(conn, &header).await;
        let result = async {
            let target = self.systemd.unit(unit).await?;
            tracing::info!(unit = %target.name(), "reload of {} requested by {who}", target.name());
            let generation = target.reload(self.options.reload_timeout).await?;
            tracing::info!(unit = %target.name(), generation, "{} serves generation {generation}", target.name());
            Ok(generation)
        }
        .await;
        logged("reload", unit, result)
    }

    /// The state of a graced unit: `unit`, `state` (ActiveState/SubState), `active_state`,
    /// `sub_state`, `main_pid`, `since` (ActiveEnterTimestamp, µs), `status_text`,
    /// `status_errno`, `result`, and when the status names them `generation`,
    /// `connections`, `requests`, `reload_error`.
    async fn status(&self, unit: &str) -> Result<HashMap<String, OwnedVariant>, ControlError> {
        let _busy = self.idle.busy();
        let result = async { Ok(status_dict(&self.systemd.unit(unit).await?.snapshot().await?)) }.await;
        logged("status", unit, result)
    }

    /// A graceful stop's progress: the unit's StatusText, as the server reports it.
    #[zbus(signal)]
    async fn drain_progress(emitter: &SignalEmitter<'_>, unit: &str, status: &str) -> zbus::Result<()>;
}

/// The `a{sv}` that `Status` returns.
pub fn status_dict(snapshot: &Snapshot) -> HashMap<String, OwnedVariant> {
    let text = |s: &str| OwnedVariant::from(Str::from(s.to_owned()));
    let mut dict = HashMap::from([
        ("unit".to_owned(), text(&snapshot.unit)),
        ("state".to_owned(), text(&snapshot.state())),
        ("active_state".to_owned(), text(&snapshot.active_state)),
        ("sub_state".to_owned(), text(&snapshot.sub_state)),
        ("main_pid".to_owned(), OwnedVariant::from(snapshot.main_pid)),
        ("since".to_owned(), OwnedVariant::from(snapshot.active_enter_usec)),
        ("status_text".to_owned(), text(&snapshot.status_text)),
        ("status_errno".to_owned(), OwnedVariant::from(snapshot.status_errno)),
        ("result".to_owned(), text(&snapshot.result)),
    ]);
    match status::parse(&snapshot.status_text) {
        ServerStatus::Serving { generation, connections, requests } => {
            dict.insert("generation".into(), OwnedVariant::from(generation));
            dict.insert("connections".into(), OwnedVariant::from(connections));
            dict.insert("requests".into(), OwnedVariant::from(requests));
        }
        ServerStatus::ReloadFailed { generation, error } => {
            dict.insert("generation".into(), OwnedVariant::from(generation));
            dict.insert("reload_error".into(), text(&error));
        }
        ServerStatus::Draining { connections, .. } => {
            dict.insert("connections".into(), OwnedVariant::from(connections));
        }
        _ => {}
    }
    dict
}

/// Runs the helper on `conn` until it has been idle for `options.idle_timeout` or the bus
/// goes away: serves [`Control`] at [`OBJECT_PATH`], owns [`BUS_NAME`], subscribes to
/// systemd's signals, and on the way out releases the name first (so the bus activates a
/// fresh helper for any new call) and then lets calls in flight finish.
pub async fn run(conn: &Connection, options: HelperOptions) -> Result<(), HelperError> {
    let systemd = Systemd::new(conn).await.map_err(HelperError::Systemd)?;
    let idle = Idle::new();
    let idle_timeout = options.idle_timeout;
    let control = Control { systemd, options, idle: idle.clone() };
    conn.object_server()
        .at(OBJECT_PATH, control)
        .await
        .map_err(|source| HelperError::Serve { path: OBJECT_PATH, source })?;
    conn.request_name(BUS_NAME).await.map_err(|source| HelperError::Name { name: BUS_NAME, source })?;
    let control = conn
        .object_server()
        .interface::<_, Control>(OBJECT_PATH)
        .await
        .map_err(|source| HelperError::Serve { path: OBJECT_PATH, source })?;
    control.get().await.systemd.subscribe().await.map_err(HelperError::Systemd)?;
    match idle_timeout {
        Some(idle_timeout) => tracing::info!(
            "serving {BUS_NAME} at {OBJECT_PATH}; exiting after {}s without calls",
            idle_timeout.as_secs_f64()
        ),
        None => tracing::info!("serving {BUS_NAME} at {OBJECT_PATH}"),
    }
    let idle_wait = async {
        match idle_timeout {
            Some(period) => idle.wait(period).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = idle_wait => tracing::info!("idle; exiting (the bus starts the helper again on demand)"),
        () = conn.closed() => {
            tracing::warn!("the bus closed the connection; exiting");
            return Ok(());
        }
    }
    if let Err(err) = conn.release_name(BUS_NAME).await {
        tracing::warn!("cannot release {BUS_NAME}: {err}");
    }
    idle.wait(Duration::ZERO).await;
    Ok(())
}
