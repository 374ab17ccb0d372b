//! Where each site's PEM files come from, and reading them: the only IO of this crate.
//!
//! A configured file path is read, in this order, from:
//! 1. the descriptor a privileged caller opened and handed over with this reload
//!    ([`Handed`]: `ExecReload=+graced -k graceful --wait`, run as root, opens the files a
//!    root-only key lives in and passes them over the control socket);
//! 2. the path itself;
//! 3. if graced's user may not read the path: systemd's copy of it in the credentials
//!    directory, under [`Secret::file_credential_name`] — what the generated units'
//!    `LoadCredential=` lines put there when the service started.
//!
//! `credential:NAME` is read from the credentials directory only (fixed for the
//! service's lifetime, as systemd loads credentials once per start).

use std::collections::HashMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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

    /// Where `secret` is read from: a file handed over with this reload first.
    pub fn source(&self, secret: &Secret, handed: &Handed) -> Result<PemSource, TlsError> {
        match secret {
            Secret::File(path) => {
                if let Some(file) = handed.files.get(path) {
                    let name = format!("{} (opened by the reload's caller)", path.display());
                    let file =
                        file.try_clone().map_err(|source| TlsError::Read { name: name.clone(), source })?;
                    return Ok(PemSource::Open { name, file });
                }
                let fallback = self
                    .dir
                    .as_ref()
                    .zip(Secret::file_credential_name(path))
                    .map(|(dir, credential)| (credential.clone(), dir.join(credential)));
                Ok(PemSource::Path { name: path.display().to_string(), path: path.clone(), fallback })
            }
            Secret::Credential(credential) => {
                let dir = self
                    .dir
                    .as_ref()
                    .ok_or_else(|| TlsError::NoCredentialsDirectory { credential: credential.clone() })?;
                let path = dir.join(credential);
                let name = format!("credential {credential} ({})", path.display());
                Ok(PemSource::Path { name, path, fallback: None })
            }
        }
    }
}

/// Files a privileged caller opened and passed with a reload, by the path it opened.
#[derive(Debug, Default)]
pub struct Handed {
    files: HashMap<PathBuf, File>,
}

impl Handed {
    /// `files`: the path each was opened at, and the open file. Anything but an absolute
    /// path naming a regular file is refused (a FIFO could block the reload forever).
    pub fn new(files: impl IntoIterator<Item = (String, File)>) -> Result<Handed, TlsErrors> {
        let mut errors = Vec::new();
        let mut kept = HashMap::new();
        for (label, file) in files {
            let path = PathBuf::from(&label);
            match file.metadata() {
                Ok(meta) if meta.is_file() && path.is_absolute() => {
                    kept.insert(path, file);
                }
                Ok(_) => errors.push(TlsError::Handed { label }),
                Err(source) => errors.push(TlsError::Read { name: label, source }),
            }
        }
        if errors.is_empty() { Ok(Handed { files: kept }) } else { Err(TlsErrors(errors)) }
    }

    /// How many files were handed over.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// One PEM file to read.
#[derive(Debug)]
pub enum PemSource {
    /// Opened and read by this process; when graced's user may not read `path`,
    /// `fallback` is the credential systemd loaded from it at start (its name and path).
    Path { name: String, path: PathBuf, fallback: Option<(String, PathBuf)> },
    /// Already open (handed over by a privileged caller); `name` is how errors name it.
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
        match self {
            PemSource::Path { name, path, fallback } => match std::fs::read(&path) {
                Ok(bytes) => Ok(Pem { name, bytes }),
                Err(source) if source.kind() == ErrorKind::PermissionDenied => match fallback {
                    Some((credential, copy)) if copy.exists() => {
                        let name = format!(
                            "{name} (graced may not read it: systemd's copy from service start, credential \
                             {credential}; a renewed file reaches graced through `systemctl reload`)"
                        );
                        std::fs::read(&copy)
                            .map(|bytes| Pem { name: name.clone(), bytes })
                            .map_err(|source| TlsError::Read { name, source })
                    }
                    _ => Err(TlsError::PermissionDenied { name, credential: credential_hint(&path) }),
                },
                Err(source) => Err(TlsError::Read { name, source }),
            },
            // From offset 0 whatever the descriptor's position: one handed-over file may
            // serve several sites, each reading through its own duplicate.
            PemSource::Open { name, file } => match read_from_start(&file) {
                Ok(bytes) => Ok(Pem { name, bytes }),
                Err(source) => Err(TlsError::Read { name, source }),
            },
        }
    }
}

fn credential_hint(path: &Path) -> String {
    Secret::file_credential_name(path).unwrap_or_else(|| "(path too long for a credential name)".into())
}

fn read_from_start(file: &File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = file.read_at(&mut chunk, bytes.len() as u64)?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk[..n]);
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
    pub fn read(config: &Config, credentials: &Credentials, handed: &Handed) -> Result<Material, TlsErrors> {
        let mut errors = Vec::new();
        let mut sites = Vec::new();
        for site in &config.sites {
            let Some(tls) = &site.tls else {
                sites.push(None);
                continue;
            };
            let certificate = credentials.source(&tls.certificate, handed).and_then(PemSource::read);
            let key = credentials.source(&tls.key, handed).and_then(PemSource::read);
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
