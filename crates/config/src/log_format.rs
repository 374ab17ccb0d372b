//! `[server] access_log_format`: how access-log lines are written to a file or stderr
//! (the journal always gets structured fields); a leaf.

use std::ops::Range;

use toml::Spanned;

/// The format of access-log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// Apache's combined format (the default).
    #[default]
    Combined,
    /// One JSON object a line: time, remote, method, target, status, bytes, duration,
    /// generation, HTTP version, TLS and its version, host, referer, user agent.
    Json,
}

/// A value that names no format: where, and what it was.
pub(crate) struct UnknownFormat {
    pub(crate) at: Range<usize>,
    pub(crate) message: String,
}

/// The hint for an [`UnknownFormat`].
pub(crate) const HINT: &str = "use \"combined\" (Apache's) or \"json\" (JSON lines)";

pub(crate) fn parse(raw: Option<&Spanned<String>>) -> Result<AccessLogFormat, UnknownFormat> {
    match raw.map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "combined")) => Ok(AccessLogFormat::Combined),
        Some((_, "json")) => Ok(AccessLogFormat::Json),
        Some((v, other)) => {
            Err(UnknownFormat { at: v.span(), message: format!("unknown access_log_format {other:?}") })
        }
    }
}
