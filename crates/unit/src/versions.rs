//! The systemd versions the generated units depend on: each directive's first release.

/// The oldest systemd the units are written for (Debian 11): `ProtectProc=` and
/// `ProcSubset=` need it.
pub const MIN_SYSTEMD: u32 = 247;
/// `Type=notify-reload` + `ReloadSignal=`; 252 silently reads the type as `simple`.
pub const NOTIFY_RELOAD_SINCE: u32 = 253;
/// `FileDescriptorStorePreserve=` and `$FDSTORE` (how the server learns that it may store
/// fds). `FileDescriptorStoreMax=` itself is older, but without `$FDSTORE` the server does
/// not store, so `[server] fd_store` writes both directives from 254 on and neither before.
pub(crate) const FD_STORE_SINCE: u32 = 254;
/// `PrivateIPC=`.
pub(crate) const PRIVATE_IPC_SINCE: u32 = 248;
/// The version assumed when it cannot be asked: its unit form is correct on every newer one.
pub const FALLBACK_SYSTEMD: u32 = 252;
