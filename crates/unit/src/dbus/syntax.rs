//! The syntax of the names a bus policy may hold: accounts, bus names, interfaces, members, paths.
//!
//! Kept by hand: `zbus_names` would pull zvariant and serde into this pure crate, and a
//! policy also takes dbus-daemon's own forms (`*`, `own_prefix`, lax unique names).

/// A user or group name as dbus-daemon and the shadow tools accept it.
pub(super) fn valid_account(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.$".contains(&b))
}

/// `a.b.c` names (interfaces, error names, well-known bus names when `dash` is true).
pub(super) fn valid_dotted(name: &str, dash: bool) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    name.len() <= 255
        && parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.as_bytes()[0].is_ascii_digit()
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dash && b == b'-'))
        })
}

/// A unique (`:1.2`) or well-known (`org.a.B`) bus name.
pub(super) fn valid_bus_name(name: &str) -> bool {
    match name.strip_prefix(':') {
        Some(unique) => unique.split('.').count() >= 2 && unique.split('.').all(|p| !p.is_empty()),
        None => valid_dotted(name, true),
    }
}

/// A method or signal name.
pub(super) fn valid_member(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An object path.
pub(super) fn valid_path(path: &str) -> bool {
    path == "/"
        || (path.starts_with('/')
            && path[1..]
                .split('/')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')))
}
