//! The D-Bus helper: `org.graced.Control1` on the system bus, and its client.
//!
//! `graced-dbus` is a small bus-activated root service. It exposes graceful-stop, reload
//! and status of graced units as methods, carries them out only through systemd's own
//! D-Bus API (`org.freedesktop.systemd1`: unit properties, `PropertiesChanged`,
//! `JobRemoved`) and exits when idle. Who may call it is decided by the bus policy
//! ([`files::bus_policy`]): root and one admin group, so a deploy user can drain the
//! web server without the right to stop every unit on the machine.
//!
//! * [`control`]: the `#[zbus::interface]` adapter and the helper's run loop (idle exit).
//! * [`systemd`]: the systemd side — unit lookup and the graced-unit rule, stop/kill,
//!   reload jobs, waiting on signals.
//! * [`status`]: reads the server's `STATUS=` text back into values.
//! * [`error`]: the D-Bus errors (`org.graced.Control1.Error.*`).
//! * [`files`]: pure text of the bus policy (with its validator), the activation file and
//!   the helper's unit.
//! * [`client`]: the `gracectl` command line, its proxy, output and exit codes.

pub mod client;
pub mod control;
pub mod error;
pub mod files;
pub mod status;
pub mod systemd;

pub use control::{HelperOptions, run};
pub use error::{ControlError, HelperError};

/// The helper's well-known name on the system bus.
pub const BUS_NAME: &str = "org.graced.Control1";
/// The one object the helper serves.
pub const OBJECT_PATH: &str = "/org/graced/Control1";
/// The interface of that object.
pub const INTERFACE: &str = "org.graced.Control1";
/// The group whose members may call the helper, besides root.
pub const DEFAULT_ADMIN_GROUP: &str = "graced-admin";
/// The helper's own unit, started by D-Bus activation.
pub const HELPER_UNIT: &str = "graced-dbus.service";
/// The helper's binary.
pub const HELPER_BINARY: &str = "graced-dbus";
