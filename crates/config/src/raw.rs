//! The configuration file exactly as written: serde structs whose values keep their spans.
//!
//! Nothing here is validated beyond TOML types and known keys; `validate` turns a
//! [`RawConfig`] into the typed [`Config`](super::Config) and reports every problem
//! at the value's own line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::raw_rules::{RawAccess, RawCacheControl, RawHeaderRule, RawListing, RawRedirect};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub listen: Vec<RawListen>,
    #[serde(default)]
    pub site: Vec<RawSite>,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub http2: RawHttp2,
    #[serde(default)]
    pub acme: RawAcme,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub graceful_shutdown_timeout: Option<Spanned<String>>,
    pub upgrade_timeout: Option<Spanned<String>>,
    pub pid_file: Option<Spanned<String>>,
    pub access_log: Option<Spanned<String>>,
    pub access_log_format: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub watchdog: Option<Spanned<String>>,
    pub fd_store: Option<bool>,
    pub workers: Option<Spanned<RawWorkers>>,
}

/// `workers = "auto"` or a number.
#[derive(Debug)]
pub(super) enum RawWorkers {
    Count(i64),
    Word(String),
}

// By hand rather than `#[serde(untagged)]`, whose error ("data did not match any
// variant") would not say what the key takes.
impl<'de> Deserialize<'de> for RawWorkers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawWorkers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"auto\" or a number of worker threads")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<RawWorkers, E> {
                Ok(RawWorkers::Count(n))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<RawWorkers, E> {
                Ok(RawWorkers::Count(i64::try_from(n).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, word: &str) -> Result<RawWorkers, E> {
                Ok(RawWorkers::Word(word.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_connections: Option<Spanned<i64>>,
    pub header_timeout: Option<Spanned<String>>,
    pub keepalive_timeout: Option<Spanned<String>>,
    pub send_timeout: Option<Spanned<String>>,
    pub max_request_line: Option<Spanned<i64>>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub max_headers: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    pub backlog: Option<Spanned<i64>>,
    pub ipv6_only: Option<bool>,
    pub no_delay: Option<bool>,
    pub socket_mode: Option<Spanned<String>>,
    pub tls: Option<Spanned<bool>>,
    pub h2c: Option<Spanned<bool>>,
    pub status: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    pub hosts: Option<Spanned<Vec<Spanned<String>>>>,
    pub root: Spanned<String>,
    pub index: Option<Vec<Spanned<String>>>,
    pub hidden_files: Option<bool>,
    pub certificate: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub acme: Option<Spanned<RawSiteAcme>>,
    pub https_redirect: Option<Spanned<bool>>,
    pub hsts: Option<Spanned<RawHsts>>,
    pub compression: Option<crate::compression::RawCompression>,
    pub headers: Option<Vec<RawHeaderRule>>,
    pub cache_control: Option<Spanned<RawCacheControl>>,
    pub redirect: Option<Vec<RawRedirect>>,
    pub canonical_host: Option<Spanned<String>>,
    pub error_pages: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub clean_urls: Option<bool>,
    pub spa_fallback: Option<Spanned<String>>,
    pub directory_listing: Option<Spanned<RawListing>>,
    pub access: Option<Vec<RawAccess>>,
}

/// `hsts = true` (the Mozilla default max-age) or the header value itself.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawHsts {
    On(bool),
    Value(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub handshake_timeout: Option<Spanned<String>>,
    pub expiry_warning: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp2 {
    pub enabled: Option<bool>,
    pub max_concurrent_streams: Option<Spanned<i64>>,
    pub max_pending_resets: Option<Spanned<i64>>,
    pub max_error_resets: Option<Spanned<i64>>,
}

/// The `[acme]` table: where graced-acme keeps its state and its HTTP-01 answers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcme {
    pub state_directory: Option<Spanned<String>>,
    pub challenge_directory: Option<Spanned<String>>,
}

/// A site's `acme = { directory = "...", contact = "mailto:...", profile = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSiteAcme {
    pub directory: Spanned<String>,
    pub contact: Option<Spanned<String>>,
    pub profile: Option<Spanned<String>>,
    pub directory_ca: Option<Spanned<String>>,
}
