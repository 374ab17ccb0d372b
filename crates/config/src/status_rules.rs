//! `[[listen]] status = true`: the listener that serves graced's status endpoint (page,
//! JSON, Prometheus `/metrics`) and nothing else; a leaf but for the types it checks.
//!
//! Why a listener of its own rather than a path on every listener: the endpoint is reachable
//! exactly where the configuration says, it becomes a socket unit like any other listener
//! (so systemd keeps it across restarts and `socket_mode` / a Unix path bound who may read
//! it), and no site can shadow it. It must be a Unix socket or a loopback address, plain
//! HTTP/1.1: the numbers it shows (traffic, generations, certificate expiry) are not for the
//! public, and a Prometheus server scrapes it from the same host or through a Unix socket.

use std::ops::Range;

use toml::Spanned;

use crate::model::ListenAddress;
use crate::raw::RawListen;

/// What the rules found for one `[[listen]]`.
pub(crate) struct StatusCheck {
    /// `status = true`.
    pub(crate) on: bool,
    pub(crate) problems: Vec<Problem>,
}

/// One problem: where, what, and what to do.
pub(crate) struct Problem {
    pub(crate) at: Range<usize>,
    pub(crate) message: String,
    pub(crate) hint: &'static str,
}

/// Checks `status` against the listener's other keys and its `address` (if it parsed).
pub(crate) fn check(listen: &RawListen, address: Option<&ListenAddress>) -> StatusCheck {
    let Some(at) = listen.status.as_ref().filter(|s| *s.get_ref()).map(Spanned::span) else {
        return StatusCheck { on: false, problems: Vec::new() };
    };
    let mut problems = Vec::new();
    if listen.tls.as_ref().is_some_and(|t| *t.get_ref()) {
        problems.push(Problem {
            at: at.clone(),
            message: "a status listener cannot be a TLS listener".into(),
            hint: "remove tls = true here: the status endpoint is plain HTTP on a Unix socket or loopback",
        });
    }
    if listen.h2c.as_ref().is_some_and(|h| *h.get_ref()) {
        problems.push(Problem {
            at: at.clone(),
            message: "a status listener speaks HTTP/1.1 only".into(),
            hint: "remove h2c = true here",
        });
    }
    if let Some(ListenAddress::Tcp(addr)) = address
        && !addr.ip().is_loopback()
    {
        problems.push(Problem {
            at,
            message: format!("the status listener's address {addr} is reachable from the network"),
            hint: "use a loopback address (\"127.0.0.1:8081\", \"[::1]:8081\") or a Unix socket (\"/run/graced/status.sock\")",
        });
    }
    StatusCheck { on: true, problems }
}
