//! [`GracedUnit`]: a unit that passed every check, and reading its state afresh.

use zbus::OwnedObjectPath;
use zbus::fdo::PropertiesProxy;
use zbus_systemd::systemd1::{ManagerProxy, ServiceProxy, UnitProxy};

use super::state::{Snapshot, UnitState};
use crate::error::{ControlError, call_failed};

/// A unit that passed every check of [`Systemd::unit`](super::Systemd::unit).
pub struct GracedUnit {
    pub(super) name: String,
    pub(super) path: OwnedObjectPath,
    pub(super) manager: ManagerProxy<'static>,
    pub(super) unit: UnitProxy<'static>,
    pub(super) service: ServiceProxy<'static>,
    pub(super) properties: PropertiesProxy<'static>,
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

    pub(super) fn context(&self, what: &str) -> String {
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

    /// Reads `ActiveState` and `SubState` afresh.
    pub(super) async fn states(&self) -> Result<UnitState, ControlError> {
        let context = self.context("reading");
        Ok(UnitState {
            active: self.unit.active_state().await.map_err(call_failed(&context))?,
            sub: self.unit.sub_state().await.map_err(call_failed(&context))?,
        })
    }
}
