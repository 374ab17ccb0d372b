//! Request → response for a static site: limits, virtual host, HTTPS redirect, method,
//! the site's redirects and access rules, path, file (`rules::tryfiles`), preconditions;
//! on the way out the site's error pages and header rules, and HSTS on HTTPS responses.

use std::borrow::Cow;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body::Body as _;

use crate::access_log::{Entry, version_str};
use crate::body::Body;
use crate::conditional::{self, Outcome};
use crate::files::{Content, Lookup, Resource, RootDir};
use crate::generation::{Counters, Generation};
use crate::multipart;
use crate::path::{self, PathError, SafePath};
use crate::rules::access::{self, Verdict};
use crate::rules::redirect::{self, Redirection};
use crate::rules::tryfiles::{self, Target};
use crate::rules::{errors, headers, listing};
use crate::scheme;
use crate::variant;
use graced_config::Site;

const SERVER: HeaderValue = HeaderValue::from_static(concat!("graced/", env!("CARGO_PKG_VERSION")));
const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");
const ACCEPT_RANGES: HeaderValue = HeaderValue::from_static("bytes");
const VARY_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");

/// Serves one request with `generation` and logs it; `tls`: it came over HTTPS; `copy`:
/// file bodies are read into memory (TLS, HTTP/2), not sent with `sendfile`.
pub(crate) fn handle<B>(
    req: &Request<B>,
    generation: &Generation,
    counters: &Counters,
    remote: &str,
    tls: bool,
    copy: bool,
) -> Response<Body> {
    let host = request_host(req);
    let site_index = generation.config.site_index_for_host(host.as_deref());
    let site = &generation.config.sites[site_index];
    let answer = respond(req, generation, host.as_deref(), site_index, remote, tls, copy);
    let mut response = answer.response;
    error_page(req, site, &generation.roots[site_index], &mut response, copy);
    let status = response.status();
    headers::apply(
        &site.rules,
        answer.path.as_deref().unwrap_or(req.uri().path()),
        status,
        response.headers_mut(),
    );
    if answer.fallback {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if tls && let Some(hsts) = scheme::hsts(&generation.config.sites[site_index]) {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    // A HEAD response's body is empty; a GET body's length is what hyper sends as Content-Length.
    let body_len = response.body().size_hint().exact().unwrap_or(0);
    counters.tally.count(response.status().as_u16(), body_len);
    if generation.access_log.is_off() {
        return response;
    }
    let bytes = match req.method() {
        &Method::HEAD => None,
        _ => response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .or_else(|| matches!(response.status().as_u16(), 200 | 206).then_some(body_len)),
    };
    let headers = req.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let pending = generation.access_log.begin(&Entry {
        remote,
        method: req.method().as_str(),
        target: req.uri().path_and_query().map_or("/", |p| p.as_str()),
        version: version_str(req.version()),
        status: response.status().as_u16(),
        bytes,
        referer: text(header::REFERER),
        user_agent: text(header::USER_AGENT),
        host: host.as_deref(),
        generation: generation.id,
        tls,
    });
    // Written when the request ends (its guard takes it from here), with its duration.
    if let Some(pending) = pending {
        response.extensions_mut().insert(pending);
    }
    response
}

/// A response and what the way out needs to know of it.
struct Answer {
    response: Response<Body>,
    /// The resolved file's path (or the request's), for the header rules; `None`: the raw
    /// request path (also when the site has no header rules, which need none).
    path: Option<String>,
    /// The SPA fallback answered (`Cache-Control: no-cache`, whatever the rules say).
    fallback: bool,
}

impl From<Response<Body>> for Answer {
    fn from(response: Response<Body>) -> Answer {
        Answer { response, path: None, fallback: false }
    }
}

fn respond<B>(
    req: &Request<B>,
    generation: &Generation,
    host: Option<&str>,
    site_index: usize,
    remote: &str,
    tls: bool,
    copy: bool,
) -> Answer {
    let config = &generation.config;
    let limits = &config.limits;
    let target_len = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    if target_len > limits.max_request_line {
        return error(StatusCode::URI_TOO_LONG).into();
    }
    let header_bytes: usize = req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if header_bytes > limits.max_header_bytes {
        return error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).into();
    }
    // RFC 9112 §3.2: a 1.1 request without Host (or with several) is a bad request.
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host_count = match (hosts.next(), hosts.next()) {
        (None, _) => 0,
        (Some(_), None) => 1,
        _ => 2,
    };
    if host_count > 1 || (req.version() == Version::HTTP_11 && host_count == 0 && req.uri().host().is_none())
    {
        return error(StatusCode::BAD_REQUEST).into();
    }
    let site = &config.sites[site_index];
    if let Some(mut answer) = crate::challenge::answer(config, site, req.method(), req.uri().path()) {
        answer.headers_mut().insert(header::SERVER, SERVER);
        return answer.into();
    }
    if !tls
        && let Some(host) = host
        && scheme::redirects(site, req.uri().path())
    {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let Some(location) = scheme::https_location(config, host, target) else {
            return error(StatusCode::BAD_REQUEST).into();
        };
        let mut response = error(StatusCode::PERMANENT_REDIRECT);
        response.headers_mut().insert(header::LOCATION, location);
        return response.into();
    }
    match *req.method() {
        Method::GET | Method::HEAD => {}
        Method::OPTIONS => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response.headers_mut().insert(header::ALLOW, ALLOW);
            response.headers_mut().insert(header::SERVER, SERVER);
            return response.into();
        }
        _ => {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED);
            response.headers_mut().insert(header::ALLOW, ALLOW);
            return response.into();
        }
    }
    let authority = req.uri().authority().map(|a| a.as_str());
    let authority = authority.or_else(|| req.headers().get(header::HOST)?.to_str().ok());
    let redirection = redirect::canonical(site, host, authority, req.uri(), tls)
        .or_else(|| redirect::find(&site.rules.redirects, req.uri()));
    if let Some(Redirection { status, location }) = redirection {
        let mut response = error(status);
        response.headers_mut().insert(header::LOCATION, location);
        return response.into();
    }
    let safe = match path::resolve(req.uri().path(), site.hidden_files) {
        Ok(safe) => safe,
        Err(PathError::BadRequest) => return error(StatusCode::BAD_REQUEST).into(),
        Err(PathError::EncodedSlash | PathError::Hidden) => return error(StatusCode::NOT_FOUND).into(),
    };
    // The paths the rules match are built only for a site that has such rules.
    let guarded = !site.rules.access.is_empty();
    let refuse = |path: &SafePath| {
        let verdict = access::check(&site.rules.access, &tryfiles::display(path), remote, req.headers());
        refusal(verdict)
    };
    let rule_path = |path: &SafePath| (!site.rules.headers.is_empty()).then(|| tryfiles::display(path));
    if guarded && let Some(response) = refuse(&safe) {
        return Answer { response, path: rule_path(&safe), fallback: false };
    }
    let root = &generation.roots[site_index];
    let found = tryfiles::lookup(site, root, &safe, req.method(), req.headers());
    if guarded
        && let Some(resolved) = &found.resolved
        && let Some(response) = refuse(resolved)
    {
        return Answer { response, path: rule_path(&safe), fallback: false };
    }
    // The file that answers (an index file, a clean URL's `.html`, the fallback): its
    // sidecars sit beside it.
    let served = found.resolved.as_ref().unwrap_or(&safe);
    let mut response = match found.target {
        Target::Listing(dir) => list(req, site, &dir, &tryfiles::display(&safe)),
        Target::Lookup(Lookup::Found(resource)) => serve(req, site, root, served, resource, copy),
        Target::Lookup(Lookup::AddSlash) => redirect_with_slash(req),
        Target::Lookup(Lookup::NotFound) => error(StatusCode::NOT_FOUND),
        Target::Lookup(Lookup::Forbidden) => error(StatusCode::FORBIDDEN),
        Target::Lookup(Lookup::Unavailable) => {
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Target::Lookup(Lookup::Failed) => error(StatusCode::INTERNAL_SERVER_ERROR),
    };
    if found.vary_accept {
        response.headers_mut().append(header::VARY, HeaderValue::from_static("Accept"));
    }
    Answer { response, path: rule_path(served), fallback: found.fallback }
}

/// The response of an access verdict other than [`Verdict::Pass`].
fn refusal(verdict: Verdict) -> Option<Response<Body>> {
    match verdict {
        Verdict::Pass => None,
        Verdict::Forbidden => Some(error(StatusCode::FORBIDDEN)),
        Verdict::Unauthorized(realm) => {
            let mut response = error(StatusCode::UNAUTHORIZED);
            let challenge = format!("Basic realm=\"{realm}\", charset=\"UTF-8\"");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header_value(challenge));
            Some(response)
        }
        Verdict::Busy => {
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Some(response)
        }
    }
}

/// A directory listing (`Vary: Accept` is added by the caller).
fn list<B>(req: &Request<B>, site: &Site, dir: &std::fs::File, path: &str) -> Response<Body> {
    let max = site.rules.listing.as_ref().map_or(0, |l| l.max_entries);
    let page = match listing::render(dir, path, req.headers(), max, site.hidden_files) {
        Ok(page) => page,
        Err(err) => {
            tracing::warn!(error = %err, path, "listing a directory failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(header::SERVER, SERVER);
    headers.insert(header::ETAG, header_value(page.etag.clone()));
    if page.not_modified(req.headers()) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(page.content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(page.body.len()));
    if req.method() != Method::HEAD {
        *response.body_mut() = Body::bytes(page.body);
    }
    response
}

/// Replaces the small built-in page of an error response (≥ 400) by the site's error page
/// for its status, keeping the status and the other headers; HEAD gets the same headers.
fn error_page<B>(req: &Request<B>, site: &Site, root: &RootDir, response: &mut Response<Body>, copy: bool) {
    let status = response.status().as_u16();
    if status < 400 || site.rules.error_pages.is_empty() {
        return;
    }
    let Some(page) = errors::page(site, root, status) else { return };
    let (len, content_type) = (page.len, page.content_type);
    let body =
        if req.method() == Method::HEAD { Ok(Body::empty()) } else { body_of(page.content, 0..len, copy) };
    let Ok(body) = body else { return };
    *response.body_mut() = body;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
}

/// Serves `resource`, which `path` resolved to in `site` (whose root is `root`), in the
/// representation `variant` chooses. `copy`: the connection cannot `sendfile` (TLS): file
/// bodies are read into memory.
fn serve<B>(
    req: &Request<B>,
    site: &Site,
    root: &RootDir,
    path: &SafePath,
    resource: Resource,
    copy: bool,
) -> Response<Body> {
    let chosen = variant::choose(req.method(), req.headers(), site, root, path, resource);
    let resource = chosen.resource;
    let outcome = conditional::evaluate(
        req.method(),
        req.headers(),
        resource.etag_str(),
        resource.modified,
        resource.len,
        !chosen.unknown_len,
    );
    let vary = |mut response: Response<Body>| {
        if chosen.negotiable {
            response.headers_mut().insert(header::VARY, VARY_ENCODING);
        }
        response
    };
    let mut response = vary(Response::new(Body::empty()));
    let headers = response.headers_mut();
    headers.insert(header::SERVER, SERVER);
    validators(headers, &resource);
    let (status, range) = match outcome {
        Outcome::NotModified => {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return response;
        }
        Outcome::PreconditionFailed => return vary(error(StatusCode::PRECONDITION_FAILED)),
        Outcome::RangeNotSatisfiable => {
            let mut response = vary(error(StatusCode::RANGE_NOT_SATISFIABLE));
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, header_value(format!("bytes */{}", resource.len)));
            return response;
        }
        Outcome::Full => (StatusCode::OK, 0..resource.len),
        Outcome::Partial(range) => (StatusCode::PARTIAL_CONTENT, range),
        Outcome::Multi(ranges) => {
            let (content_type, body) =
                multipart::body(&ranges, resource.len, resource.content_type, resource.content);
            let headers = response.headers_mut();
            headers.insert(header::ACCEPT_RANGES, ACCEPT_RANGES);
            headers.insert(header::CONTENT_TYPE, header_value(content_type));
            if let Some(encoding) = chosen.encoding {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
            }
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            *response.body_mut() = body;
            return response;
        }
    };
    let headers = response.headers_mut();
    if !chosen.unknown_len {
        headers.insert(header::ACCEPT_RANGES, ACCEPT_RANGES);
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(resource.content_type));
    if let Some(encoding) = chosen.encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
    }
    if req.method() == Method::HEAD && !chosen.unknown_len {
        // With a body, hyper writes Content-Length from the body's exact length.
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {}-{}/{}", range.start, range.end - 1, resource.len);
        headers.insert(header::CONTENT_RANGE, header_value(value));
    }
    *response.status_mut() = status;
    if req.method() == Method::HEAD {
        return response;
    }
    if let Some(pending) = chosen.body {
        *response.body_mut() = Body::deferred(pending);
        return response;
    }
    if chosen.unknown_len {
        // Only a revalidation that matched has no variant body, and it was answered above.
        return error(StatusCode::INTERNAL_SERVER_ERROR);
    }
    match body_of(resource.content, range, copy) {
        Ok(body) => {
            *response.body_mut() = body;
            response
        }
        Err(err) => {
            tracing::warn!(error = %err, path = req.uri().path(), "reading a file failed");
            error(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The body of `range` of `content`; `copy`: no `sendfile` (TLS, HTTP/2).
fn body_of(content: Content, range: std::ops::Range<u64>, copy: bool) -> std::io::Result<Body> {
    match content {
        Content::Static(bytes) => Ok(Body::bytes(&bytes[range.start as usize..range.end as usize])),
        Content::Cached(bytes) => Ok(Body::bytes(bytes.slice(range.start as usize..range.end as usize))),
        Content::File(file) => Body::file(file, range.start, range.end - range.start, copy),
        Content::Open(file) => Body::open_file(file, range.start, range.end - range.start, copy),
    }
}

fn validators(headers: &mut HeaderMap, resource: &Resource) {
    headers.insert(header::ETAG, resource.etag.clone());
    match (&resource.last_modified, resource.modified) {
        (Some(formatted), _) => {
            headers.insert(header::LAST_MODIFIED, formatted.clone());
        }
        (None, Some(modified)) => {
            // Never claim a modification time in the future (RFC 9110 §8.8.2.1).
            let modified = modified.min(SystemTime::now());
            headers.insert(header::LAST_MODIFIED, header_value(httpdate::fmt_http_date(modified)));
        }
        (None, None) => {}
    }
}

fn redirect_with_slash<B>(req: &Request<B>) -> Response<Body> {
    let mut location = format!("{}/", req.uri().path());
    if let Some(query) = req.uri().query() {
        location.push('?');
        location.push_str(query);
    }
    let mut response = error(StatusCode::MOVED_PERMANENTLY);
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, header_value(location));
    // It follows the file system (the directory may become a file): cached for an hour
    // at most, not for a cache's heuristic lifetime (a site's header rules may say otherwise).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    response
}

/// A small HTML error page.
pub(crate) fn error(status: StatusCode) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<!doctype html>\n<html><head><title>{code} {reason}</title></head>\
         <body><h1>{code} {reason}</h1></body></html>\n",
        code = status.as_u16()
    );
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::SERVER, SERVER);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(page.len()));
    *response.body_mut() = Body::bytes(page);
    response
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The request's host, lower-cased, without port or trailing dot: from an absolute-form
/// target if there is one (RFC 9112 §3.2.2), else from the Host header.
fn request_host<B>(req: &Request<B>) -> Option<Cow<'_, str>> {
    let raw = match req.uri().host() {
        Some(host) => host,
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port → [v6]
        let end = rest.find(']')?;
        &raw[..end + 2]
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let host = host.trim_end_matches('.');
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(uri: &str, host: Option<&str>) -> Option<String> {
        let mut builder = Request::builder().uri(uri);
        if let Some(h) = host {
            builder = builder.header(header::HOST, h);
        }
        request_host(&builder.body(()).unwrap()).map(Cow::into_owned)
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(host_of("/", Some("Example.ORG:8080")).as_deref(), Some("example.org"));
        assert_eq!(host_of("/", Some("example.org.")).as_deref(), Some("example.org"));
        assert_eq!(host_of("/", Some("[::1]:80")).as_deref(), Some("[::1]"));
        assert_eq!(host_of("http://a.example/x", Some("b.example")).as_deref(), Some("a.example"));
        assert_eq!(host_of("/", None), None);
    }
}
