//! The demo site compiled into the binary, served when a site's root is the built-in demo.

use graced_config::Site;
use http::HeaderValue;

use super::mime::content_type;
use super::resource::{Content, Lookup, Resource};
use crate::path::SafePath;

/// One page of the demo site.
struct Page {
    name: &'static str,
    bytes: &'static [u8],
    /// FNV-1a of `bytes`, computed at compile time: the page's entity tag.
    tag: u64,
}

impl Page {
    const fn new(name: &'static str, bytes: &'static [u8]) -> Page {
        Page { name, bytes, tag: fnv1a(bytes) }
    }
}

/// The demo site.
const DEMO: &[Page] = &[
    Page::new("index.html", include_bytes!("../../../../demo/index.html")),
    Page::new("style.css", include_bytes!("../../../../demo/style.css")),
];

/// Looks `path` up in the demo site (`site` gives the index names).
pub(super) fn lookup(site: &Site, path: &SafePath) -> Lookup {
    let relative = path.relative.to_str().unwrap_or("");
    if relative.is_empty() {
        if !path.trailing_slash {
            return Lookup::AddSlash;
        }
        return site.index.iter().find_map(|index| page(index)).map_or(Lookup::Forbidden, Lookup::Found);
    }
    match page(relative) {
        Some(resource) if !path.trailing_slash => Lookup::Found(resource),
        _ => Lookup::NotFound,
    }
}

fn page(name: &str) -> Option<Resource> {
    let page = DEMO.iter().find(|page| page.name == name)?;
    Some(Resource {
        len: page.bytes.len() as u64,
        modified: None,
        etag: HeaderValue::try_from(format!("\"builtin-{:x}\"", page.tag)).expect("a valid header"),
        last_modified: None,
        content_type: content_type(page.name),
        content: Content::Static(page.bytes),
    })
}

/// 64-bit FNV-1a, a `const fn` so that the tags are computed once, by the compiler.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::resolve;
    use graced_config::Root;

    fn find(raw: &str) -> Lookup {
        let demo = super::super::tests::test_site(Root::BuiltinDemo);
        lookup(&demo, &resolve(raw, false).unwrap())
    }

    #[test]
    fn the_builtin_demo_has_an_index() {
        assert!(matches!(find("/"), Lookup::Found(r) if r.len > 100));
        assert!(matches!(find("/style.css"), Lookup::Found(_)));
        assert!(matches!(find("/nope"), Lookup::NotFound));
        assert!(matches!(find("/style.css/"), Lookup::NotFound));
    }

    #[test]
    fn tags_are_fnv1a_of_the_bytes() {
        // The values the runtime hash gave before it was computed at compile time.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
