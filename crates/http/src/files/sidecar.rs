//! Precompressed sidecars: `FILE.br`, `FILE.zst`, `FILE.gz` next to the file a request
//! resolved to (its index file for a directory), found through the same lookup and caches
//! as any file, so they are opened below the root and sent with `sendfile`.
//!
//! A sidecar is used only while the original exists (it was just found) and the sidecar is
//! not older than it: nginx, Caddy and static-web-server all serve a stale `.gz` after the
//! original is edited; here the edit makes the identity file win until the sidecar is made
//! again.

use std::path::Path;

use graced_config::Site;

use super::beneath::RootDir;
use super::lookup::lookup;
use super::resource::{Lookup, Resource};
use crate::path::SafePath;

/// The sidecar with `extension` of the file `path` resolved to as `original`, if there is a
/// regular one not older than `original`; it keeps its own validators (so its `ETag`
/// differs from the original's) and takes the original's `Content-Type`.
pub(crate) fn sidecar(
    site: &Site,
    root: &RootDir,
    path: &SafePath,
    original: &Resource,
    extension: &str,
) -> Option<Resource> {
    root.path()?;
    let resolved = if path.trailing_slash { index_of(site, root, path, original)? } else { path.clone() };
    let mut name = resolved.relative.into_os_string();
    name.push(extension);
    let side = SafePath { relative: name.into(), trailing_slash: false };
    let Lookup::Found(mut found) = lookup(site, root, &side) else { return None };
    if found.modified? < original.modified? {
        tracing::debug!(path = %side.relative.display(), "a sidecar older than its file is not used");
        return None;
    }
    found.content_type = original.content_type;
    Some(found)
}

/// The index file a directory request resolved to: the first of the site's index names
/// that is found, checked to be the same version (its `ETag`).
fn index_of(site: &Site, root: &RootDir, dir: &SafePath, original: &Resource) -> Option<SafePath> {
    site.index.iter().find_map(|index| {
        let candidate = SafePath { relative: dir.relative.join(Path::new(index)), trailing_slash: false };
        match lookup(site, root, &candidate) {
            Lookup::Found(r) if r.etag == original.etag => Some(candidate),
            _ => None,
        }
    })
}
