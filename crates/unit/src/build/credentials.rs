//! `LoadCredential=` lines: every certificate and key a site names by path, so the service's user need not be able to read it.
//!
//! systemd reads the file as root when the service starts and puts a copy in
//! `$CREDENTIALS_DIRECTORY` under [`Secret::file_credential_name`]; graced reads that copy
//! when it may not read the path (and the path itself when it may). Certificates are
//! passed too: certbot keeps `live/` and `archive/` root-only. `credential:NAME` secrets
//! are the operator's own (`LoadCredential=` or `LoadCredentialEncrypted=` in a drop-in)
//! and get no line here. The files of an ACME site get a `SetCredential=` fallback: before
//! graced-acme's first certificate they do not exist, and graced starts serving plain HTTP
//! (graced-tls takes a copy holding `ACME_NOT_ISSUED` for "not issued yet").

use std::path::Path;

use graced_config::{Config, Secret};

use super::text::unit_path;
use crate::error::Error;
use crate::model::Credential;

/// One `LoadCredential=` per distinct file path, in the order the sites name them.
pub(super) fn load_credentials(config: &Config) -> Result<Vec<Credential>, Error> {
    let mut seen: Vec<(&Path, String, bool)> = Vec::new();
    for site in &config.sites {
        let Some(tls) = &site.tls else { continue };
        for secret in [&tls.certificate, &tls.key] {
            let Secret::File(path) = secret else { continue };
            if seen.iter().any(|(p, _, _)| p == path) {
                continue;
            }
            let name = Secret::file_credential_name(path).ok_or_else(|| Error::CredentialPath {
                path: path.clone(),
                reason: "the name would be too long",
            })?;
            if let Some((first, _, _)) = seen.iter().find(|(_, n, _)| *n == name) {
                return Err(Error::CredentialClash {
                    first: first.to_path_buf(),
                    second: path.clone(),
                    name,
                });
            }
            seen.push((path, name, site.acme.is_some()));
        }
    }
    seen.into_iter()
        .map(|(path, id, empty_fallback)| {
            Ok(Credential { id, path: unit_path(path, "certificate or key")?, empty_fallback })
        })
        .collect()
}
