//! graced's certificates: each site's chain and key loaded and validated, and the rustls
//! `ServerConfig` every TLS listener hands to its handshakes.
//!
//! What it is for: turning a validated [`graced_config::Config`] into an
//! `Arc<rustls::ServerConfig>` for one generation — or a [`TlsErrors`] that names every
//! file at fault and what to do — *before* anything changes, so a reload with a broken
//! key keeps the running generation serving. It does not depend on HTTP, the lifecycle
//! or systemd: the caller reads `$CREDENTIALS_DIRECTORY` once, at the edge, and hands it
//! over as [`Credentials`]; this crate only reads the files it is pointed at.
//!
//! * Loading ([`Material::read`]) is separate from checking ([`TlsState::prepare`]):
//!   `Material` holds the bytes of each site's PEM files with the name errors use. A file
//!   is read from the descriptor a privileged reload caller handed over ([`Handed`]),
//!   else from its path, else — when graced's user may not read the path — from what the
//!   running generation has ([`Serving`]), else from the copy systemd put in the
//!   credentials directory at start ([`Sources`]; see `source`).
//! * Checks: the chain parses (leaf first), the key parses (PKCS#8, PKCS#1 or SEC1) and
//!   matches the leaf, the leaf is valid now (notBefore ≤ now < notAfter), and it covers
//!   every host of its site (SAN DNS names, wildcards one label deep, IP addresses). A
//!   default site without hosts has no coverage check.
//! * Policy: Mozilla "intermediate" — TLS 1.2 and 1.3, ECDHE with AES-GCM or ChaCha20,
//!   groups X25519MLKEM768, X25519, secp256r1, secp384r1 (aws-lc-rs), ALPN `http/1.1`.
//! * Certificates by SNI: exact host, then `*.parent`; no SNI or an unknown name gets the
//!   default site's certificate if it has one, else the first site with a certificate
//!   (nginx's `default_server`).
//! * Resumption across reloads: a [`TlsState`] lives as long as the process and holds the
//!   ticketer (keys rotate on its own schedule, never on reload) and the session cache;
//!   every generation's `ServerConfig` shares them.
//!
//! * A pair not yet installed ([`check_candidate`]) gets the same checks: graced-acme
//!   runs them before it renames a new certificate into place.
//! * An ACME site whose files do not exist yet is not an error: it is
//!   [`Material::waiting`] and serves plain HTTP until its certificate arrives.
//!
//! Modules, imports running one way: `candidate` → `site`, `source`, `policy`, `expiry`,
//! `error`; `state` (TlsState, prepare) → `site`, `resolver`,
//! `policy`, `expiry`; `site` (one site's chain and key, checked) → `source`, `error`,
//! `expiry`; `source` (Sources, Credentials, Material) → `handed`, `serving`, `error`; `handed` →
//! `error`; `serving` is a leaf; `resolver` (SNI),
//! `policy` (provider, versions, ALPN), `expiry` and `error` are leaves. This file
//! only declares and re-exports.

mod candidate;
mod error;
mod expiry;
mod handed;
mod policy;
mod resolver;
mod serving;
mod site;
mod source;
mod state;

pub use candidate::check_candidate;
pub use error::{TlsError, TlsErrors};
pub use expiry::{CertificateInfo, Expiries};
pub use handed::Handed;
pub use policy::{ALPN_H2, ALPN_HTTP11};
pub use serving::Serving;
pub use source::{Credentials, Material, Origin, Pem, SitePem, Sources};
pub use state::{Prepared, TlsState};

#[cfg(test)]
mod tests;
