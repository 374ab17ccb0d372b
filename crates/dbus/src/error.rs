//! The errors of `org.graced.Control1`, as D-Bus error names a caller can match on.
//!
//! Every variant but [`ControlError::ZBus`] travels over the bus as
//! `org.graced.Control1.Error.<Variant>` with its text as the error message; a client
//! proxy turns such a reply back into the same variant. [`ControlError::ZBus`] holds
//! everything else (the bus refused the call, the helper is unreachable, …).

use zbus::DBusError;

/// Why a call on `org.graced.Control1` failed.
#[derive(Debug, DBusError)]
#[zbus(prefix = "org.graced.Control1.Error", impl_display = false)]
pub enum ControlError {
    /// A transport or bus error that is not one of ours (seen by clients only).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The unit is not a graced unit: its name is not `graced.service`, `graced@X.service`
    /// or `graced-X.service`, or its `ExecStart=` does not run a binary named `graced`.
    NotAGracedUnit(String),
    /// systemd knows no such unit (its `LoadState` is not `loaded`).
    NoSuchUnit(String),
    /// The unit is not running, so there is nothing to stop or reload.
    NotRunning(String),
    /// The reload was rejected; the text is the server's StatusText, which names the
    /// configuration error as `FILE:LINE:COL: message`. The old generation keeps serving.
    ReloadFailed(String),
    /// The stop did not end with the unit inactive (its job was cancelled, …).
    StopFailed(String),
    /// The unit did not get where it was going within the time allowed; the operation
    /// goes on in systemd.
    Timeout(String),
    /// systemd refused or failed a call.
    Systemd(String),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::ZBus(err) => err.fmt(f),
            ControlError::NotAGracedUnit(text)
            | ControlError::NoSuchUnit(text)
            | ControlError::NotRunning(text)
            | ControlError::ReloadFailed(text)
            | ControlError::StopFailed(text)
            | ControlError::Timeout(text)
            | ControlError::Systemd(text) => f.write_str(text),
        }
    }
}

impl ControlError {
    /// The D-Bus error name, e.g. `org.graced.Control1.Error.ReloadFailed` or
    /// `org.freedesktop.DBus.Error.AccessDenied`; `None` for transport failures.
    pub fn dbus_name(&self) -> Option<String> {
        match self {
            ControlError::ZBus(err) => zbus_error_name(err),
            other => Some(DBusError::name(other).to_string()),
        }
    }
}

/// The D-Bus error name inside a [`zbus::Error`], if it carries one.
pub fn zbus_error_name(err: &zbus::Error) -> Option<String> {
    match err {
        zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
        zbus::Error::FDO(fdo) => Some(DBusError::name(fdo.as_ref()).to_string()),
        zbus::Error::NameTaken => Some("org.freedesktop.DBus.Error.NameTaken".into()),
        _ => None,
    }
}

/// `context: message (org.error.Name)` for a failed call to systemd.
pub(crate) fn systemd_error(context: &str, err: zbus::Error) -> ControlError {
    let text = match &err {
        zbus::Error::MethodError(name, Some(desc), _) => format!("{context}: {desc} ({name})"),
        zbus::Error::FDO(fdo) => format!(
            "{context}: {} ({})",
            DBusError::description(fdo.as_ref()).unwrap_or("no description"),
            DBusError::name(fdo.as_ref())
        ),
        other => format!("{context}: {other}"),
    };
    ControlError::Systemd(text)
}

/// `map_err` for a call to systemd: the error as [`systemd_error`] words it, under `context`.
pub(crate) fn call_failed(context: &str) -> impl FnOnce(zbus::Error) -> ControlError + '_ {
    move |err| systemd_error(context, err)
}

/// Why the helper itself could not run. Each message names the step; the cause is the
/// error's source, printed once by the binary's error chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HelperError {
    #[error("cannot connect to the bus and serve {} there", graced_unit::dbus::OBJECT_PATH)]
    Connect(#[source] zbus::Error),
    #[error("cannot reach systemd on the bus")]
    Systemd(#[source] ControlError),
    #[error("cannot own the name {name} (the bus policy lets only root own it; is another helper running?)")]
    Name {
        name: &'static str,
        #[source]
        source: zbus::Error,
    },
}
