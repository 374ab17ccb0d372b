//! The helper's names on the bus and on disk: the constants every other D-Bus file refers to.

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

/// Where the policy file goes (packages; local admins may use `/etc/dbus-1/system.d`).
pub const POLICY_PATH: &str = "/usr/share/dbus-1/system.d/org.graced.Control1.conf";
/// Where the activation file goes.
pub const ACTIVATION_PATH: &str = "/usr/share/dbus-1/system-services/org.graced.Control1.service";
/// Where the helper's unit is installed.
pub const HELPER_UNIT_PATH: &str = "/usr/lib/systemd/system/graced-dbus.service";
