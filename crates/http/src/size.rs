//! How the size of a file (or of the range of it a response sends) decides the way it is sent.
//!
//! `files` decides what to keep (content in memory, an open descriptor) and `body` how to
//! send it, both by the same [`SizeClass`].

/// Up to this size a file is [`SizeClass::Small`].
pub(crate) const SMALL_MAX: u64 = 16 * 1024;
/// Up to this size (above [`SMALL_MAX`]) a file is [`SizeClass::Medium`]; beyond it,
/// [`SizeClass::Large`].
pub(crate) const MEDIUM_MAX: u64 = 128 * 1024;

/// A file's size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeClass {
    /// Copying the bytes costs less than the extra `sendfile` system call: the content is
    /// kept in memory (the per-thread file cache) or read into the response body.
    Small,
    /// Sent with `sendfile` from the serving thread as it is (it was opened or `statx`ed a
    /// moment ago and is as good as always cached); the path cache keeps it open.
    Medium,
    /// Sent a window at a time, each window made resident in the page cache first, so no
    /// disk read happens on a serving thread.
    Large,
}

impl SizeClass {
    /// The class of `len` bytes.
    #[inline]
    pub(crate) fn of(len: u64) -> SizeClass {
        if len <= SMALL_MAX {
            SizeClass::Small
        } else if len <= MEDIUM_MAX {
            SizeClass::Medium
        } else {
            SizeClass::Large
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_meet_at_the_limits() {
        assert_eq!(SizeClass::of(0), SizeClass::Small);
        assert_eq!(SizeClass::of(SMALL_MAX), SizeClass::Small);
        assert_eq!(SizeClass::of(SMALL_MAX + 1), SizeClass::Medium);
        assert_eq!(SizeClass::of(MEDIUM_MAX), SizeClass::Medium);
        assert_eq!(SizeClass::of(MEDIUM_MAX + 1), SizeClass::Large);
    }
}
