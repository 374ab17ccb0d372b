//! A toolkit that makes a tokio server systemd-native: sd_notify, socket activation by name, a pid file that cannot go stale, and reloads that tell the truth.
//!
//! It is for any long-running tokio server that systemd starts, reloads and stops: the
//! server says where it is in its life (READY, RELOADING with MONOTONIC_USEC, STOPPING,
//! STATUS), takes its listeners from systemd by `FileDescriptorName=` (or binds them when
//! run alone), is "running" exactly while it holds its pid file's lock, and answers
//! `-k graceful --wait` with the reload's real outcome over a control socket, so that
//! `systemctl reload` fails when the reload did. It must not depend on any HTTP code nor
//! on a particular server's configuration (graced's own supervisor is one composition of
//! it; its HTTP crate and configuration are not dependencies here), and it reads the
//! environment only in the functions that say so (`from_env`, `take_from_env`,
//! [`pidfile::default_path`]).
//!
//! # Modules, and which may import which
//!
//! * Bottom — import no other module, may be imported by all:
//!   * [`command`]: what a server can be asked ([`Command`], [`Request`], [`ReloadKind`]).
//!   * [`listener`]: listening sockets by name, bound or adopted.
//!   * [`handover`]: open files passed with a control request (SCM_RIGHTS).
//! * Leaves — import only bottom modules, never each other:
//!   * [`signal`]: the one table from signals to commands.
//!   * [`notify`]: sd_notify datagrams and fds for systemd's fd store.
//!   * [`activation`]: systemd's sockets (`LISTEN_FDS`), matched to listeners by name.
//!   * [`pidfile`]: the lock-guarded pid file; the kernel names its holder.
//!   * [`control`]: the control socket that makes `-k graceful --wait` synchronous.
//! * Compositions — import bottom modules and leaves, never each other:
//!   * [`inbox`]: signals and control requests as one stream (`signal` + `control`).
//!   * [`reload`]: generations and reload outcomes (`notify`).
//!   * [`client`]: the `-k` side (`pidfile` + `signal` + `control`).
//!   * [`upgrade`]: a binary upgrade's hand-shake between the old and the new process
//!     (`activation`).
//!
//! # Example: a systemd-native TCP server
//!
//! `examples/tcp_server.rs` (`cargo run -p graced-lifecycle --example tcp_server`): READY=1,
//! RELOADING=1 + MONOTONIC_USEC then READY=1 on USR1/HUP or `-k graceful`, STOPPING=1 on
//! TERM/WINCH, its listener by name, a pid file that cannot go stale, and
//! `tcp_server -k graceful --wait` exiting with the reload's outcome.
//!
//! ```no_run
#![doc = include_str!("../examples/tcp_server.rs")]
//! ```

pub mod activation;
pub mod client;
pub mod command;
pub mod control;
pub mod handover;
pub mod inbox;
pub mod listener;
pub mod notify;
pub mod pidfile;
pub mod reload;
pub mod signal;
pub mod upgrade;

pub use command::{Command, ReloadKind, Request};
