//! Directory listings (opt-in per site): HTML, or JSON when `Accept` asks for
//! `application/json` and not HTML; sorted (directories first, then by name), capped at
//! the site's `max_entries`, hidden names left out unless the site serves them.
//!
//! File names are attacker-controlled (anyone who can upload names a file): every name is
//! HTML-escaped where shown and percent-encoded (everything but `A-Z a-z 0-9 - . _ ~`) in
//! its link, which starts with `./` so a name can never read as a scheme
//! (expressjs/serve-index#28, vert.x CVE-2025-11966).

use std::fs::File;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use rustix::fs::{AtFlags, Dir, FileType, StatxFlags};

/// What a link may keep as is (RFC 3986 unreserved).
const LINK: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// Names read at most from one directory (memory and time stay bounded; the listing is
/// capped far below this anyway).
const READ_MAX: usize = 100_000;

struct Entry {
    name: Vec<u8>,
    dir: bool,
    len: u64,
    modified: Option<SystemTime>,
}

/// A rendered listing: the body, its `Content-Type` and a strong `ETag` of the body (so a
/// cache may keep it and revalidate it: `Cache-Control: no-cache` without a validator
/// would make it useless to store).
pub(crate) struct Listing {
    pub(crate) body: String,
    pub(crate) content_type: &'static str,
    pub(crate) etag: String,
}

impl Listing {
    fn new(body: String, content_type: &'static str) -> Listing {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(body.as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Listing { body, content_type, etag: format!("\"l-{hex}\"") }
    }

    /// Whether `If-None-Match` names this listing's tag (weak comparison, RFC 9110 §13.1.2).
    pub(crate) fn not_modified(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag
            })
    }
}

/// Lists `dir`, whose request path is `path` (ending in `/`).
pub(crate) fn render(
    dir: &File,
    path: &str,
    headers: &HeaderMap,
    max: usize,
    hidden: bool,
) -> std::io::Result<Listing> {
    // Names and types first (readdir's d_type; statx only where the file system gives
    // none), sorted and capped; then size and time for the entries shown only.
    let mut names: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut more = false;
    for item in Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name().to_bytes();
        if name == b"." || name == b".." || (!hidden && name.first() == Some(&b'.')) {
            continue;
        }
        if names.len() >= READ_MAX {
            more = true;
            break;
        }
        let kind = match item.file_type() {
            FileType::Unknown => {
                match rustix::fs::statx(dir, item.file_name(), AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE) {
                    Ok(stat) => FileType::from_raw_mode(stat.stx_mode.into()),
                    Err(_) => continue,
                }
            }
            kind => kind,
        };
        if matches!(kind, FileType::Directory | FileType::RegularFile | FileType::Symlink) {
            names.push((kind == FileType::Directory, name.to_vec()));
        }
    }
    names.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    if names.len() > max {
        names.truncate(max);
        more = true;
    }
    let entries: Vec<Entry> = names
        .into_iter()
        .map(|(is_dir, name)| {
            let stat =
                rustix::fs::statx(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS)
                    .ok();
            let len = stat.as_ref().map_or(0, |s| s.stx_size);
            let modified = stat
                .and_then(|s| u64::try_from(s.stx_mtime.tv_sec).ok())
                .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
            Entry { name, dir: is_dir, len, modified }
        })
        .collect();
    Ok(if wants_json(headers) { json(path, &entries, more) } else { html(path, &entries, more) })
}

/// JSON when `application/json` is accepted and HTML is not named.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept: String = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    accept.contains("application/json") && !accept.contains("text/html")
}

fn json(path: &str, entries: &[Entry], more: bool) -> Listing {
    let items: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": String::from_utf8_lossy(&e.name),
                "type": if e.dir { "directory" } else { "file" },
                "size": e.len,
                "modified": e.modified.map(httpdate::fmt_http_date),
                "href": href(e),
            })
        })
        .collect();
    let value = serde_json::json!({ "path": path, "entries": items, "truncated": more });
    Listing::new(format!("{value}\n"), "application/json")
}

fn html(path: &str, entries: &[Entry], more: bool) -> Listing {
    let title = escape(path);
    let mut body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if path != "/" {
        body.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in entries {
        let mut name = escape(&String::from_utf8_lossy(&e.name));
        if e.dir {
            name.push('/');
        }
        let size = if e.dir { String::new() } else { e.len.to_string() };
        let modified = e.modified.map(httpdate::fmt_http_date).unwrap_or_default();
        body.push_str(&format!(
            "<tr><td><a href=\"{href}\">{name}</a></td><td>{size}</td><td>{modified}</td></tr>\n",
            href = href(e)
        ));
    }
    body.push_str("</table>\n");
    if more {
        body.push_str("<p>More entries are not shown.</p>\n");
    }
    body.push_str("</body></html>\n");
    Listing::new(body, "text/html; charset=utf-8")
}

/// `./NAME` percent-encoded, `/` after a directory.
fn href(e: &Entry) -> String {
    let mut link = format!("./{}", percent_encode(&e.name, LINK));
    if e.dir {
        link.push('/');
    }
    link
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let evil = "<img src=x onerror=alert(1)>";
        std::fs::write(dir.path().join(evil), "x").unwrap();
        std::fs::write(dir.path().join("javascript:alert(1)"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let file = File::open(dir.path()).unwrap();
        let page = render(&file, "/d/", &HeaderMap::new(), 10, false).unwrap();
        assert!(!page.body.contains("<img"), "{}", page.body);
        assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.body.contains("href=\"./%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E\""));
        assert!(page.body.contains("href=\"./javascript%3Aalert%281%29\""));
        assert!(!page.body.contains(".hidden"));
        // Directories first.
        assert!(page.body.find("./sub/").unwrap() < page.body.find("./javascript").unwrap());
        let capped = render(&file, "/d/", &HeaderMap::new(), 1, false).unwrap();
        assert!(capped.body.contains("More entries") && !capped.body.contains("javascript"));
    }
}
