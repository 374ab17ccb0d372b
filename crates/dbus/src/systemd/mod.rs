//! The systemd side of the helper: finds graced units, stops, reloads and reads them.
//!
//! Everything goes through `org.freedesktop.systemd1` on the bus: `LoadUnit` and unit
//! properties to look, `StopUnit`/`KillUnit`/`ReloadUnit` to act, and the signals
//! `PropertiesChanged` (StatusText, ActiveState) and `JobRemoved` to learn how it went —
//! never command output, never polling. Proxies are built with
//! [`CacheProperties::No`](zbus::proxy::CacheProperties::No): every property read is a fresh `Get`, so a value can never be
//! older than a signal already seen. Signal streams are opened *before* the action, so
//! no change can slip between acting and listening.
//!
//! Modules, imports running one way: `rule` (names and `ExecStart=`) and `state` (values)
//! are leaves; `unit` holds a checked [`GracedUnit`]; `manager` finds one; `watch` opens its
//! signal streams; `stop` and `reload` act through them. This file only re-exports.

mod manager;
mod reload;
mod rule;
mod state;
mod stop;
mod unit;
mod watch;

pub use manager::Systemd;
pub use rule::{graced_unit_name, runs_graced};
pub use state::{Snapshot, StopMethod, StopOutcome, UnitState};
pub use stop::SIGWINCH;
pub use unit::GracedUnit;
