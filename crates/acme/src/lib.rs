//! graced-acme's logic: certificates for the sites that say `acme = {…}`, issued and
//! renewed with instant-acme (never the protocol by hand), checked by graced-tls before
//! they are installed, written atomically into the state directory.
//!
//! What it is for: the `graced-acme` binary (a oneshot unit with network, run by a timer)
//! calls [`run`]; graced itself never talks to a CA — it serves the HTTP-01 answers this
//! crate writes and picks up the files at its next reload. This crate knows nothing of
//! HTTP serving, the lifecycle or systemd: the binary logs and reloads.
//!
//! * Due: the CA's renewal window (ARI, RFC 9773) when it offers one, else two thirds into
//!   the lifetime; at once when there is no certificate, or the serving one no longer passes
//!   graced's checks (hosts changed, expired).
//! * Failure (CA unreachable, refusal, rate limit, a result that fails the checks) changes
//!   no served file, and backs off: 10 min doubling to a day, never past a quarter of the
//!   serving certificate's remaining life (`schedule`).
//!
//! Modules, imports running one way: `run` → `issue`, `schedule`, `store`, `error`; `issue`
//! → `store`, `error`; `schedule` → `store`, `error`; `store` → `error`; `error` is a leaf.
//! This file only declares and re-exports.

mod error;
mod issue;
mod run;
mod schedule;
mod store;

pub use error::AcmeError;
pub use run::{Options, Outcome, install, reload_marker, reload_pending, run};
pub use schedule::{FIRST_BACKOFF, Lifetime, MAX_BACKOFF, Retry};

#[cfg(test)]
mod tests;
