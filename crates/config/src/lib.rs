//! graced's configuration: one TOML file becomes a validated [`Config`], once, with every
//! problem reported as `FILE:LINE:COL: message` and a hint.
//!
//! The server and the unit generator both read the same [`Config`], so the units and the
//! server never disagree. Loading is two steps (ripgrep's low → high args): `raw`
//! deserialises the file keeping every value's span, then [`Config::from_toml`] checks
//! everything that can be checked before serving — addresses, duplicate names and
//! addresses, document roots, durations — and reports *every* problem.
//!
//! This crate depends on no other graced crate (it is the root of the graph) and knows
//! nothing of systemd, HTTP or the lifecycle; it reads the filesystem only to load the
//! file and, unless [`Checks::WithoutFilesystem`], to see that document roots exist.
//!
//! Modules: `model` (the types; names `rules`), `raw` (serde structs with spans; a leaf),
//! `diagnostic` (errors with positions; a leaf), `address` (listen addresses), `check`
//! (raw → model, collecting problems), `tls_rules` (listeners against sites for TLS,
//! credential names; a leaf), `compression` (the `[site.compression]` table, raw and
//! checked; a leaf), `glob` (path globs; a leaf), `rules` (the site rules' types; a
//! leaf), `raw_rules` (their raw form; a leaf), `htpasswd` (user:hash files; a leaf),
//! `credentials` (htpasswd credentials read after loading), `log_format` (`[server]
//! access_log_format`; a leaf), `status_rules` (a `[[listen]] status = true`: the status
//! endpoint's listener; a leaf but for `model` and `raw`). This file loads and
//! re-exports; no module imports
//! from it.

mod address;
mod check;
mod compression;
mod credentials;
mod diagnostic;
mod glob;
mod htpasswd;
mod log_format;
mod model;
mod raw;
mod raw_rules;
mod rules;
mod status_rules;
mod tls_rules;

use std::path::Path;

pub use address::{AddressError, parse_address};
pub use compression::Compression;
pub use diagnostic::{ConfigError, Diagnostic};
pub use glob::Glob;
pub use log_format::AccessLogFormat;
pub use model::{
    ACME_CHALLENGE_DIRECTORY, ACME_NOT_ISSUED, ACME_STATE_DIRECTORY, AccessLog, Acme, BUILTIN_DEMO_ROOT,
    CREDENTIAL_PREFIX, Checks, Config, EMBEDDED_NAME, HSTS_DEFAULT, Http2, Limits, ListenAddress, Listener,
    LogLevel, MAX_WORKERS, Root, Secret, Server, Site, SiteAcme, SiteTls, Source, Tls,
};
pub use rules::{
    AccessRule, BasicAuth, CACHE_CONTROL_DEFAULT, ErrorPages, HeaderRule, Htpasswd, LISTING_MAX_ENTRIES,
    Listing, Place, Redirect, SiteRules,
};

/// Where the server looks for its configuration when no `-f` is given.
pub const DEFAULT_PATH: &str = "/etc/graced/graced.toml";

/// The configuration built into the binary: the demo site on 127.0.0.1:8080.
pub const EMBEDDED_DEFAULT: &str = include_str!("embedded-default.toml");

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, Checks::All)
    }

    /// Reads and validates `path`, with or without the checks that look at the filesystem.
    pub fn load_with(path: &Path, checks: Checks) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml_with(Source::File(path.to_owned()), &text, checks)
    }

    /// The configuration compiled into the binary.
    pub fn embedded_default() -> Config {
        Config::from_toml(Source::Embedded, EMBEDDED_DEFAULT)
            .expect("the embedded default configuration is valid")
    }

    /// Reads `path` if given; otherwise [`DEFAULT_PATH`] if it exists, else the embedded default.
    pub fn locate(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => Config::load(path),
            None if Path::new(DEFAULT_PATH).exists() => Config::load(Path::new(DEFAULT_PATH)),
            None => Ok(Config::embedded_default()),
        }
    }

    /// Reads the configuration again from where this one came from.
    pub fn reload(&self) -> Result<Config, ConfigError> {
        match &self.source {
            Source::File(path) => Config::load(path),
            Source::Embedded => Ok(Config::embedded_default()),
        }
    }

    /// Parses and validates TOML `text`; relative paths are resolved against the
    /// directory of `source`.
    pub fn from_toml(source: Source, text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with(source, text, Checks::All)
    }

    /// [`from_toml`](Config::from_toml), choosing which checks run.
    pub fn from_toml_with(source: Source, text: &str, checks: Checks) -> Result<Config, ConfigError> {
        check::config(source, text, checks)
    }
}

#[cfg(test)]
mod tests;
