//! The signal streams one operation listens to (`PropertiesChanged`, `JobRemoved`), opened before it acts.

use futures_util::StreamExt;
use zbus::OwnedObjectPath;
use zbus::fdo::PropertiesChangedStream;
use zbus_systemd::systemd1::JobRemovedStream;

use super::unit::GracedUnit;
use crate::error::{ControlError, call_failed};

const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_INTERFACE: &str = "org.freedesktop.systemd1.Service";

/// The signal streams one operation listens to, opened before it acts.
pub(super) struct Watch {
    pub(super) changes: PropertiesChangedStream,
    pub(super) removed: JobRemovedStream,
}

/// A change a [`Watch`] reported.
pub(super) enum Event {
    Status(String),
    State,
    JobRemoved { job: OwnedObjectPath, result: String },
}

impl GracedUnit {
    /// Opens the streams; call it before acting.
    pub(super) async fn watch(&self) -> Result<Watch, ControlError> {
        let context = self.context("watching");
        let changes = self.properties.receive_properties_changed().await.map_err(call_failed(&context))?;
        let removed = self.manager.receive_job_removed().await.map_err(call_failed(&context))?;
        Ok(Watch { changes, removed })
    }

    /// Waits for the next change of this unit that matters: its StatusText, its
    /// ActiveState/SubState, or any job's removal (the caller matches the job).
    pub(super) async fn next_event(&self, watch: &mut Watch) -> Result<Event, ControlError> {
        loop {
            tokio::select! {
                change = watch.changes.next() => {
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
                removed = watch.removed.next() => {
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
}
