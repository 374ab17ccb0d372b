//! systemd units generated from graced's own configuration: a typed model, its rendering, and a pure builder.
//!
//! This crate turns a validated configuration into the exact text of every file graced
//! installs — `.service`/`.socket` units and the D-Bus helper's policy, activation file and
//! unit — so `graced unit`, `graced-generator` and packaging all write the same bytes. It
//! is pure: no IO (no version detection, no file writes, no path lookups; those live in
//! the `graced` package), and it depends on no graced crate but `graced-config`, and on
//! no systemd, D-Bus or async library (roxmltree reads the policy back, thiserror words
//! the errors).
//!
//! * [`model`]: unit files as typed sections and directives (and, later, the D-Bus files).
//! * [`render`]: `Display` for the model, in systemd's own style and a fixed key order.
//! * [`build()`]: (validated [`Config`](graced_config::Config), systemd version, [`Options`]) →
//!   [`Bundle`]; version-aware reload, socket activation, hardening. No IO.
//! * [`dbus`]: the D-Bus helper's files as pure text: bus policy (and its validator),
//!   activation file, the helper's unit.
//!
//! One listener is one socket unit, because systemd gives every fd of a socket unit the
//! same `FileDescriptorName=`: `NAME.socket` holds the first listener and pulls in
//! `NAME-LISTENER.socket` for each further one.
//!
//! Modules: `versions` and `error` are leaves; `build` reads them and [`model`]; [`render`]
//! reads [`model`]; [`dbus`] stands alone. This file only re-exports.

mod build;
pub mod dbus;
mod error;
pub mod model;
pub mod render;
mod versions;

pub use build::{
    DEFAULT_BINARY, DEFAULT_NAME, Kind, Options, Origin, RESTART_SEC, START_LIMIT_BURST,
    START_LIMIT_INTERVAL, STOP_MARGIN, acme_units, build,
};
pub use error::Error;
pub use model::{Artifact, Bundle, File, WantsLink};
pub use versions::{FALLBACK_SYSTEMD, MIN_SYSTEMD, NOTIFY_RELOAD_SINCE};
