//! Compression (issue 20 part 1): precompressed sidecars chosen by `Accept-Encoding`
//! q-values, on-the-fly variants made once per file version, an `ETag` per encoding,
//! `If-None-Match`, ranges and `If-Range` per variant, and `Vary` on every response of a
//! negotiable resource, 304s included.

use std::process::{Command, Stdio};
use std::time::Duration;

use graced_testsupport::site::Site;

use super::{get, must, request};
use crate::GRACED;

/// An HTML page of `len` bytes that compresses well (about 7:1).
pub(crate) fn html(len: usize) -> Vec<u8> {
    let words = ["static", "site", "graced", "<p>", "</p>", "server", "compression", "alpha", "beta"];
    let mut out = b"<!doctype html><html><body>".to_vec();
    let mut x: u32 = 7;
    while out.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

/// `curl --compressed` (it decodes gzip, br and zstd) with `Accept-Encoding: ae`: the
/// decoded body, and the response head.
fn curl_decoded(port: u16, path: &str, ae: &str) -> (Vec<u8>, String) {
    let head = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--compressed", "--max-time", "20", "-D"])
        .arg(head.path())
        .args(["-H", &format!("Accept-Encoding: {ae}"), &format!("http://127.0.0.1:{port}{path}")])
        .stderr(Stdio::inherit())
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl failed: {:?}", out.status);
    (out.stdout, std::fs::read_to_string(head.path()).unwrap().to_ascii_lowercase())
}

/// `gzip -dc` of `data`.
fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child =
        Command::new("gzip").arg("-dc").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not valid gzip");
    out.stdout
}

/// `gzip -c` of `data` (level 9: not what graced makes on the fly).
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child =
        Command::new("gzip").args(["-9", "-c"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

const PRECOMPRESSED: &str = "[site.compression]\nprecompressed = true\n";
const ON_THE_FLY: &str = "[site.compression]\non_the_fly = true\n";

/// Sets `relative`'s mtime `secs` seconds from now.
fn touch(site: &Site, relative: &str, secs: i64) {
    let file = std::fs::File::options().write(true).open(site.path(relative)).unwrap();
    let now = std::time::SystemTime::now();
    let at = if secs >= 0 {
        now + Duration::from_secs(secs as u64)
    } else {
        now - Duration::from_secs((-secs) as u64)
    };
    file.set_modified(at).unwrap();
}

#[test]
fn sidecars_are_chosen_by_q_value_with_their_own_etag_vary_and_ranges() {
    let site = Site::new(GRACED);
    site.write_config(PRECOMPRESSED);
    let page = html(4000);
    site.put("www/a.html", &page);
    let gz = gzip(&page);
    site.put("www/a.html.gz", &gz);
    site.put("www/a.html.br", b"BROTLI-SIDECAR-BYTES");
    site.put("www/pic.png", b"\x89PNG not really");
    site.put("www/pic.png.gz", b"never sent");
    touch(&site, "www/a.html", -60);
    let server = site.start(&[]);
    let port = server.port;

    let plain = get(port, "/a.html", &[]);
    assert_eq!((plain.status, plain.body.as_slice()), (200, &page[..]));
    assert_eq!(must(&plain, "vary"), "accept-encoding", "Vary on the identity response too");
    assert!(plain.header("content-encoding").is_none());
    let identity_tag = must(&plain, "etag").to_owned();

    let r = get(port, "/a.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!((r.status, must(&r, "content-encoding")), (200, "gzip"));
    assert_eq!(r.body, gz, "the sidecar's bytes");
    assert_eq!(must(&r, "content-type"), "text/html; charset=utf-8", "the original's type");
    assert_eq!(must(&r, "vary"), "accept-encoding");
    let gz_tag = must(&r, "etag").to_owned();
    assert_ne!(gz_tag, identity_tag, "a strong ETag per encoding");
    assert!(!gz_tag.starts_with("W/"));

    let r = get(port, "/a.html", &[("Accept-Encoding", "gzip, deflate, br")]);
    assert_eq!((must(&r, "content-encoding"), r.body.as_slice()), ("br", &b"BROTLI-SIDECAR-BYTES"[..]));
    let r = get(port, "/a.html", &[("Accept-Encoding", "br;q=0.5, gzip")]);
    assert_eq!(must(&r, "content-encoding"), "gzip", "the higher q wins");
    let r = get(port, "/a.html", &[("Accept-Encoding", "br;q=0, gzip;q=0.1")]);
    assert_eq!(must(&r, "content-encoding"), "gzip", "q=0 refuses br");
    let r = get(port, "/a.html", &[("Accept-Encoding", "gzip;q=0.5, identity")]);
    assert_eq!((r.header("content-encoding"), r.body.len()), (None, page.len()), "identity preferred");
    let r = get(port, "/a.html", &[("Accept-Encoding", "zstd")]);
    assert_eq!((r.header("content-encoding"), r.body.len()), (None, page.len()), "no .zst sidecar");

    // If-None-Match per variant; 304 keeps Vary and the variant's ETag.
    let (r, _) = request(port, "GET", "/a.html", &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_tag)]);
    assert_eq!(r.status, 304);
    assert_eq!((must(&r, "vary"), must(&r, "etag")), ("accept-encoding", gz_tag.as_str()));
    let (r, _) = request(port, "HEAD", "/a.html", &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_tag)]);
    assert_eq!(r.status, 304);
    let r = get(port, "/a.html", &[("If-None-Match", &gz_tag)]);
    assert_eq!((r.status, r.body.len()), (200, page.len()), "the gzip tag does not validate identity");
    let r = get(port, "/a.html", &[("Accept-Encoding", "gzip"), ("If-None-Match", &identity_tag)]);
    assert_eq!(r.status, 200, "nor the identity tag gzip");

    // Ranges over the sidecar's own bytes; If-Range with another variant's tag: the whole.
    let r = get(port, "/a.html", &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")]);
    assert_eq!((r.status, must(&r, "content-encoding")), (206, "gzip"));
    assert_eq!(must(&r, "content-range"), format!("bytes 0-9/{}", gz.len()));
    assert_eq!(r.body, gz[..10]);
    let r = get(
        port,
        "/a.html",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9"), ("If-Range", &identity_tag)],
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &gz[..]));
    let r =
        get(port, "/a.html", &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9"), ("If-Range", &gz_tag)]);
    assert_eq!(r.status, 206);

    // Types that are not compressed: no sidecar, no Vary.
    let r = get(port, "/pic.png", &[("Accept-Encoding", "gzip")]);
    assert_eq!((r.status, r.header("content-encoding"), r.header("vary")), (200, None, None));

    // A sidecar older than its file is stale: identity until it is made again.
    touch(&site, "www/a.html", 0);
    touch(&site, "www/a.html.gz", -30);
    touch(&site, "www/a.html.br", -30);
    let r = get(port, "/a.html", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!((r.header("content-encoding"), r.body.as_slice()), (None, &page[..]), "stale sidecars unused");
    assert_eq!(must(&r, "vary"), "accept-encoding");
    touch(&site, "www/a.html.gz", 1);
    let r = get(port, "/a.html", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "a fresh sidecar is used again");

    // A sidecar without its original is never served in its place.
    std::fs::remove_file(site.path("www/a.html")).unwrap();
    assert_eq!(get(port, "/a.html", &[("Accept-Encoding", "gzip")]).status, 404);

    // The index file of a directory has sidecars too.
    site.put("www/docs/index.html", &page);
    site.put("www/docs/index.html.gz", &gz);
    touch(&site, "www/docs/index.html", -60);
    let r = get(port, "/docs/", &[("Accept-Encoding", "gzip")]);
    assert_eq!((r.status, must(&r, "content-encoding"), r.body.as_slice()), (200, "gzip", &gz[..]));
    let (decoded, _) = curl_decoded(port, "/docs/", "gzip");
    assert_eq!(decoded, page, "curl decodes the sidecar to the page");
}

#[test]
fn on_the_fly_variants_are_made_once_per_version_with_their_own_etag() {
    let site = Site::new(GRACED);
    site.write_config(&format!("{ON_THE_FLY}max_size = 200000\n"));
    let page = html(100 * 1024);
    site.put("www/page.html", &page);
    site.put("www/small.html", b"<p>below min_size</p>");
    site.put("www/photo.jpg", &page);
    let server = site.start(&[]);
    let port = server.port;

    // HEAD before any GET: the headers, without starting a compression.
    let (r, _) = request(port, "HEAD", "/page.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!((r.status, must(&r, "content-encoding"), must(&r, "vary")), (200, "gzip", "accept-encoding"));

    // Every coding curl decodes, to the page; the first GET waits for the compression.
    for ae in ["gzip", "br", "zstd"] {
        let (body, head) = curl_decoded(port, "/page.html", ae);
        assert!(head.contains(&format!("content-encoding: {ae}")), "{ae}: {head}");
        assert!(head.contains("vary: accept-encoding"), "{ae}: {head}");
        assert_eq!(body, page, "{ae} decodes to the page");
    }
    // Made once: now served from the cache with its length, the same bytes each time.
    let first = get(port, "/page.html", &[("Accept-Encoding", "gzip")]);
    let second = get(port, "/page.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!(must(&first, "content-length"), first.body.len().to_string());
    assert!(first.body.len() < page.len() / 4, "compressed: {} bytes", first.body.len());
    assert_eq!(first.body, second.body);
    assert_eq!(gunzip(&first.body), page);
    let gz_tag = must(&first, "etag").to_owned();
    let identity = get(port, "/page.html", &[]);
    let identity_tag = must(&identity, "etag").to_owned();
    assert_eq!(identity.body, page);
    assert_eq!(must(&identity, "vary"), "accept-encoding");
    assert_ne!(gz_tag, identity_tag);
    let br = get(port, "/page.html", &[("Accept-Encoding", "br")]);
    assert_ne!(must(&br, "etag"), gz_tag, "each coding its own tag");

    let (r, _) =
        request(port, "GET", "/page.html", &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_tag)]);
    assert_eq!((r.status, must(&r, "vary"), must(&r, "etag")), (304, "accept-encoding", gz_tag.as_str()));
    // A range of the variant's own bytes.
    let r = get(
        port,
        "/page.html",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=100-199"), ("If-Range", &gz_tag)],
    );
    assert_eq!((r.status, must(&r, "content-encoding")), (206, "gzip"));
    assert_eq!(must(&r, "content-range"), format!("bytes 100-199/{}", first.body.len()));
    assert_eq!(r.body, first.body[100..200]);

    // Below min_size, or not a text type: as it is, and not negotiable.
    let r = get(port, "/small.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!((r.header("content-encoding"), r.header("vary")), (None, None));
    let r = get(port, "/photo.jpg", &[("Accept-Encoding", "gzip")]);
    assert_eq!((r.header("content-encoding"), r.header("vary"), r.body.len()), (None, None, page.len()));
    let big = html(300 * 1024);
    site.put("www/big.html", &big);
    let r = get(port, "/big.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!(
        (r.header("content-encoding"), r.header("vary"), r.body.len()),
        (None, None, big.len()),
        "above max_size"
    );
    let r = get(port, "/page.html", &[("Accept-Encoding", "deflate")]);
    assert_eq!((r.header("content-encoding"), r.body.len()), (None, page.len()), "deflate is not offered");

    // A new version of the file: a new tag and new bytes, never the old variant.
    std::thread::sleep(Duration::from_millis(20));
    let mut changed = page.clone();
    changed[..15].copy_from_slice(b"<!-- changed --");
    site.put("www/page.html", &changed);
    let (body, _) = curl_decoded(port, "/page.html", "gzip");
    assert_eq!(body, changed);
    let r = get(port, "/page.html", &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_tag)]);
    assert_eq!(r.status, 200, "the old variant's tag no longer matches");
    assert_ne!(must(&r, "etag"), gz_tag);
}

#[test]
fn concurrent_first_requests_all_get_the_same_variant() {
    let site = Site::new(GRACED);
    site.write_config(ON_THE_FLY);
    let page = html(512 * 1024);
    site.put("www/big.html", &page);
    let server = site.start(&[]);
    let port = server.port;
    let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| curl_decoded(port, "/big.html", "zstd").0)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for body in bodies {
        assert_eq!(body, page);
    }
}

#[test]
fn a_graceful_reload_turns_compression_on_and_off_with_no_failed_request() {
    let site = Site::new(GRACED);
    let page = html(20_000);
    site.put("www/page.html", &page);
    let server = site.start(&[]);
    let port = server.port;
    let r = get(port, "/page.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!((r.header("content-encoding"), r.header("vary")), (None, None), "off by default");

    // A client requests the page all along (bounded in count and time) while the config
    // changes under it; every response must be a 200 with the page, in one coding or none.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let requests = std::sync::atomic::AtomicUsize::new(0);
    let (encodings, failures) = std::thread::scope(|s| {
        let client = s.spawn(|| {
            let (mut seen, mut failures) = (std::collections::BTreeSet::new(), Vec::new());
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            for _ in 0..20_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || std::time::Instant::now() > deadline {
                    break;
                }
                let r = get(port, "/page.html", &[("Accept-Encoding", "gzip")]);
                let enc = r.header("content-encoding").map(str::to_owned);
                let ok = r.status == 200
                    && match enc.as_deref() {
                        None => r.body == page,
                        Some("gzip") => r.header("content-length").is_none_or(|_| gunzip(&r.body) == page),
                        Some(_) => false,
                    };
                if !ok {
                    failures.push(format!("{} {:?}", r.status, r.headers));
                }
                seen.insert(enc);
                requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (seen, failures)
        });
        let wait_for = |want: Option<&str>| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let r = get(port, "/page.html", &[("Accept-Encoding", "gzip")]);
                if r.header("content-encoding") == want {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "the reload did not apply: {:?}", r.headers);
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // The client's first request is answered before compression is turned on.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while requests.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "the client made no request");
            std::thread::sleep(Duration::from_millis(5));
        }
        site.write_config(ON_THE_FLY);
        server.signal(libc::SIGUSR1);
        wait_for(Some("gzip"));
        site.write_config("");
        server.signal(libc::SIGUSR1);
        wait_for(None);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        client.join().unwrap()
    });
    assert!(failures.is_empty(), "failed requests across the reloads: {failures:?}");
    assert!(encodings.contains(&None), "{encodings:?}");
}

#[test]
fn a_revalidation_is_answered_without_compressing() {
    let site = Site::new(GRACED);
    site.write_config(ON_THE_FLY);
    site.put("www/page.html", &html(50_000));
    let server = site.start(&[]);
    let port = server.port;
    let (head, _) = request(port, "HEAD", "/page.html", &[("Accept-Encoding", "gzip")]);
    let tag = must(&head, "etag").to_owned();
    // A cache that kept the variant revalidates before this server made it: 304, no body.
    let (r, _) = request(port, "GET", "/page.html", &[("Accept-Encoding", "gzip"), ("If-None-Match", &tag)]);
    assert_eq!((r.status, r.body.len(), must(&r, "vary")), (304, 0, "accept-encoding"));
    // Still not made: the next GET is the first, sent as it is made (chunked, no length).
    let r = get(port, "/page.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!(
        (r.status, r.header("content-length"), r.header("transfer-encoding")),
        (200, None, Some("chunked"))
    );
    let r = get(port, "/page.html", &[("Accept-Encoding", "gzip")]);
    assert!(r.header("content-length").is_some(), "then from the cache");
    assert_eq!(must(&r, "etag"), tag);
}
