//! Which representation of a file a request gets: the file as it is, a precompressed
//! sidecar, or a compressed variant made on the fly — chosen by `Accept-Encoding` among
//! what the site's `[site.compression]` offers.
//!
//! A resource is *negotiable* when its site compresses its type (and, on the fly only, its
//! size is in bounds): every response for it then says `Vary: Accept-Encoding`, the
//! identity one and 304s included. Each variant has its own strong `ETag` (a sidecar its
//! file's, an on-the-fly variant the identity tag with `-br`, `-zst` or `-gz` added), so
//! `If-None-Match`, `If-Range` and ranges work per variant (RFC 9110 §8.8.3.3).

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};

use graced_config::Site;

use crate::compress::{self, Key, Pending, Source, Variant};
use crate::conditional;
use crate::encoding::{self, Encoding};
use crate::files::{self, Content, Resource, RootDir};
use crate::path::SafePath;

/// The representation to send.
pub(crate) struct Chosen {
    /// What to send (for an on-the-fly variant not made yet: its validators; `len` and
    /// `content` are the identity's and unused).
    pub(crate) resource: Resource,
    /// `Content-Encoding`, if not identity.
    pub(crate) encoding: Option<Encoding>,
    /// Send `Vary: Accept-Encoding`.
    pub(crate) negotiable: bool,
    /// The length is not known yet (an on-the-fly variant being made): no ranges, no
    /// `Content-Length`; `body` is what a GET sends (`None` only for HEAD and for a GET whose
    /// `If-None-Match` names the variant, which never get a body).
    pub(crate) unknown_len: bool,
    pub(crate) body: Option<Pending>,
}

/// Chooses the representation of `resource` (what `path` resolved to in `site`) for a
/// request with `method` and `headers`.
pub(crate) fn choose(
    method: &Method,
    headers: &HeaderMap,
    site: &Site,
    root: &RootDir,
    path: &SafePath,
    resource: Resource,
) -> Chosen {
    let c = &site.compression;
    let identity = |resource, negotiable| Chosen {
        resource,
        encoding: None,
        negotiable,
        unknown_len: false,
        body: None,
    };
    if !c.enabled() || !c.compresses(resource.content_type) {
        return identity(resource, false);
    }
    let fly = c.on_the_fly && (c.min_size..=c.max_size).contains(&resource.len);
    if !c.precompressed && !fly {
        return identity(resource, false);
    }
    let (offered, n) = encoding::offered(&c.encodings);
    let offered = &offered[..n];
    if c.precompressed {
        for encoding in encoding::acceptable(headers, offered) {
            if let Some(side) = files::sidecar(site, root, path, &resource, encoding.extension()) {
                return Chosen { encoding: Some(encoding), ..identity(side, true) };
            }
        }
    }
    if !fly {
        return identity(resource, true);
    }
    let Some(encoding) = encoding::choose(headers, offered) else { return identity(resource, true) };
    let key = Key { etag: resource.etag.clone(), encoding };
    let etag = variant_etag(&resource.etag, encoding);
    // A revalidation that will be answered 304 needs no body: no compression for it.
    let needs_body = *method == Method::GET && !conditional::none_match(headers, etag.to_str().unwrap_or(""));
    let ready = if needs_body {
        let source = || match &resource.content {
            Content::Static(bytes) => Source::Bytes(bytes::Bytes::from_static(bytes)),
            Content::Cached(bytes) => Source::Bytes(bytes.clone()),
            Content::Open(file) => {
                Source::File { file: file.clone(), len: resource.len, modified: resource.modified }
            }
            // Called only when a compression starts (once per version): a second descriptor.
            Content::File(file) => match file.try_clone() {
                Ok(file) => {
                    Source::File { file: Arc::new(file), len: resource.len, modified: resource.modified }
                }
                Err(err) => Source::Failed(err),
            },
        };
        match compress::get(&key, source) {
            Variant::Ready(bytes) => Ok(bytes),
            Variant::Pending(pending) => Err(Some(pending)),
            // Too many compressions running: this one goes as it is.
            Variant::Busy => return identity(resource, true),
        }
    } else {
        compress::peek(&key).ok_or(None)
    };
    let (len, content, unknown_len, body) = match ready {
        Ok(bytes) => (bytes.len() as u64, Content::Cached(bytes), false, None),
        Err(body) => (resource.len, resource.content, true, body),
    };
    let resource = Resource { len, etag, content, ..resource };
    Chosen { resource, encoding: Some(encoding), negotiable: true, unknown_len, body }
}

/// The identity `ETag` `"…"` with the coding's suffix: `"…-gz"`.
fn variant_etag(identity: &HeaderValue, encoding: Encoding) -> HeaderValue {
    let text = identity.to_str().unwrap_or("\"\"");
    let inner = text.strip_suffix('"').unwrap_or(text);
    let suffix = encoding.extension().trim_start_matches('.');
    HeaderValue::try_from(format!("{inner}-{suffix}\"")).unwrap_or_else(|_| identity.clone())
}
