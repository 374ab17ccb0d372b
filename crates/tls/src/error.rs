//! Why a certificate or key cannot be used: typed, each naming the file and what to do.

use std::fmt;

/// One problem with one site's certificate or key. `name` is how the file is known: its
/// path, or `credential NAME (PATH)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{name}: cannot read it: {source}; check the path and that graced's user may read it")]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{name}: graced's user may not read it; run graced under the units `graced unit` writes (they \
         pass it as credential {credential} at start, and `systemctl reload` hands a renewed file over), \
         or let graced's user read it"
    )]
    PermissionDenied { name: String, credential: String },
    #[error(
        "{name}: graced's user may not read it, and there is no credential {credential} ({}): the unit \
         does not pass it; regenerate the units (`graced unit`, or `systemctl daemon-reload` where the \
         generator is installed), whose LoadCredential={credential}:… does, and restart graced",
        copy.display()
    )]
    NoCredentialCopy { name: String, credential: String, copy: std::path::PathBuf },
    #[error("{label}: a file handed over with a reload must be a regular file named by an absolute path")]
    Handed { label: String },
    #[error(
        "credential {credential:?}: no credentials directory ($CREDENTIALS_DIRECTORY is not set); run \
         graced under systemd with LoadCredential={credential}:/path/to/file, or use a file path"
    )]
    NoCredentialsDirectory { credential: String },
    #[error("{name}: {detail}; the file must hold PEM blocks (-----BEGIN CERTIFICATE-----), the leaf first")]
    CertificatePem { name: String, detail: String },
    #[error("{name}: no certificate in it; put the PEM chain (-----BEGIN CERTIFICATE-----), the leaf first")]
    NoCertificate { name: String },
    #[error(
        "{name}: certificate {index} does not parse: {detail}; the chain must be X.509 certificates, the leaf first"
    )]
    Certificate { name: String, index: usize, detail: String },
    #[error("{name}: no private key in it ({detail}); give a PKCS#8, PKCS#1 (RSA) or SEC1 (EC) PEM key")]
    NoKey { name: String, detail: String },
    #[error("{name}: the private key cannot be used: {detail}; give an RSA, ECDSA or Ed25519 key")]
    Key { name: String, detail: String },
    #[error(
        "{key}: this key does not belong to the certificate {certificate}; give the key the certificate \
         was issued for (a renewal may have changed both files — reload after both are in place)"
    )]
    KeyMismatch { key: String, certificate: String },
    #[error("{name}: the certificate expired at {not_after}; renew it")]
    Expired { name: String, not_after: String },
    #[error(
        "{name}: the certificate is not valid before {not_before}; check the clock, or use the previous certificate until then"
    )]
    NotYetValid { name: String, not_before: String },
    #[error(
        "{name}: the certificate does not cover host {host:?} (it names: {names}); get a certificate that \
         lists it, or remove it from the site's hosts"
    )]
    NotCovering { name: String, host: String, names: String },
    #[error("the TLS policy could not be set up: {0}")]
    Policy(#[source] rustls::Error),
}

/// Every problem found while preparing a generation's certificates (at least one).
#[derive(Debug)]
pub struct TlsErrors(pub Vec<TlsError>);

impl fmt::Display for TlsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsErrors {}

impl From<TlsError> for TlsErrors {
    fn from(error: TlsError) -> Self {
        TlsErrors(vec![error])
    }
}
