//! A toolkit that makes a tokio server systemd-native: sd_notify, socket activation by name, a pid file that cannot go stale, and reloads that tell the truth.
//!
//! * [`signal`]: the one table from signals to [`Command`]s.
//! * [`notify`]: sd_notify datagrams (READY, RELOADING + MONOTONIC_USEC, STOPPING, STATUS, WATCHDOG).
//! * [`listener`]: listening sockets by name, bound or adopted.
//! * [`activation`]: systemd's listening sockets, matched to the wanted listeners by name.
//! * [`pidfile`]: the lock-guarded pid file; `-k` asks the kernel who holds it.
//! * [`control`]: the control socket that makes `-k graceful --wait` synchronous.
//! * [`client`]: the `-k` side.
//!
//! It must not depend on any HTTP code, nor on graced's configuration: a server composes
//! these pieces (graced's own supervisor is one such composition).

pub mod activation;
pub mod client;
pub mod control;
pub mod listener;
pub mod notify;
pub mod pidfile;
pub mod signal;

pub use signal::Command;
