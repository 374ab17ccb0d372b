//! Files in the state directory, written atomically: a temporary file beside the target,
//! synced, renamed over it, the directory synced — a reader (graced's reload, a crash
//! half-way) sees the old file or the new one, never a part.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::AcmeError;

/// Private files (keys, the account): only graced-acme's user reads them; graced gets them
/// from systemd (`LoadCredential=` at start, the root hand-over of `ExecReload=+` at reload).
pub(crate) const PRIVATE: u32 = 0o600;
/// Certificates and challenge answers: public by nature.
pub(crate) const PUBLIC: u32 = 0o644;

/// Writes `bytes` to `path` atomically with `mode`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AcmeError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(AcmeError::io(dir))?;
    let tmp = temporary(path);
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        AcmeError::Io { path: path.to_owned(), source }
    })
}

/// Reads `path`; `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, AcmeError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AcmeError::Io { path: path.to_owned(), source }),
    }
}

/// `dir/.name.tmp`: beside the target (same filesystem, so the rename is atomic). One
/// graced-acme runs at a time (a oneshot unit); a leftover of a crash is removed first.
fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    tmp
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn writes_replace_whole_files_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site/key.pem");
        write_atomic(&path, b"one", PRIVATE).unwrap();
        write_atomic(&path, b"two", PRIVATE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let left: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left");
        assert_eq!(read_optional(&dir.path().join("nope")).unwrap(), None);
    }
}
