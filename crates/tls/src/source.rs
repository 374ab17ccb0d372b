//! Where each site's PEM files come from, and reading them: the only IO of this crate.
//!
//! A configured file path is read, in this order, from:
//! 1. the descriptor a privileged caller opened and handed over with this reload
//!    ([`Handed`]: `ExecReload=+graced -k graceful --wait`, run as root, opens the files a
//!    root-only key lives in and passes them over the control socket);
//! 2. the path itself;
//! 3. if graced's user may not read the path: the bytes the running generation has from
//!    it ([`Serving`]) — a reload that cannot see a file keeps what serves, never an
//!    older copy;
//! 4. else (at start): systemd's copy of it in the credentials directory, under
//!    [`Secret::file_credential_name`] — what the generated units' `LoadCredential=` lines
//!    put there when the service started.
//!
//! `credential:NAME` is read from the credentials directory only (fixed for the
//! service's lifetime, as systemd loads credentials once per start).

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use graced_config::{ACME_NOT_ISSUED, Config, Secret};

use crate::error::{TlsError, TlsErrors};
use crate::handed::Handed;
use crate::serving::Serving;

/// What a load reads besides the configured paths.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The credentials directory (`credential:NAME`, and systemd's copies of paths).
    pub credentials: &'a Credentials,
    /// Files the reload's caller opened and passed over.
    pub handed: &'a Handed,
    /// The bytes the running generation has from each path.
    pub serving: &'a Serving,
}

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

    /// Where `secret` is read from (see the module's order).
    fn source(&self, secret: &Secret, handed: &Handed, serving: &Serving) -> Result<PemSource, TlsError> {
        match secret {
            Secret::File(path) => {
                if let Some(file) = handed.get(path) {
                    let name = format!("{} (opened by the reload's caller)", path.display());
                    let file =
                        file.try_clone().map_err(|source| TlsError::Read { name: name.clone(), source })?;
                    return Ok(PemSource::Open { name, file });
                }
                let copy = self
                    .dir
                    .as_ref()
                    .zip(Secret::file_credential_name(path))
                    .map(|(dir, credential)| (credential.clone(), dir.join(credential)));
                let kept = serving.get(path).map(<[u8]>::to_vec);
                Ok(PemSource::Path { name: path.display().to_string(), path: path.clone(), kept, copy })
            }
            Secret::Credential(credential) => {
                let dir = self
                    .dir
                    .as_ref()
                    .ok_or_else(|| TlsError::NoCredentialsDirectory { credential: credential.clone() })?;
                let path = dir.join(credential);
                let name = format!("credential {credential} ({})", path.display());
                Ok(PemSource::Path { name, path, kept: None, copy: None })
            }
        }
    }
}

/// One PEM file to read.
enum PemSource {
    /// Opened and read by this process. When graced's user may not read `path`: `kept`,
    /// the bytes the running generation has from it, else `copy`, the credential systemd
    /// loaded from it at start (its name and path).
    Path { name: String, path: PathBuf, kept: Option<Vec<u8>>, copy: Option<(String, PathBuf)> },
    /// Already open (handed over by a privileged caller); `name` is how errors name it.
    Open { name: String, file: File },
}

impl PemSource {
    /// Reads the whole file.
    fn read(self) -> Result<Pem, TlsError> {
        match self {
            PemSource::Path { name, path, kept, copy } => match std::fs::read(&path) {
                Ok(bytes) => Ok(Pem { name, bytes, origin: Origin::Path }),
                Err(source) if source.kind() == ErrorKind::PermissionDenied => match (kept, copy) {
                    (Some(bytes), _) => {
                        let name = format!(
                            "{name} (graced may not read it: the bytes the running configuration has; a \
                             renewed file reaches graced through `systemctl reload`)"
                        );
                        Ok(Pem { name, bytes, origin: Origin::Serving })
                    }
                    (None, Some((credential, copy))) => match std::fs::read(&copy) {
                        Ok(bytes) => {
                            let name = format!(
                                "{name} (graced may not read it: systemd's copy from service start, \
                                 credential {credential}; a renewed file reaches graced through `systemctl reload`)"
                            );
                            Ok(Pem { name, bytes, origin: Origin::StartCopy })
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            Err(TlsError::NoCredentialCopy { name, credential, copy })
                        }
                        Err(source) => Err(TlsError::Read {
                            name: format!("{name}: its credential copy {}", copy.display()),
                            source,
                        }),
                    },
                    (None, None) => {
                        Err(TlsError::PermissionDenied { name, credential: credential_hint(&path) })
                    }
                },
                Err(source) => Err(TlsError::Read { name, source }),
            },
            // From offset 0 whatever the descriptor's position: one handed-over file may
            // serve several sites, each reading through its own duplicate.
            PemSource::Open { name, file } => match read_from_start(&file) {
                Ok(bytes) => Ok(Pem { name, bytes, origin: Origin::Handed }),
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
    pub origin: Origin,
}

/// Where a [`Pem`]'s bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The configured path (or a `credential:NAME`).
    Path,
    /// A descriptor the reload's caller handed over.
    Handed,
    /// Not readable, nothing handed over: what the running generation has from it.
    Serving,
    /// Not readable, nothing handed over, nothing running yet: systemd's copy from start.
    StartCopy,
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
    /// ACME sites whose certificate and key do not exist yet (by first host): they serve
    /// plain HTTP (and their HTTP-01 challenges) until graced-acme writes them and reloads.
    pub waiting: Vec<String>,
}

impl Material {
    /// What this material holds, by the paths `config` (for which it was read) names.
    pub fn serving(&self, config: &Config) -> Serving {
        let mut files = std::collections::HashMap::new();
        for (site, pem) in config.sites.iter().zip(&self.sites) {
            let (Some(tls), Some(pem)) = (&site.tls, pem) else { continue };
            for (secret, pem) in [(&tls.certificate, &pem.certificate), (&tls.key, &pem.key)] {
                if let Secret::File(path) = secret {
                    files.insert(path.clone(), pem.bytes.clone());
                }
            }
        }
        Serving::new(files)
    }

    /// The files that could not be read and were not handed over ([`Origin::Serving`],
    /// [`Origin::StartCopy`]): a renewal on disk of these is not seen.
    pub fn not_reread(&self) -> Vec<String> {
        let pems = self.sites.iter().flatten().flat_map(|s| [&s.certificate, &s.key]);
        let stale = pems.filter(|p| matches!(p.origin, Origin::Serving | Origin::StartCopy));
        stale.map(|p| p.name.clone()).collect()
    }

    /// Reads every site's certificate and key, reporting every file that cannot be read.
    pub fn read(config: &Config, sources: &Sources<'_>) -> Result<Material, TlsErrors> {
        let Sources { credentials, handed, serving } = *sources;
        let mut errors = Vec::new();
        let mut sites = Vec::new();
        let mut waiting = Vec::new();
        for site in &config.sites {
            let Some(tls) = &site.tls else {
                sites.push(None);
                continue;
            };
            let certificate = credentials.source(&tls.certificate, handed, serving).and_then(PemSource::read);
            let key = credentials.source(&tls.key, handed, serving).and_then(PemSource::read);
            if site.acme.is_some() && not_issued(&certificate) && not_issued(&key) {
                waiting.push(site.hosts.first().cloned().unwrap_or_default());
                sites.push(None);
                continue;
            }
            match (certificate, key) {
                (Ok(certificate), Ok(key)) => sites.push(Some(SitePem { certificate, key })),
                (certificate, key) => {
                    errors.extend(certificate.err());
                    errors.extend(key.err());
                    sites.push(None);
                }
            }
        }
        if errors.is_empty() { Ok(Material { sites, waiting }) } else { Err(TlsErrors(errors)) }
    }
}

/// Whether an ACME site's file is not there yet: missing, empty, or the fallback the
/// generated unit's `SetCredential=NAME:`[`ACME_NOT_ISSUED`] gives when `LoadCredential=`
/// found no file.
fn not_issued(read: &Result<Pem, TlsError>) -> bool {
    match read {
        Ok(pem) => pem.bytes.is_empty() || pem.bytes.trim_ascii() == ACME_NOT_ISSUED.as_bytes(),
        Err(TlsError::Read { source, .. }) => source.kind() == ErrorKind::NotFound,
        Err(TlsError::NoCredentialCopy { .. }) => true,
        Err(_) => false,
    }
}
