//! graced's supervisor: the one place that sequences start → serve → reload → restart → drain → stop.
//!
//! It composes the lifecycle toolkit (`graced_lifecycle`: signals, sd_notify, socket
//! activation, the pid file, the control socket, generations) with the HTTP server
//! (`graced_http`) and the configuration (`graced_config`); the toolkit and the server
//! never see each other.
//!
//! Files, and the one way their imports run (no file imports one above it, and this
//! one only declares and re-exports):
//!
//! * [`start`] (`serve`: pid file, listeners, runtime) → `run`, `state`, `paths`, `listeners`, `fd_store`,
//!   `certificates`, `error`
//! * `run` (the loop: signals, control requests, watchdog, status; a binary upgrade's
//!   successor taking over) → `state`, `listeners`, `fd_store`, `error`; it calls the
//!   methods `reload`, `reopen`, `upgrade` and `drain` add to the state
//! * `reload` (USR1/HUP, `await-reload`) → `state`, `listeners`, `fd_store`, `certificates`, `error`
//! * `reopen` (`-k reopen-logs [--wait]`) → `state`, `error`
//! * `drain` (TERM, WINCH, and the old process after a binary upgrade) → `state`
//! * `upgrade` (USR2, `-k upgrade`: the old process's side) → `state`, `listeners`
//! * `state` (the `Supervisor` value, its status line) → `listeners`, `certificates`, `error`
//! * `certificates` (the process-long TLS state, each generation's certificates, expiry
//!   warnings) — imports no sibling
//! * [`paths`] (where the pid file is), `listeners` (config → toolkit listeners),
//!   `fd_store` (systemd's fd store in step), [`error`] — import no sibling.

mod certificates;
mod drain;
pub mod error;
mod fd_store;
mod listeners;
pub mod paths;
mod reload;
mod reopen;
mod run;
pub mod start;
mod state;
mod upgrade;

pub use error::{LifecycleError, ReloadError};
pub use paths::{credentials_directory, default_pid_file, pid_file_path, pid_file_path_lenient};
pub use start::serve;
