//! Error pages per site (`error_pages`): the configured file for a status, its class or the
//! default, served with the error's own status (never a redirect to the page).

use graced_config::Site;

use crate::files::{self, Lookup, Resource, RootDir};
use crate::path;

/// The page to send for `status` (≥ 400) on `site`: the first configured page for it
/// (exact, class, default) that can be opened.
pub(crate) fn page(site: &Site, root: &RootDir, status: u16) -> Option<Resource> {
    site.rules.error_pages.for_status(status).find_map(|page| {
        // The path was checked at load (no dot segments); hidden names are allowed here.
        let safe = path::resolve(page, true).ok()?;
        match files::lookup(site, root, &safe) {
            Lookup::Found(resource) => Some(resource),
            other => {
                tracing::warn!(page, ?other, "error page not served");
                None
            }
        }
    })
}
