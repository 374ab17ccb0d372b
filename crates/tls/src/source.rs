//! Where each site's PEM files come from, and reading them: the only IO of this crate.
//!
//! Reading is kept apart from checking so that the bytes can come from elsewhere: today
//! a path (a configured file, or a credential in the credentials directory); later a
//! descriptor a privileged `ExecReload=+graced -k graceful --wait` opened as root and
//! passed over the control socket ([`PemSource::Open`]).

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use graced_config::{Config, Secret};

use crate::error::{TlsError, TlsErrors};

/// The credentials directory (`$CREDENTIALS_DIRECTORY`), read once by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    dir: Option<PathBuf>,
}

impl Credentials {
    /// `dir` is the value of `$CREDENTIALS_DIRECTORY`, if set.
    pub fn new(dir: Option<PathBuf>) -> Credentials {
        Credentials { dir: dir.filter(|d| !d.as_os_str().is_empty()) }
    }

    /// Where `secret` is read from.
    pub fn source(&self, secret: &Secret) -> Result<PemSource, TlsError> {
        match secret {
            Secret::File(path) => {
                Ok(PemSource::Path { name: path.display().to_string(), path: path.clone() })
            }
            Secret::Credential(credential) => {
                let dir = self
                    .dir
                    .as_ref()
                    .ok_or_else(|| TlsError::NoCredentialsDirectory { credential: credential.clone() })?;
                let path = dir.join(credential);
                Ok(PemSource::Path { name: format!("credential {credential} ({})", path.display()), path })
            }
        }
    }
}

/// One PEM file to read.
#[derive(Debug)]
pub enum PemSource {
    /// Opened and read by this process.
    Path { name: String, path: PathBuf },
    /// Already open (e.g. handed over by a privileged helper); `name` is how errors name it.
    Open { name: String, file: File },
}

impl PemSource {
    /// How errors name the file.
    pub fn name(&self) -> &str {
        match self {
            PemSource::Path { name, .. } | PemSource::Open { name, .. } => name,
        }
    }

    /// Reads the whole file.
    pub fn read(self) -> Result<Pem, TlsError> {
        let (name, result) = match self {
            PemSource::Path { name, path } => {
                let result = std::fs::read(&path);
                (name, result)
            }
            PemSource::Open { name, mut file } => {
                let mut bytes = Vec::new();
                let result = file.read_to_end(&mut bytes).map(|_| bytes);
                (name, result)
            }
        };
        match result {
            Ok(bytes) => Ok(Pem { name, bytes }),
            Err(source) => Err(TlsError::Read { name, source }),
        }
    }
}

/// A PEM file's bytes and its name for errors.
#[derive(Clone)]
pub struct Pem {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a key's bytes.
        write!(f, "Pem({}, {} bytes)", self.name, self.bytes.len())
    }
}

/// One site's certificate chain and key, read.
#[derive(Debug, Clone)]
pub struct SitePem {
    pub certificate: Pem,
    pub key: Pem,
}

/// Every site's PEM files, in `config.sites` order (`None`: the site has no certificate).
#[derive(Debug, Clone, Default)]
pub struct Material {
    pub sites: Vec<Option<SitePem>>,
}

impl Material {
    /// Reads every site's certificate and key, reporting every file that cannot be read.
    pub fn read(config: &Config, credentials: &Credentials) -> Result<Material, TlsErrors> {
        let mut errors = Vec::new();
        let mut sites = Vec::new();
        for site in &config.sites {
            let Some(tls) = &site.tls else {
                sites.push(None);
                continue;
            };
            let certificate = credentials.source(&tls.certificate).and_then(PemSource::read);
            let key = credentials.source(&tls.key).and_then(PemSource::read);
            match (certificate, key) {
                (Ok(certificate), Ok(key)) => sites.push(Some(SitePem { certificate, key })),
                (certificate, key) => {
                    errors.extend(certificate.err());
                    errors.extend(key.err());
                    sites.push(None);
                }
            }
        }
        if errors.is_empty() { Ok(Material { sites }) } else { Err(TlsErrors(errors)) }
    }
}
