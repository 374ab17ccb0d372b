//! [`Systemd`]: the manager proxy, its signal subscription, and the lookup of a graced unit.

use zbus::Connection;
use zbus::fdo::PropertiesProxy;
use zbus::proxy::CacheProperties;
use zbus_systemd::systemd1::{ManagerProxy, ServiceProxy, UnitProxy};

use super::rule::{graced_unit_name, runs_graced};
use super::unit::GracedUnit;
use crate::error::{ControlError, call_failed, systemd_error, zbus_error_name};

const DESTINATION: &str = "org.freedesktop.systemd1";

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
