//! Keeps systemd's fd store in step with the listeners (`[server] fd_store`).

use std::os::fd::AsFd;

use graced_lifecycle::listener::Listener;
use graced_lifecycle::notify::Notifier;

/// What `[server] fd_store` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FdStore {
    /// Store every listener under its name.
    Keep,
    /// Store nothing, and take graced's names out of a store the unit has anyway.
    Empty,
}

impl FdStore {
    pub(super) fn from_config(enabled: bool) -> FdStore {
        if enabled { FdStore::Keep } else { FdStore::Empty }
    }
}

/// Names of dropped sockets are removed, and with [`FdStore::Keep`] every listener is
/// stored under its name (`FDSTORE=1`, `FDNAME=`). Needs a unit with
/// `FileDescriptorStoreMax=` under systemd ≥ 254, which announces it in `$FDSTORE`; with
/// the store off in the configuration but present in the unit, graced's names are taken
/// out of it.
pub(super) fn sync(notifier: &Notifier, policy: FdStore, listeners: &[Listener], stale: &[String]) {
    let max = notifier.fd_store_max();
    if max == 0 {
        if policy == FdStore::Keep && notifier.enabled() {
            tracing::warn!(
                "fd_store = true, but systemd offers no fd store ($FDSTORE is unset: FileDescriptorStoreMax=0, or \
                 systemd < 254); the listeners are not stored"
            );
        }
        return;
    }
    for name in stale {
        notifier.remove_stored(name);
    }
    if policy == FdStore::Empty {
        for listener in listeners {
            notifier.remove_stored(&listener.name);
        }
        return;
    }
    if listeners.len() > max {
        tracing::warn!(
            "{} listeners, but FileDescriptorStoreMax={max}: systemd keeps only {max}",
            listeners.len()
        );
    }
    for listener in listeners {
        if let Err(err) = notifier.store_fd(&listener.name, listener.as_fd()) {
            tracing::warn!(listener = %listener.name, error = %err, "cannot hand the listener to systemd's fd store");
        }
    }
    tracing::debug!(listeners = listeners.len(), max, "listeners handed to systemd's fd store");
}
