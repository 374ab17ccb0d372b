//! [`Handed`]: the certificate and key files a privileged reload caller opened and passed over, by the path it opened.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{TlsError, TlsErrors};

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

    /// The file opened at `path`, if one was handed over.
    pub(crate) fn get(&self, path: &Path) -> Option<&File> {
        self.files.get(path)
    }

    /// How many files were handed over.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
