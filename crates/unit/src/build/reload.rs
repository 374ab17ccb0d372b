//! [`ReloadForm`]: how the service reloads, chosen by the target systemd's version.

use super::exec::Exec;
use crate::model::{Command, ServiceType, Signal};
use crate::versions::NOTIFY_RELOAD_SINCE;

/// The two ways the units reload the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReloadForm {
    /// ≥ 253: `Type=notify-reload` + `ReloadSignal=SIGUSR1`. systemd signals and waits for
    /// READY=1, but no notify field can fail the job; an `ExecReload=` that exits non-zero
    /// can, and it runs after the signal: it asks the server for that reload's outcome
    /// (`--signalled`), so a configuration the server rejects fails the reload even where
    /// `graced -t` would accept the file.
    NotifyReload,
    /// < 253: `Type=notify`; `ExecReload=` itself sends USR1 and waits until the new
    /// configuration serves, or fails. (252 silently reads `notify-reload` as `simple`,
    /// so it is never written there.)
    ExecWait,
}

impl ReloadForm {
    /// The form for systemd `systemd`.
    pub(super) fn for_systemd(systemd: u32) -> ReloadForm {
        if systemd >= NOTIFY_RELOAD_SINCE { ReloadForm::NotifyReload } else { ReloadForm::ExecWait }
    }

    /// `Type=`.
    pub(super) fn service_type(self) -> ServiceType {
        match self {
            ReloadForm::NotifyReload => ServiceType::NotifyReload,
            ReloadForm::ExecWait => ServiceType::Notify,
        }
    }

    /// `ReloadSignal=`, only where systemd sends it.
    pub(super) fn reload_signal(self) -> Option<Signal> {
        match self {
            ReloadForm::NotifyReload => Some(Signal::Usr1),
            ReloadForm::ExecWait => None,
        }
    }

    /// `ExecReload=`.
    pub(super) fn exec_reload(self, exec: &Exec) -> Command {
        match self {
            ReloadForm::NotifyReload => exec.command(&["-k", "graceful", "--wait", "--signalled"]),
            ReloadForm::ExecWait => exec.command(&["-k", "graceful", "--wait"]),
        }
    }
}
