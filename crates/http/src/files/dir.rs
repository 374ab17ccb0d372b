//! Opens a directory below a site's root for a listing, with the same wall as files
//! (`openat2(RESOLVE_BENEATH)`); the demo site has no directories to list.

use std::fs::File;

use super::beneath::{RootDir, open_beneath};
use crate::path::SafePath;

/// The directory `path` names below `root`, if it is one and can be opened.
pub(crate) fn open_dir(root: &RootDir, path: &SafePath) -> Option<File> {
    let dir = root.path()?;
    let opened = root.get(dir).ok()?;
    let file = File::from(open_beneath(&opened.fd, path.as_relative()).ok()?);
    file.metadata().ok()?.is_dir().then_some(file)
}
