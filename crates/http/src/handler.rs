//! Request → response for a static site: limits, virtual host, HTTPS redirect, method, path,
//! file, preconditions; HSTS on HTTPS responses.

use std::borrow::Cow;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body::Body as _;

use crate::access_log::Entry;
use crate::body::Body;
use crate::conditional::{self, Outcome};
use crate::files::{self, Content, Lookup, Resource};
use crate::generation::{Counters, Generation};
use crate::path::{self, PathError};
use crate::scheme;

const SERVER: HeaderValue = HeaderValue::from_static(concat!("graced/", env!("CARGO_PKG_VERSION")));
const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");
const ACCEPT_RANGES: HeaderValue = HeaderValue::from_static("bytes");

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
    let mut response = respond(req, generation, host.as_deref(), site_index, tls, copy);
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

fn respond<B>(
    req: &Request<B>,
    generation: &Generation,
    host: Option<&str>,
    site_index: usize,
    tls: bool,
    copy: bool,
) -> Response<Body> {
    let config = &generation.config;
    let limits = &config.limits;
    let target_len = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    if target_len > limits.max_request_line {
        return error(StatusCode::URI_TOO_LONG);
    }
    let header_bytes: usize = req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if header_bytes > limits.max_header_bytes {
        return error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
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
        return error(StatusCode::BAD_REQUEST);
    }
    let site = &config.sites[site_index];
    if !tls
        && let Some(host) = host
        && scheme::redirects(site, req.uri().path())
    {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let Some(location) = scheme::https_location(config, host, target) else {
            return error(StatusCode::BAD_REQUEST);
        };
        let mut response = error(StatusCode::PERMANENT_REDIRECT);
        response.headers_mut().insert(header::LOCATION, location);
        return response;
    }
    match *req.method() {
        Method::GET | Method::HEAD => {}
        Method::OPTIONS => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response.headers_mut().insert(header::ALLOW, ALLOW);
            response.headers_mut().insert(header::SERVER, SERVER);
            return response;
        }
        _ => {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED);
            response.headers_mut().insert(header::ALLOW, ALLOW);
            return response;
        }
    }
    let safe = match path::resolve(req.uri().path(), site.hidden_files) {
        Ok(safe) => safe,
        Err(PathError::BadRequest) => return error(StatusCode::BAD_REQUEST),
        Err(PathError::EncodedSlash | PathError::Hidden) => return error(StatusCode::NOT_FOUND),
    };
    match files::lookup(site, &generation.roots[site_index], &safe) {
        Lookup::Found(resource) => serve(req, resource, copy),
        Lookup::AddSlash => redirect_with_slash(req),
        Lookup::NotFound => error(StatusCode::NOT_FOUND),
        Lookup::Forbidden => error(StatusCode::FORBIDDEN),
        Lookup::Unavailable => {
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Lookup::Failed => error(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// `copy`: the connection cannot `sendfile` (TLS): file bodies are read into memory.
fn serve<B>(req: &Request<B>, resource: Resource, copy: bool) -> Response<Body> {
    let outcome = conditional::evaluate(
        req.method(),
        req.headers(),
        resource.etag_str(),
        resource.modified,
        resource.len,
    );
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(header::SERVER, SERVER);
    validators(headers, &resource);
    let (status, range) = match outcome {
        Outcome::NotModified => {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return response;
        }
        Outcome::PreconditionFailed => return error(StatusCode::PRECONDITION_FAILED),
        Outcome::RangeNotSatisfiable => {
            let mut response = error(StatusCode::RANGE_NOT_SATISFIABLE);
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, header_value(format!("bytes */{}", resource.len)));
            return response;
        }
        Outcome::Full => (StatusCode::OK, 0..resource.len),
        Outcome::Partial(range) => (StatusCode::PARTIAL_CONTENT, range),
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, ACCEPT_RANGES);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(resource.content_type));
    if req.method() == Method::HEAD {
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
    let body = match resource.content {
        Content::Static(bytes) => Ok(Body::bytes(&bytes[range.start as usize..range.end as usize])),
        Content::Cached(bytes) => Ok(Body::bytes(bytes.slice(range.start as usize..range.end as usize))),
        Content::File(file) => Body::file(file, range.start, range.end - range.start, copy),
        Content::Open(file) => Body::open_file(file, range.start, range.end - range.start, copy),
    };
    match body {
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
    response.headers_mut().insert(header::LOCATION, header_value(location));
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

fn version_str(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
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
