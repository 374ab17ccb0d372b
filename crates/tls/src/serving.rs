//! [`Serving`]: the bytes the running generation has from each certificate and key path — what a reload keeps for a file it cannot read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The PEM bytes of the running generation, by configured path (`Material::serving`).
#[derive(Debug, Clone, Default)]
pub struct Serving {
    files: HashMap<PathBuf, Vec<u8>>,
}

impl Serving {
    pub(crate) fn new(files: HashMap<PathBuf, Vec<u8>>) -> Serving {
        Serving { files }
    }

    /// The bytes the running generation has from `path`.
    pub(crate) fn get(&self, path: &Path) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }
}
