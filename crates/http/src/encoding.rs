//! Content codings and `Accept-Encoding` negotiation with q-values (RFC 9110 §12.5.3).
//!
//! Written by hand: the rule is twenty lines, and the crates that parse the header
//! (headers, http-content-negotiation) either drop q=0 or bring a framework.

use http::{HeaderMap, header};

/// A content coding graced sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Encoding {
    Br,
    Zstd,
    Gzip,
}

impl Encoding {
    /// By its configuration name (the configuration's `encodings`).
    pub(crate) fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "br" => Some(Encoding::Br),
            "zstd" => Some(Encoding::Zstd),
            "gzip" => Some(Encoding::Gzip),
            _ => None,
        }
    }

    /// The `Content-Encoding` token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// The file-name suffix of a precompressed sidecar.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Encoding::Br => ".br",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
        }
    }
}

/// The q-value (in thousandths) the request's `Accept-Encoding` gives a coding, and
/// identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Weights {
    /// br, zstd, gzip.
    codings: [u16; 3],
    /// Identity's weight *as the client stated it* (its own entry, else `*`'s; else 0): a
    /// coding weighted lower than that is not preferred to identity.
    identity: u16,
}

fn slot(e: Encoding) -> usize {
    match e {
        Encoding::Br => 0,
        Encoding::Zstd => 1,
        Encoding::Gzip => 2,
    }
}

/// Parses every `Accept-Encoding` line. No header: only identity (a client that sends none
/// may not decode anything). An entry's own q beats `*`'s; a coding not named (and no `*`)
/// is not acceptable.
fn weights(headers: &HeaderMap) -> Weights {
    let mut named: [Option<u16>; 3] = [None; 3];
    let (mut identity, mut star) = (None, None);
    let mut any = false;
    for line in headers.get_all(header::ACCEPT_ENCODING) {
        any = true;
        let Ok(line) = line.to_str() else { continue };
        for item in line.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            let mut q = 1000;
            for param in parts {
                if let Some((k, v)) = param.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = parse_q(v.trim()).unwrap_or(0);
                }
            }
            let target = if coding.eq_ignore_ascii_case("identity") {
                &mut identity
            } else if coding == "*" {
                &mut star
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                &mut named[2]
            } else if coding.eq_ignore_ascii_case("br") {
                &mut named[0]
            } else if coding.eq_ignore_ascii_case("zstd") {
                &mut named[1]
            } else {
                continue;
            };
            // The same coding twice: the higher weight.
            *target = Some(target.map_or(q, |old: u16| old.max(q)));
        }
    }
    if !any {
        return Weights { codings: [0; 3], identity: 1000 };
    }
    let codings = named.map(|q| q.or(star).unwrap_or(0));
    Weights { codings, identity: identity.or(star).unwrap_or(0) }
}

/// A q-value (`0`, `0.5`, `1.000`…) in thousandths; `None` when malformed.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The coding to send, among `offered` (the server's order of preference), for a request:
/// the one with the highest q-value above zero, ties to the earlier in `offered`; `None`
/// (identity) when none is acceptable or identity is weighted higher than all of them.
/// (When identity is refused too, identity is still sent: RFC 9110 §12.5.3 allows it and
/// a 406 for a static file helps no one.)
pub(crate) fn choose(headers: &HeaderMap, offered: &[Encoding]) -> Option<Encoding> {
    if offered.is_empty() || !headers.contains_key(header::ACCEPT_ENCODING) {
        return None;
    }
    let w = weights(headers);
    let mut best: Option<(Encoding, u16)> = None;
    for &e in offered {
        let q = w.codings[slot(e)];
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((e, q));
        }
    }
    best.filter(|(_, q)| *q >= w.identity).map(|(e, _)| e)
}

/// The acceptable codings of `offered`, best first (for trying sidecars in turn); on the
/// stack, as this runs for every request of a negotiable file.
pub(crate) fn acceptable(headers: &HeaderMap, offered: &[Encoding]) -> impl Iterator<Item = Encoding> {
    let mut list = [(usize::MAX, Encoding::Gzip, 0u16); 3];
    let mut n = 0;
    if !offered.is_empty() && headers.contains_key(header::ACCEPT_ENCODING) {
        let w = weights(headers);
        for (i, &e) in offered.iter().enumerate() {
            let q = w.codings[slot(e)];
            if q > 0 && q >= w.identity && n < list.len() {
                list[n] = (i, e, q);
                n += 1;
            }
        }
        // The keys are distinct (by position), so an unstable sort is exact, and needs no buffer.
        list[..n].sort_unstable_by_key(|(i, _, q)| (std::cmp::Reverse(*q), *i));
    }
    list.into_iter().take(n).map(|(_, e, _)| e)
}

/// The codings `names` (the configuration's `encodings`, checked at load: known, each once)
/// name, in their order, without allocating.
pub(crate) fn offered(names: &[String]) -> ([Encoding; 3], usize) {
    let mut list = [Encoding::Gzip; 3];
    let mut n = 0;
    for e in names.iter().filter_map(|name| Encoding::from_name(name)) {
        if n < list.len() {
            list[n] = e;
            n += 1;
        }
    }
    (list, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const ALL: [Encoding; 3] = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];

    fn pick(value: Option<&str>, offered: &[Encoding]) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        choose(&headers, offered)
    }

    #[test]
    fn q_values_choose_the_coding() {
        use Encoding::*;
        assert_eq!(pick(None, &ALL), None, "no header: identity");
        assert_eq!(pick(Some(""), &ALL), None, "empty: identity only");
        assert_eq!(pick(Some("gzip"), &ALL), Some(Gzip));
        assert_eq!(pick(Some("x-gzip"), &ALL), Some(Gzip));
        assert_eq!(pick(Some("gzip, deflate, br, zstd"), &ALL), Some(Br), "a tie goes to the server's order");
        assert_eq!(pick(Some("gzip, br;q=0.5"), &ALL), Some(Gzip));
        assert_eq!(pick(Some("br;q=0, gzip;q=0.1"), &ALL), Some(Gzip), "q=0 refuses");
        assert_eq!(pick(Some("br;q=0"), &ALL), None);
        assert_eq!(pick(Some("*"), &ALL), Some(Br));
        assert_eq!(pick(Some("*;q=0.5, br;q=0"), &ALL), Some(Zstd), "a named entry beats *");
        assert_eq!(pick(Some("gzip;q=0.5, identity"), &ALL), None, "identity weighted higher");
        assert_eq!(
            pick(Some("gzip;q=0.5, identity;q=0.5"), &ALL),
            Some(Gzip),
            "a tie with identity compresses"
        );
        assert_eq!(pick(Some("gzip;q=1.5"), &ALL), None, "a malformed q is 0");
        assert_eq!(pick(Some("GZIP;Q=0.8"), &ALL), Some(Gzip), "case-insensitive");
        assert_eq!(pick(Some("br"), &[Gzip]), None, "only what is offered");
        assert_eq!(pick(Some("deflate"), &ALL), None);
    }

    #[test]
    fn acceptable_lists_best_first() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, br;q=0.9, zstd;q=0"));
        assert_eq!(acceptable(&headers, &ALL).collect::<Vec<_>>(), vec![Encoding::Gzip, Encoding::Br]);
    }
}
