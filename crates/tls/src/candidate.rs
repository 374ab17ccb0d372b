//! A certificate and key not yet installed, checked exactly as a load checks them (chain,
//! key match, valid now, the site's hosts covered): what graced-acme runs before it
//! renames a new pair into place, so a broken or mismatched pair never replaces one.

use std::time::SystemTime;

use graced_config::Site;

use crate::error::TlsError;
use crate::expiry::CertificateInfo;
use crate::policy;
use crate::site;
use crate::source::{Origin, Pem, SitePem};

/// Checks `certificate` (PEM chain, leaf first) and `key` (PEM) for `site` at `now`;
/// `name` is how errors name the pair.
pub fn check_candidate(
    site: &Site,
    name: &str,
    certificate: &[u8],
    key: &[u8],
    now: SystemTime,
) -> Result<CertificateInfo, TlsError> {
    let pem = |what: &str, bytes: &[u8]| Pem {
        name: format!("{name} ({what})"),
        bytes: bytes.to_vec(),
        origin: Origin::Path,
    };
    let pair = SitePem { certificate: pem("certificate", certificate), key: pem("key", key) };
    site::check(site, &pair, &policy::provider(), now).map(|checked| checked.info)
}
