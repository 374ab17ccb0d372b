//! The D-Bus helper: `org.graced.Control1` on the system bus, and its client.
//!
//! `graced-dbus` is a small bus-activated root service. It exposes graceful-stop, reload
//! and status of graced units as methods, carries them out only through systemd's own
//! D-Bus API (`org.freedesktop.systemd1`: unit properties, `PropertiesChanged`,
//! `JobRemoved`) and exits when idle. Who may call it is decided by the bus policy
//! (`graced_unit::dbus::bus_policy`): root and one admin group, so a deploy user can drain the
//! web server without the right to stop every unit on the machine.
//!
//! It depends on `graced-unit` only for the helper's names and constants (bus name, object
//! path, interface, admin group), and must not depend on `graced-http` or
//! `graced-lifecycle`: it talks to the server only through systemd (unit properties and the
//! server's `STATUS=` text), never to the server's process or sockets.
//!
//! * [`control`]: the `#[zbus::interface]` adapter and the helper's run loop (idle exit).
//! * [`systemd`]: the systemd side — unit lookup and the graced-unit rule, stop/kill,
//!   reload jobs, waiting on signals.
//! * [`status`]: reads the server's `STATUS=` text back into values.
//! * [`error`]: the D-Bus errors (`org.graced.Control1.Error.*`).
//! * [`client`]: the `gracectl` command line, its proxy, output and exit codes.

pub mod client;
pub mod control;
pub mod error;
pub mod status;
pub mod systemd;

pub use control::{HelperOptions, run};
pub use error::{ControlError, HelperError};

pub use graced_unit::dbus::{
    BUS_NAME, DEFAULT_ADMIN_GROUP, HELPER_BINARY, HELPER_UNIT, INTERFACE, OBJECT_PATH,
};
