//! Conditional requests and byte ranges, evaluated in the order RFC 9110 §13.2.2 gives.
//!
//! Several ranges (`bytes=0-9,20-29`) are answered with `multipart/byteranges`, with the
//! guards Apache added after its 2011 "Range" DoS (CVE-2011-3192): at most [`MAX_RANGES`]
//! ranges (more: the whole representation, 200), a reversed or malformed range voids the
//! header (200), and overlapping or nearly adjacent ranges are merged in ascending order
//! (RFC 9110 §15.3.7.2 allows it), so no response is longer than the representation plus
//! the part headers.

use std::ops::Range;
use std::time::SystemTime;

/// Range specs one `Range` header may hold; beyond it the header is ignored (nginx's
/// `max_ranges`, Apache's `MaxRanges`).
pub(crate) const MAX_RANGES: usize = 16;
/// Ranges closer than this many bytes are merged: a part's headers cost about as much.
const MERGE_GAP: u64 = 80;

use http::{HeaderMap, Method, header};

/// What to send for a GET or HEAD of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 200 with the whole representation.
    Full,
    /// 206 with this byte range.
    Partial(Range<u64>),
    /// 206 with these byte ranges (sorted, disjoint, at least two) as multipart/byteranges.
    Multi(Vec<Range<u64>>),
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
    /// 416.
    RangeNotSatisfiable,
}

/// Evaluates the request's preconditions and Range against a resource's validators.
/// `ranges`: whether Range is honoured at all (not for a body whose length is not known yet).
pub(crate) fn evaluate(
    method: &Method,
    headers: &HeaderMap,
    etag: &str,
    modified: Option<SystemTime>,
    len: u64,
    ranges: bool,
) -> Outcome {
    // Most requests carry none of the headers below: one pass over the names decides.
    let relevant = headers.keys().any(|name| {
        name == header::IF_MATCH
            || name == header::IF_NONE_MATCH
            || name == header::IF_MODIFIED_SINCE
            || name == header::IF_UNMODIFIED_SINCE
            || name == header::RANGE
    });
    if !relevant {
        return Outcome::Full;
    }
    let modified = modified.map(truncate_to_seconds);
    // Step 1-2: If-Match, else If-Unmodified-Since.
    if let Some(value) = text(headers, header::IF_MATCH) {
        if !etag_list_matches(value, etag, Comparison::Strong) {
            return Outcome::PreconditionFailed;
        }
    } else if let (Some(since), Some(modified)) = (date(headers, header::IF_UNMODIFIED_SINCE), modified)
        && modified > since
    {
        return Outcome::PreconditionFailed;
    }
    // Step 3-4: If-None-Match, else If-Modified-Since (GET and HEAD only).
    let get_or_head = *method == Method::GET || *method == Method::HEAD;
    if let Some(value) = text(headers, header::IF_NONE_MATCH) {
        if etag_list_matches(value, etag, Comparison::Weak) {
            return if get_or_head { Outcome::NotModified } else { Outcome::PreconditionFailed };
        }
    } else if let (true, Some(since), Some(modified)) =
        (get_or_head, date(headers, header::IF_MODIFIED_SINCE), modified)
        && modified <= since
    {
        return Outcome::NotModified;
    }
    // Step 5: Range, guarded by If-Range.
    if *method != Method::GET || !ranges {
        return Outcome::Full;
    }
    let Some(range) = text(headers, header::RANGE) else { return Outcome::Full };
    if let Some(if_range) = text(headers, header::IF_RANGE) {
        let still_valid = if if_range.starts_with('"') {
            // A strong comparison: weak tags never match.
            if_range == etag
        } else {
            match (httpdate::parse_http_date(if_range).ok(), modified) {
                (Some(date), Some(modified)) => modified == date,
                _ => false,
            }
        };
        if !still_valid {
            return Outcome::Full;
        }
    }
    match parse_range(range, len) {
        RangeSpec::Ignore => Outcome::Full,
        RangeSpec::Unsatisfiable => Outcome::RangeNotSatisfiable,
        RangeSpec::Bytes(mut r) if r.len() == 1 => Outcome::Partial(r.remove(0)),
        RangeSpec::Bytes(r) => Outcome::Multi(r),
    }
}

/// Whether `If-None-Match` names `etag` (weak comparison): then a GET or HEAD is answered
/// 304 (or 412, by an earlier precondition) and needs no body.
pub(crate) fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    text(headers, header::IF_NONE_MATCH).is_some_and(|list| etag_list_matches(list, etag, Comparison::Weak))
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    text(headers, name).and_then(|v| httpdate::parse_http_date(v).ok())
}

fn truncate_to_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// How two entity tags are compared (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Weak tags never match (If-Match).
    Strong,
    /// A weak tag matches its strong twin (If-None-Match).
    Weak,
}

/// `*` or a comma-separated list of entity tags, compared with `etag` by `comparison`.
fn etag_list_matches(list: &str, etag: &str, comparison: Comparison) -> bool {
    if list == "*" {
        return true;
    }
    list.split(',').map(str::trim).any(|candidate| {
        let (weak, tag) = match candidate.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, candidate),
        };
        tag == etag && !(comparison == Comparison::Strong && weak)
    })
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Not byte ranges we serve (syntax error, a reversed range, other unit, more than
    /// [`MAX_RANGES`]): send 200.
    Ignore,
    Unsatisfiable,
    /// Sorted, disjoint (merged), non-empty.
    Bytes(Vec<Range<u64>>),
}

/// Parses a `Range` header over a representation of `len` bytes.
fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.strip_prefix("bytes=") else { return RangeSpec::Ignore };
    let mut ranges = Vec::new();
    for (i, one) in spec.split(',').enumerate() {
        if i >= MAX_RANGES {
            return RangeSpec::Ignore;
        }
        match parse_one(one, len) {
            One::Ignore => return RangeSpec::Ignore,
            One::Unsatisfiable => {}
            One::Bytes(r) => ranges.push(r),
        }
    }
    if ranges.is_empty() {
        return RangeSpec::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(MERGE_GAP) => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    RangeSpec::Bytes(merged)
}

enum One {
    Ignore,
    Unsatisfiable,
    Bytes(Range<u64>),
}

/// One range spec (`first-last`, `first-`, `-suffix`).
fn parse_one(spec: &str, len: u64) -> One {
    let Some((first, last)) = spec.trim().split_once('-') else { return One::Ignore };
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => One::Ignore,
            Some(0) => One::Unsatisfiable,
            Some(_) if len == 0 => One::Unsatisfiable,
            Some(n) => One::Bytes(len.saturating_sub(n)..len),
        },
        (start, "") => match number(start) {
            None => One::Ignore,
            Some(start) if start >= len => One::Unsatisfiable,
            Some(start) => One::Bytes(start..len),
        },
        (start, end) => match (number(start), number(end)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= len {
                    One::Unsatisfiable
                } else {
                    One::Bytes(start..end.min(len - 1) + 1)
                }
            }
            _ => One::Ignore,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::Duration;

    const TAG: &str = "\"abc\"";

    /// One range (clippy takes `vec![a..b]` for a mistaken `(a..b).collect()`).
    fn one(r: Range<u64>) -> RangeSpec {
        RangeSpec::Bytes(std::iter::once(r).collect())
    }

    fn eval(method: Method, pairs: &[(header::HeaderName, &str)], len: u64) -> Outcome {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        let modified = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        evaluate(&method, &headers, TAG, Some(modified), len, true)
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), one(0..10));
        assert_eq!(parse_range("bytes=90-", 100), one(90..100));
        assert_eq!(parse_range("bytes=-10", 100), one(90..100));
        assert_eq!(parse_range("bytes=-1000", 100), one(0..100));
        assert_eq!(parse_range("bytes=50-1000", 100), one(50..100));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=9-0", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=+1-2", 100), RangeSpec::Ignore);
    }

    #[test]
    fn several_ranges_are_capped_merged_and_sorted() {
        let len = 10_000;
        assert_eq!(parse_range("bytes=0-9,500-599", len), RangeSpec::Bytes(vec![0..10, 500..600]));
        // Given out of order: sorted.
        assert_eq!(parse_range("bytes=500-599, 0-9", len), RangeSpec::Bytes(vec![0..10, 500..600]));
        // Overlapping, repeated, or closer than the merge gap: one range.
        assert_eq!(parse_range("bytes=0-99,50-149,0-99", len), one(0..150));
        assert_eq!(parse_range("bytes=0-9,20-29", len), one(0..30));
        assert_eq!(parse_range("bytes=-100,0-", len), one(0..len));
        // The 2011 Apache DoS: many overlapping ranges never add up to more than the file.
        let many = vec!["0-"; MAX_RANGES].join(",");
        assert_eq!(parse_range(&format!("bytes={many}"), len), one(0..len));
        let too_many = vec!["0-"; MAX_RANGES + 1].join(",");
        assert_eq!(parse_range(&format!("bytes={too_many}"), len), RangeSpec::Ignore);
        // A reversed or malformed spec voids the header; unsatisfiable ones are dropped.
        assert_eq!(parse_range("bytes=0-9,30-20", len), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=0-9,x", len), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=0-9,20000-", len), one(0..10));
        assert_eq!(parse_range("bytes=20000-,30000-", len), RangeSpec::Unsatisfiable);
        use header::RANGE;
        assert_eq!(
            eval(Method::GET, &[(RANGE, "bytes=0-1,200-300")], 1000),
            Outcome::Multi(vec![0..2, 200..301])
        );
        assert_eq!(eval(Method::GET, &[(RANGE, "bytes=0-1,2-3")], 1000), Outcome::Partial(0..4));
    }

    #[test]
    fn preconditions_in_rfc_order() {
        use header::*;
        assert_eq!(eval(Method::GET, &[(IF_NONE_MATCH, TAG)], 10), Outcome::NotModified);
        assert_eq!(eval(Method::GET, &[(IF_NONE_MATCH, "W/\"abc\"")], 10), Outcome::NotModified);
        assert_eq!(eval(Method::GET, &[(IF_NONE_MATCH, "\"x\", \"abc\"")], 10), Outcome::NotModified);
        assert_eq!(eval(Method::GET, &[(IF_NONE_MATCH, "\"x\"")], 10), Outcome::Full);
        assert_eq!(eval(Method::GET, &[(IF_NONE_MATCH, "*")], 10), Outcome::NotModified);
        // If-None-Match wins over If-Modified-Since.
        let later = "Wed, 01 Jan 2031 00:00:00 GMT";
        let earlier = "Wed, 01 Jan 2020 00:00:00 GMT";
        assert_eq!(
            eval(Method::GET, &[(IF_NONE_MATCH, "\"x\""), (IF_MODIFIED_SINCE, later)], 10),
            Outcome::Full
        );
        assert_eq!(eval(Method::GET, &[(IF_MODIFIED_SINCE, later)], 10), Outcome::NotModified);
        // The resource's sub-second mtime is truncated: the exact Last-Modified matches.
        let exact = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(eval(Method::HEAD, &[(IF_MODIFIED_SINCE, &exact)], 10), Outcome::NotModified);
        assert_eq!(eval(Method::GET, &[(IF_MODIFIED_SINCE, earlier)], 10), Outcome::Full);
        assert_eq!(eval(Method::GET, &[(IF_MATCH, "\"x\"")], 10), Outcome::PreconditionFailed);
        assert_eq!(eval(Method::GET, &[(IF_MATCH, "W/\"abc\"")], 10), Outcome::PreconditionFailed);
        assert_eq!(eval(Method::GET, &[(IF_UNMODIFIED_SINCE, earlier)], 10), Outcome::PreconditionFailed);
        assert_eq!(eval(Method::GET, &[(IF_UNMODIFIED_SINCE, later)], 10), Outcome::Full);
    }

    #[test]
    fn if_range_guards_the_range() {
        use header::*;
        assert_eq!(eval(Method::GET, &[(RANGE, "bytes=0-1")], 10), Outcome::Partial(0..2));
        assert_eq!(eval(Method::HEAD, &[(RANGE, "bytes=0-1")], 10), Outcome::Full);
        assert_eq!(eval(Method::GET, &[(RANGE, "bytes=0-1"), (IF_RANGE, TAG)], 10), Outcome::Partial(0..2));
        assert_eq!(eval(Method::GET, &[(RANGE, "bytes=0-1"), (IF_RANGE, "\"old\"")], 10), Outcome::Full);
        assert_eq!(eval(Method::GET, &[(RANGE, "bytes=0-1"), (IF_RANGE, "W/\"abc\"")], 10), Outcome::Full);
        assert_eq!(eval(Method::GET, &[(RANGE, "bytes=20-")], 10), Outcome::RangeNotSatisfiable);
    }
}
