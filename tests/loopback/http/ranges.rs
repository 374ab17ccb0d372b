//! Several byte ranges (issue 20 part 7): `multipart/byteranges` from memory, from a file
//! and from a compressed variant; the caps against the 2011 Apache "Range" DoS — at most
//! 16 ranges, overlapping ones merged, a reversed one voiding the header.

use graced_testsupport::site::Site;

use super::compression::html;
use super::{get, must, request};
use crate::GRACED;

/// The parts of a multipart/byteranges response: (Content-Range, Content-Type, bytes).
fn parts(r: &graced_testsupport::http::Response) -> Vec<(String, String, Vec<u8>)> {
    let ct = must(r, "content-type");
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap_or_else(|| panic!("{ct}"));
    let delimiter = format!("--{boundary}");
    let body = &r.body;
    assert_eq!(must(r, "content-length"), body.len().to_string());
    let find = |from: usize, needle: &[u8]| {
        body[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
    };
    let mut out = Vec::new();
    let mut at = find(0, delimiter.as_bytes()).expect("a first delimiter");
    assert_eq!(at, 0, "the body starts with the delimiter");
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--\r\n") {
            assert_eq!(at + 4, body.len(), "nothing after the close delimiter");
            return out;
        }
        let head_end = find(at, b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&body[at..head_end]).to_ascii_lowercase();
        let field = |name: &str| {
            head.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap_or_default()
        };
        let (range, ctype) = (field("content-range:"), field("content-type:"));
        let next = find(head_end, format!("\r\n{delimiter}").as_bytes()).expect("a next delimiter");
        out.push((range, ctype, body[head_end..next].to_vec()));
        at = next + 2;
    }
}

#[test]
fn several_ranges_are_multipart_from_memory_and_from_files() {
    let site = Site::new(GRACED);
    let small: Vec<u8> = (0..2000u32).map(|i| b'a' + (i % 26) as u8).collect();
    site.put("www/small.txt", &small);
    let big = site.write_big_file("www/big.bin", 300 * 1024, super::SEED);
    let server = site.start(&[]);
    let port = server.port;

    let r = get(port, "/small.txt", &[("Range", "bytes=0-9,500-599")]);
    assert_eq!(r.status, 206);
    assert!(r.header("content-range").is_none(), "the ranges are in the parts");
    let got = parts(&r);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("bytes 0-9/2000", "text/plain; charset=utf-8"));
    assert_eq!(got[0].2, small[..10]);
    assert_eq!((got[1].0.as_str(), got[1].2.as_slice()), ("bytes 500-599/2000", &small[500..600]));

    // From a file sent with sendfile otherwise; out of order: sorted; a suffix range.
    let n = big.len();
    let r = get(port, "/big.bin", &[("Range", "bytes=200000-200099,0-99,-100")]);
    assert_eq!(r.status, 206);
    let got = parts(&r);
    let want = [(0, 100), (200_000, 200_100), (n - 100, n)];
    assert_eq!(got.len(), 3);
    for ((range, _, bytes), (a, b)) in got.iter().zip(want) {
        assert_eq!(range, &format!("bytes {a}-{}/{n}", b - 1));
        assert_eq!(bytes.as_slice(), &big[a..b]);
    }

    // Overlapping ranges are merged: one range, no multipart.
    let r = get(port, "/small.txt", &[("Range", "bytes=0-99,50-149,100-120")]);
    assert_eq!((r.status, must(&r, "content-range")), (206, "bytes 0-149/2000"));
    assert_eq!(r.body, small[..150]);
    // The 2011 Apache DoS: the same whole range many times is one range, never 16 copies.
    let many = format!("bytes={}", vec!["0-"; 16].join(","));
    let r = get(port, "/big.bin", &[("Range", &many)]);
    assert_eq!((r.status, r.body.len()), (206, n), "no response longer than the file");
    // 16 distinct ranges are served; 17 are too many: the whole file, 200.
    let sixteen: Vec<String> = (0..16).map(|i| format!("{}-{}", i * 1000, i * 1000 + 9)).collect();
    let r = get(port, "/big.bin", &[("Range", &format!("bytes={}", sixteen.join(",")))]);
    assert_eq!((r.status, parts(&r).len()), (206, 16));
    let seventeen: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 1000, i * 1000 + 9)).collect();
    let r = get(port, "/big.bin", &[("Range", &format!("bytes={}", seventeen.join(",")))]);
    assert_eq!((r.status, r.body.len()), (200, n), "more than 16 ranges: the whole file");
    // A reversed range voids the header; unsatisfiable ones are dropped, all of them: 416.
    let r = get(port, "/small.txt", &[("Range", "bytes=0-9,30-20")]);
    assert_eq!((r.status, r.body.len()), (200, small.len()));
    let r = get(port, "/small.txt", &[("Range", "bytes=0-9,5000-")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &small[..10]));
    let r = get(port, "/small.txt", &[("Range", "bytes=5000-,6000-")]);
    assert_eq!((r.status, must(&r, "content-range")), (416, "bytes */2000"));
    let (r, _) = request(port, "HEAD", "/small.txt", &[("Range", "bytes=0-9,500-599")]);
    assert_eq!(r.status, 200, "HEAD ignores Range");
}

#[test]
fn several_ranges_of_a_compressed_variant_are_its_own_bytes() {
    let site = Site::new(GRACED);
    site.write_config("[site.compression]\non_the_fly = true\n");
    site.put("www/page.html", &html(50_000));
    let server = site.start(&[]);
    let port = server.port;
    // The first request makes the variant (its length unknown until then: no ranges).
    let first = get(port, "/page.html", &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9,1000-1009")]);
    assert_eq!((first.status, first.header("accept-ranges")), (200, None));
    let full = get(port, "/page.html", &[("Accept-Encoding", "gzip")]);
    let gz = full.body;
    let r = get(port, "/page.html", &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9,1000-1009")]);
    assert_eq!((r.status, must(&r, "content-encoding"), must(&r, "vary")), (206, "gzip", "accept-encoding"));
    let got = parts(&r);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0.clone(), got[0].2.as_slice()), (format!("bytes 0-9/{}", gz.len()), &gz[..10]));
    assert_eq!(got[1].2, gz[1000..1010]);
}
