//! What a lookup answers: a [`Resource`] to serve and where its bytes come from, or why not.

use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;

/// A file ready to be served.
#[derive(Debug)]
pub(crate) struct Resource {
    pub(crate) len: u64,
    pub(crate) modified: Option<SystemTime>,
    /// A strong entity tag, quoted.
    pub(crate) etag: HeaderValue,
    /// `modified` formatted, when it is not in the future (then it is formatted per response).
    pub(crate) last_modified: Option<HeaderValue>,
    pub(crate) content_type: &'static str,
    pub(crate) content: Content,
}

impl Resource {
    pub(crate) fn etag_str(&self) -> &str {
        self.etag.to_str().unwrap_or("")
    }
}

/// Where a resource's bytes come from.
#[derive(Debug)]
pub(crate) enum Content {
    File(File),
    /// A file that is not [`SizeClass::Large`](crate::size::SizeClass::Large), kept open
    /// by the path cache.
    Open(Arc<File>),
    /// The whole file, read when its current version was first served.
    Cached(Bytes),
    Static(&'static [u8]),
}

/// The result of looking a path up in a site.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(Resource),
    /// A directory named without a trailing slash: redirect to add it.
    AddSlash,
    NotFound,
    /// Outside the root (a symlink leading out), unreadable, or a directory without index.
    Forbidden,
    /// The server is out of file descriptors or memory: try again later (503, never a
    /// cacheable 404).
    Unavailable,
    /// Any other failure to open or inspect the file (500).
    Failed,
}
