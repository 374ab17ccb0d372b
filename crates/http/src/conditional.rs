//! Conditional requests and byte ranges, evaluated in the order RFC 9110 §13.2.2 gives.

use std::ops::Range;
use std::time::SystemTime;

use http::{HeaderMap, Method, header};

/// What to send for a GET or HEAD of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 200 with the whole representation.
    Full,
    /// 206 with this byte range.
    Partial(Range<u64>),
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
    /// 416.
    RangeNotSatisfiable,
}

/// Evaluates the request's preconditions and Range against a resource's validators.
pub(crate) fn evaluate(
    method: &Method,
    headers: &HeaderMap,
    etag: &str,
    modified: Option<SystemTime>,
    len: u64,
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
    if *method != Method::GET {
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
        RangeSpec::Bytes(r) => Outcome::Partial(r),
    }
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
    /// Not a single byte range we serve (syntax error, other unit, several ranges): send 200.
    Ignore,
    Unsatisfiable,
    Bytes(Range<u64>),
}

/// Parses a `Range` header for one byte range over a representation of `len` bytes.
fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.strip_prefix("bytes=") else { return RangeSpec::Ignore };
    if spec.contains(',') {
        // Several ranges would need multipart/byteranges; a server may ignore Range.
        return RangeSpec::Ignore;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeSpec::Ignore };
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => RangeSpec::Ignore,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if len == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Bytes(len.saturating_sub(n)..len),
        },
        (start, "") => match number(start) {
            None => RangeSpec::Ignore,
            Some(start) if start >= len => RangeSpec::Unsatisfiable,
            Some(start) => RangeSpec::Bytes(start..len),
        },
        (start, end) => match (number(start), number(end)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= len {
                    RangeSpec::Unsatisfiable
                } else {
                    RangeSpec::Bytes(start..end.min(len - 1) + 1)
                }
            }
            _ => RangeSpec::Ignore,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::Duration;

    const TAG: &str = "\"abc\"";

    fn eval(method: Method, pairs: &[(header::HeaderName, &str)], len: u64) -> Outcome {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        let modified = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        evaluate(&method, &headers, TAG, Some(modified), len)
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Bytes(0..10));
        assert_eq!(parse_range("bytes=90-", 100), RangeSpec::Bytes(90..100));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Bytes(90..100));
        assert_eq!(parse_range("bytes=-1000", 100), RangeSpec::Bytes(0..100));
        assert_eq!(parse_range("bytes=50-1000", 100), RangeSpec::Bytes(50..100));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=9-0", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=+1-2", 100), RangeSpec::Ignore);
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
