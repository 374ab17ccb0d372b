//! Paths as unit-file text: what may be written unquoted, and `%` escaped.

use std::path::Path;

use crate::error::Error;

/// A path as unit-file text: UTF-8, no whitespace, quotes, backslashes or control
/// characters (which would need quoting), `%` escaped as `%%`.
pub(super) fn unit_path(path: &Path, what: &'static str) -> Result<String, Error> {
    let unsupported = |reason| Error::UnsupportedPath { what, path: path.to_owned(), reason };
    let text = path.to_str().ok_or_else(|| unsupported("it is not UTF-8"))?;
    if text.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\')) {
        return Err(unsupported("it contains whitespace, a quote, a backslash or a control character"));
    }
    Ok(text.replace('%', "%%"))
}
