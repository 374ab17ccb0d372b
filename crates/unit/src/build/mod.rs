//! The pure builder: a validated configuration + a target systemd version → unit files.
//!
//! Every decision the generated units encode is made here, with its reason next to it.
//! No IO: paths are checked as text, never looked up.
//!
//! [`Plan`](plan::Plan) gathers what is decided before assembling (`names`, `exec`,
//! `paths`, `credentials`, refusals); `service` and `socket` assemble the units from it, with
//! `reload` (the reload form by systemd version) and `hardening` (the sandbox); `acme`
//! assembles graced-acme's service and timer (with `hardening`).
//! `options` and `text` are leaves. No module imports from this one.

mod acme;
mod credentials;
mod exec;
mod hardening;
mod names;
mod options;
mod paths;
mod plan;
mod reload;
mod service;
mod socket;
mod text;

use graced_config::Config;

use crate::error::Error;
use crate::model::{Artifact, Bundle, File};
use plan::Plan;

pub use options::{DEFAULT_BINARY, DEFAULT_NAME, Kind, Options, Origin};
pub use service::{RESTART_SEC, START_LIMIT_BURST, START_LIMIT_INTERVAL, STOP_MARGIN};

/// The units for `config` under systemd `systemd`: the service, then one socket per
/// listener, then graced-acme's service and timer when a site asks for ACME.
pub fn build(config: &Config, systemd: u32, options: &Options) -> Result<Bundle, Error> {
    let plan = Plan::new(config, systemd, options)?;
    let mut files = vec![File {
        name: plan.names.file(&options.name, "service"),
        artifact: Artifact::Unit(plan.service()),
    }];
    for (index, listener) in config.listeners.iter().enumerate() {
        files.push(File {
            name: plan.names.file(&plan.names.socket_stems[index], "socket"),
            artifact: Artifact::Unit(plan.socket(listener, index)?),
        });
    }
    files.extend(plan.acme(false)?.into_iter().flatten());
    Ok(Bundle { files })
}

/// graced-acme.service and graced-acme.timer for `config` whether or not a site asks for
/// ACME: what the packages ship, disabled (with no ACME site a run does nothing). Empty for
/// templates and instances.
pub fn acme_units(config: &Config, systemd: u32, options: &Options) -> Result<Vec<File>, Error> {
    let plan = Plan::new(config, systemd, options)?;
    Ok(plan.acme(true)?.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests;
