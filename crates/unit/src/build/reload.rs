//! [`ReloadForm`]: how the service reloads, chosen by the target systemd's version.

use super::exec::Exec;
use crate::model::{Command, ServiceType, Signal};
use crate::versions::NOTIFY_RELOAD_SINCE;

/// The three ways the units reload the server.
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
    /// A site's certificate or key is a file (any version): `Type=notify` and
    /// `ExecReload=+graced -k graceful --wait`, run as root, which opens those files and
    /// hands them over with the request — a renewed root-only key reaches the server.
    /// Not `notify-reload`: systemd would send the signal first, and the reload it starts
    /// would read the files before any were handed over.
    HandOver,
}

impl ReloadForm {
    /// The form for systemd `systemd`; `hand_over`: TLS files to pass at reload.
    pub(super) fn choose(systemd: u32, hand_over: bool) -> ReloadForm {
        if hand_over {
            ReloadForm::HandOver
        } else if systemd >= NOTIFY_RELOAD_SINCE {
            ReloadForm::NotifyReload
        } else {
            ReloadForm::ExecWait
        }
    }

    /// `Type=`.
    pub(super) fn service_type(self) -> ServiceType {
        match self {
            ReloadForm::NotifyReload => ServiceType::NotifyReload,
            ReloadForm::ExecWait | ReloadForm::HandOver => ServiceType::Notify,
        }
    }

    /// `ReloadSignal=`, only where systemd sends it.
    pub(super) fn reload_signal(self) -> Option<Signal> {
        match self {
            ReloadForm::NotifyReload => Some(Signal::Usr1),
            ReloadForm::ExecWait | ReloadForm::HandOver => None,
        }
    }

    /// `ExecReload=`.
    pub(super) fn exec_reload(self, exec: &Exec) -> Command {
        match self {
            ReloadForm::NotifyReload => exec.command(&["-k", "graceful", "--wait", "--signalled"]),
            ReloadForm::ExecWait => exec.command(&["-k", "graceful", "--wait"]),
            ReloadForm::HandOver => {
                Command { privileged: true, ..exec.command(&["-k", "graceful", "--wait"]) }
            }
        }
    }
}
