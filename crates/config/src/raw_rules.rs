//! The site rules exactly as written (`[[site.headers]]`, `[[site.redirect]]`,
//! `[[site.access]]`, `error_pages`, `directory_listing`, …): serde structs keeping spans.
//! A leaf; `check::rules` validates them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Header name → value.
pub(crate) type RawHeaderMap = BTreeMap<String, Spanned<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderRule {
    pub(crate) path: Spanned<String>,
    pub(crate) set: Option<Spanned<RawHeaderMap>>,
    pub(crate) add: Option<Spanned<RawHeaderMap>>,
    pub(crate) remove: Option<Vec<Spanned<String>>>,
    pub(crate) default: Option<Spanned<RawHeaderMap>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedirect {
    pub(crate) from: Spanned<String>,
    pub(crate) to: Spanned<String>,
    pub(crate) status: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccess {
    pub(crate) path: Spanned<String>,
    pub(crate) allow: Option<Vec<Spanned<String>>>,
    pub(crate) deny: Option<Vec<Spanned<String>>>,
    pub(crate) htpasswd: Option<Spanned<String>>,
    pub(crate) realm: Option<Spanned<String>>,
}

/// `directory_listing = true` or `{ max_entries = N }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawListing {
    On(bool),
    Table {
        #[serde(default)]
        max_entries: Option<i64>,
    },
}

/// `cache_control = "…"` or `false` (none).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawCacheControl {
    Off(bool),
    Value(String),
}
