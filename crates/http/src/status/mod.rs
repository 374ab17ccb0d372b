//! The status endpoint, served on the listeners the configuration marks `status = true`
//! and on no other: `/` a page for people, `/status.json` the same for programs,
//! `/metrics` Prometheus text. Each connection answers one request (`Connection: close`),
//! so a graceful stop never waits on an idle scraper; a stop aborts it.
//!
//! Files: `tally` (the per-thread request counters; a leaf), `report` (what the
//! supervisor adds; a leaf), `snapshot` → `tally`, `report` and the crate's `shared`;
//! `page`, `json`, `prometheus` → `snapshot` (and `tally`'s buckets). This file →
//! `snapshot`, `page`, `json`, `prometheus` and the crate's `body`, `shared`, `listener`.

pub(crate) mod json;
pub(crate) mod page;
pub(crate) mod prometheus;
pub(crate) mod report;
pub(crate) mod snapshot;
pub(crate) mod tally;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::body::Body;
use crate::listener::Stream;
use crate::shared::{Shared, Subscription};
use crate::status::snapshot::Snapshot;

/// A status connection's whole life at most: a scraper that stalls is cut off.
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

/// Serves one status request on `stream`, then closes it.
pub(crate) async fn serve(stream: Stream, shared: Arc<Shared>, orders: Subscription) {
    shared.status_connections.fetch_add(1, Ordering::Relaxed);
    let _counted = Counted(shared.clone());
    let service = {
        let shared = shared.clone();
        service_fn(move |req: Request<hyper::body::Incoming>| {
            std::future::ready(Ok::<_, Infallible>(respond(&req, &shared)))
        })
    };
    let mut builder = http1::Builder::new();
    builder.keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = tokio::time::timeout(CONNECTION_LIMIT, conn) => {
            if let Ok(Err(err)) = result {
                tracing::debug!(error = %err, "status connection ended with an error");
            }
        }
        () = orders.stopped() => {}
    }
}

/// Keeps the count of status connections while one lives.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.status_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `/`, `/status.json` or `/metrics`; anything else is 404, a method other than GET/HEAD 405.
fn respond<B>(req: &Request<B>, shared: &Shared) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    let render: fn(&Snapshot) -> String;
    let content_type = match req.uri().path() {
        "/" => {
            render = page::render;
            "text/html; charset=utf-8"
        }
        "/status.json" => {
            render = json::render;
            "application/json"
        }
        "/metrics" => {
            render = prometheus::render;
            prometheus::CONTENT_TYPE
        }
        _ => {
            return plain(
                StatusCode::NOT_FOUND,
                "not found: this listener serves /, /status.json and /metrics\n",
            );
        }
    };
    let body = render(&Snapshot::take(shared));
    let mut response = Response::new(Body::bytes(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::bytes(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
