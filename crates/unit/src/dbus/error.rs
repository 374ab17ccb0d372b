//! [`PolicyError`]: why dbus-daemon would reject (or silently skip) a policy file.

/// Why a policy file would be rejected (or silently skipped) by dbus-daemon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct PolicyError {
    /// 1-based line of the offending element or character.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and what to do about it.
    pub message: String,
}
