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
use graced_unit::dbus::{BUS_NAME, OBJECT_PATH};

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
    /// Set by [`run`] once it owns the name and is subscribed to systemd's signals.
    systemd: Arc<tokio::sync::SetOnce<Systemd>>,
    options: HelperOptions,
    idle: Arc<Idle>,
}

impl Control {
    /// systemd's manager, once [`run`] has subscribed: a call that arrives with the name
    /// (under bus activation, the call that started the helper) waits those few ms, so it
    /// never acts unobserved. If subscribing failed, `run` has already ended the helper;
    /// the bound only keeps a call from waiting forever inside a library user.
    async fn systemd(&self) -> Result<&Systemd, ControlError> {
        tokio::time::timeout(Duration::from_secs(25), self.systemd.wait()).await.map_err(|_| {
            ControlError::Systemd("the helper could not subscribe to systemd's signals; see its log".into())
        })
    }
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
            let target = self.systemd().await?.unit(unit).await?;
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
            let target = self.systemd().await?.unit(unit).await?;
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
        let result =
            async { Ok(status_dict(&self.systemd().await?.unit(unit).await?.snapshot().await?)) }.await;
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

/// Connects with `bus` and runs the helper until it has been idle for
/// `options.idle_timeout` or the bus goes away: serves [`Control`] at [`OBJECT_PATH`], owns
/// [`BUS_NAME`], subscribes to systemd's signals, and on the way out releases the name first
/// (so the bus activates a fresh helper for any new call) and then lets calls in flight
/// finish.
///
/// A call can arrive the moment the name is owned — under bus activation it is already
/// queued: the very call that started the helper — so the object server must be receiving
/// before that. The object is registered with [`zbus::connection::Builder::serve_at`],
/// whose `build` waits until the object server receives. `Connection::object_server().at()`
/// starts that receiver asynchronously without waiting, and a call that comes first is
/// silently dropped, its caller left waiting for its timeout (zbus issue #1109; seen here
/// as a lost `GracefulStop` in about 1 test run in 100 on a loaded machine). Such a call
/// then waits for the subscription (see `Control::systemd`). The name comes before the
/// subscription so that a helper started without the right to own it says exactly that.
pub async fn run(bus: zbus::connection::Builder<'_>, options: HelperOptions) -> Result<(), HelperError> {
    let idle = Idle::new();
    let idle_timeout = options.idle_timeout;
    let systemd = Arc::new(tokio::sync::SetOnce::new());
    let control = Control { systemd: systemd.clone(), options, idle: idle.clone() };
    let conn = bus.serve_at(OBJECT_PATH, control).build().await.map_err(HelperError::Connect)?;
    conn.request_name(BUS_NAME).await.map_err(|source| HelperError::Name { name: BUS_NAME, source })?;
    let manager = Systemd::new(&conn).await.map_err(HelperError::Systemd)?;
    manager.subscribe().await.map_err(HelperError::Systemd)?;
    if systemd.set(manager).is_err() {
        unreachable!("only run sets the manager, once");
    }
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
