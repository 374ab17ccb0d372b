//! The files that install the helper, as pure text: bus policy, activation file, unit.
//!
//! * [`bus_policy`] → `/usr/share/dbus-1/system.d/org.graced.Control1.conf`
//! * [`activation_file`] → `/usr/share/dbus-1/system-services/org.graced.Control1.service`
//! * [`helper_service`] → `/usr/lib/systemd/system/graced-dbus.service` (or `/etc/systemd/system`)
//!
//! dbus-daemon skips a malformed policy file *silently* (one journal line, and the rules
//! simply do not apply), so [`validate_policy`] checks a policy before it is written:
//! well-formed XML, then the busconfig schema dbus-daemon enforces for policies.
//!
//! Modules: `names` (the constants) and `error` are leaves; `policy`, `activation` and
//! `helper_unit` write the three texts; `validate` (the schema) reads through `xml`
//! (roxmltree, with line:column errors) and `syntax` (name rules). This file only
//! re-exports them and composes them in [`bundle`]; no child imports from it.

mod activation;
mod error;
mod helper_unit;
mod names;
mod policy;
mod syntax;
mod validate;
mod xml;

use std::path::Path;

pub use activation::activation_file;
pub use error::PolicyError;
pub use helper_unit::helper_service;
pub use names::{
    ACTIVATION_PATH, BUS_NAME, DEFAULT_ADMIN_GROUP, HELPER_BINARY, HELPER_UNIT, HELPER_UNIT_PATH, INTERFACE,
    OBJECT_PATH, POLICY_PATH,
};
pub use policy::bus_policy;
pub use validate::validate_policy;

/// Every file the D-Bus helper needs, as (install path, text): the bus policy for
/// `admin_group` — validated first, since dbus-daemon silently skips a malformed one —
/// the activation file, and the helper's unit with `graced-dbus` in `bin_dir`.
pub fn bundle(admin_group: &str, bin_dir: &Path) -> Result<Vec<(&'static str, String)>, PolicyError> {
    let policy = bus_policy(admin_group);
    validate_policy(&policy)?;
    Ok(vec![
        (POLICY_PATH, policy),
        (ACTIVATION_PATH, activation_file()),
        (HELPER_UNIT_PATH, helper_service(bin_dir)),
    ])
}
