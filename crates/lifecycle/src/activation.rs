//! Socket activation: takes systemd's listening sockets and matches them to the wanted listeners by name.
//!
//! Written by hand (about as long as the crates it replaces): sd-notify 0.5
//! errors when `LISTEN_PID` does not match but `LISTEN_FDNAMES` is set, libsystemd
//! drops every fd when `LISTEN_FDNAMES` is absent, and listenfd ignores names.
//! Here a `LISTEN_PID` that is not ours means "not for us" (an empty set), a missing
//! `LISTEN_FDNAMES` names every fd `unknown` (then matched by address), and
//! systemd's order is never trusted — it does not follow `Sockets=`.
//!
//! With systemd's fd store in use, one listener can arrive twice:
//! once from its socket unit and once from the store, under the same name (measured on
//! 257: `LISTEN_FDNAMES=http:http`, one socket inode). Matching is deterministic:
//! 1. fds that are the same socket (same device and inode) count once: the copy whose
//!    name is configured is kept, else the first (systemd passes socket units' fds
//!    before the store's); the other copies are closed;
//! 2. among *different* sockets sharing a configured name, the one bound to the
//!    configured address is kept, else the first; the others are closed and their name
//!    is reported as stale, so the store can be cleaned;
//! 3. a socket no listener uses is an error — unless the caller says [`Leftovers::Close`]
//!    (the unit has an fd store, `$FDSTORE`, where it is a leftover of an earlier
//!    configuration): closed, reported as stale, and logged.

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use crate::listener::{ListenSpec, Listener};

/// `(name, fd)` pairs as systemd passed them (`LISTEN_FDNAMES`, `LISTEN_FDS`).
pub type Inherited = Vec<(String, OwnedFd)>;

/// The first fd systemd passes.
pub const SD_LISTEN_FDS_START: i32 = 3;

/// Why inherited sockets and the configuration do not fit together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    #[error("LISTEN_FDS={0:?} is not a number")]
    BadCount(String),
    #[error("LISTEN_FDNAMES names {names} sockets but LISTEN_FDS={fds}")]
    NameCount { names: usize, fds: usize },
    #[error("inherited fd {fd} ({name:?}) is not a listening stream socket: {source}")]
    NotAListener {
        fd: i32,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "systemd passed no socket for listener {name:?} ({address}); add ListenStream={address} with \
         FileDescriptorName={name} to the socket unit"
    )]
    Missing { name: String, address: String },
    #[error(
        "systemd passed a socket named {name:?} ({address}) that no listener uses; add a listener \
         with that name or remove it from the socket unit"
    )]
    Unused { name: String, address: String },
}

/// What to do with an inherited socket no wanted listener uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftovers {
    /// Fail with [`ActivationError::Unused`]: the socket unit and the server disagree.
    Refuse,
    /// Close it and report its name as stale: the unit has an fd store, which may still
    /// hold a listener of an earlier configuration.
    Close,
}

/// Takes ownership of the fds systemd passed to this process, with their names.
///
/// # Safety
/// Call at most once per process, before anything else could own fds 3.. (in
/// practice: first thing in `main`); each fd is wrapped in an `OwnedFd` exactly once.
pub unsafe fn take_from_env() -> Result<Inherited, ActivationError> {
    let ours =
        std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    if !ours {
        return Ok(Vec::new());
    }
    // SAFETY: LISTEN_PID is ours; the caller's guarantee is passed on.
    unsafe { take_listen_fds() }
}

/// Takes the fds `LISTEN_FDS` and `LISTEN_FDNAMES` describe, without looking at
/// `LISTEN_PID`: for a process whose parent passed them knowing its pid only after the
/// fork (a binary upgrade, `crate::upgrade`).
///
/// # Safety
/// As [`take_from_env`], and the fds must really have been passed to this process.
pub unsafe fn take_listen_fds() -> Result<Inherited, ActivationError> {
    let count = match std::env::var("LISTEN_FDS") {
        Ok(n) => n.parse::<usize>().map_err(|_| ActivationError::BadCount(n))?,
        Err(_) => return Ok(Vec::new()),
    };
    let names: Vec<String> = match std::env::var("LISTEN_FDNAMES") {
        Ok(names) if !names.is_empty() => names.split(':').map(str::to_owned).collect(),
        _ => vec!["unknown".to_owned(); count],
    };
    if names.len() != count {
        return Err(ActivationError::NameCount { names: names.len(), fds: count });
    }
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            // SAFETY: fds LISTEN_FDS_START..+count were passed to us, and the caller
            // guarantees nothing else owns them.
            let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START + i as i32) };
            (name, fd)
        })
        .collect())
}

/// The listeners matched to the configuration, and what was left over.
pub struct Matched {
    /// One per configured listener, in configuration order.
    pub listeners: Vec<Listener>,
    /// Names under which sockets were dropped (different sockets sharing a name, or
    /// sockets no listener uses): the fd store may hold them, and should not.
    pub stale_names: Vec<String>,
    /// How many fds were further copies of a socket already passed (socket unit + fd store).
    pub duplicates: usize,
}

/// Matches inherited sockets to `configured` listeners: by name first, then (for sockets
/// named `unknown`) by address; copies of one socket count once (see the module docs).
/// Every configured listener must be matched; unused sockets are handled as `leftovers` says.
pub fn match_listeners(
    inherited: Inherited,
    configured: &[ListenSpec],
    leftovers: Leftovers,
) -> Result<Matched, ActivationError> {
    let is_configured = |name: &str| configured.iter().any(|l| l.name == name);
    // (socket, its identity), in systemd's order
    let mut sockets = Vec::new();
    for (i, (name, fd)) in inherited.into_iter().enumerate() {
        let fd_number = SD_LISTEN_FDS_START + i as i32;
        let socket = Listener::adopt(name.clone(), fd).map_err(|source| ActivationError::NotAListener {
            fd: fd_number,
            name: name.clone(),
            source,
        })?;
        let identity = rustix::fs::fstat(socket.as_fd()).ok().map(|st| (st.st_dev, st.st_ino));
        sockets.push((socket, identity));
    }
    let mut stale_names: Vec<String> = Vec::new();
    let mut stale = |name: &str| {
        if !stale_names.iter().any(|n| n == name) {
            stale_names.push(name.to_owned());
        }
    };

    // 1. One entry per socket: the copy with a configured name, else the first.
    let mut distinct: Vec<Listener> = Vec::new();
    let mut identities = Vec::new();
    let mut duplicates = 0;
    for (socket, identity) in sockets {
        let earlier = identity.and_then(|id| identities.iter().position(|known| *known == Some(id)));
        let Some(i) = earlier else {
            distinct.push(socket);
            identities.push(identity);
            continue;
        };
        duplicates += 1;
        let dropped = if !is_configured(&distinct[i].name) && is_configured(&socket.name) {
            std::mem::replace(&mut distinct[i], socket)
        } else {
            socket
        };
        if dropped.name != distinct[i].name {
            stale(&dropped.name);
        }
        tracing::debug!(
            name = %dropped.name,
            kept = %distinct[i].name,
            "systemd passed the same socket twice (socket unit and fd store); one copy is used"
        );
    }

    // 2. Per configured listener: by name (the configured address first), else by address.
    let mut matched = Vec::new();
    for listener in configured {
        let named: Vec<usize> = (0..distinct.len()).filter(|&i| distinct[i].name == listener.name).collect();
        let position = named
            .iter()
            .copied()
            .find(|&i| distinct[i].matches(&listener.address))
            .or_else(|| named.first().copied())
            .or_else(|| distinct.iter().position(|s| s.name == "unknown" && s.matches(&listener.address)));
        let Some(i) = position else {
            return Err(ActivationError::Missing {
                name: listener.name.clone(),
                address: listener.address.to_string(),
            });
        };
        let mut socket = distinct.remove(i);
        socket.name = listener.name.clone();
        // Other sockets under this name: older ones the store kept.
        while let Some(j) = distinct.iter().position(|s| s.name == listener.name) {
            let other = distinct.remove(j);
            tracing::warn!(
                listener = %listener.name,
                kept = %socket.local_addr(),
                dropped = %other.local_addr(),
                "systemd passed two different sockets named {:?}; using the one on {} and closing {}",
                listener.name,
                socket.local_addr(),
                other.local_addr()
            );
            stale(&listener.name);
        }
        matched.push(socket);
    }

    // 3. Leftovers.
    if let Some(unused) = distinct.first() {
        if leftovers == Leftovers::Refuse {
            return Err(ActivationError::Unused { name: unused.name.clone(), address: unused.local_addr() });
        }
        for other in &distinct {
            tracing::warn!(
                name = %other.name,
                address = %other.local_addr(),
                "systemd passed a socket named {:?} ({}) that no listener uses; closing it and removing it \
                 from the fd store (a listener of an earlier configuration)",
                other.name,
                other.local_addr()
            );
            stale(&other.name);
        }
    }
    Ok(Matched { listeners: matched, stale_names, duplicates })
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpListener};

    use super::*;
    use crate::listener::ListenAddress;

    fn listener(name: &str, address: SocketAddr) -> ListenSpec {
        ListenSpec {
            name: name.to_owned(),
            address: ListenAddress::Tcp(address),
            backlog: 128,
            ipv6_only: None,
            no_delay: true,
            socket_mode: None,
        }
    }

    fn bound() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    fn fd(l: &TcpListener) -> OwnedFd {
        OwnedFd::from(l.try_clone().unwrap())
    }

    fn names(m: &Matched) -> Vec<(String, String)> {
        m.listeners.iter().map(|s| (s.name.clone(), s.local_addr())).collect()
    }

    #[test]
    fn the_same_socket_from_the_socket_unit_and_the_store_counts_once() {
        let (l, a) = bound();
        let inherited = vec![("http".to_owned(), fd(&l)), ("http".to_owned(), fd(&l))];
        let m = match_listeners(inherited, &[listener("http", a)], Leftovers::Close).unwrap();
        assert_eq!(names(&m), [("http".to_owned(), a.to_string())]);
        assert_eq!(m.duplicates, 1);
        assert!(m.stale_names.is_empty(), "{:?}", m.stale_names);
        // The same without an fd store in the unit: still one listener, no error.
        let inherited = vec![("http".to_owned(), fd(&l)), ("http".to_owned(), fd(&l))];
        let m = match_listeners(inherited, &[listener("http", a)], Leftovers::Refuse).unwrap();
        assert_eq!((m.listeners.len(), m.duplicates), (1, 1));
    }

    #[test]
    fn a_copy_under_a_configured_name_wins_over_an_old_name() {
        let (l, a) = bound();
        let inherited = vec![("old".to_owned(), fd(&l)), ("http".to_owned(), fd(&l))];
        let m = match_listeners(inherited, &[listener("http", a)], Leftovers::Close).unwrap();
        assert_eq!(names(&m), [("http".to_owned(), a.to_string())]);
        assert_eq!(m.stale_names, ["old"]);
    }

    #[test]
    fn different_sockets_under_one_name_keep_the_configured_address() {
        let (old, old_addr) = bound();
        let (new, new_addr) = bound();
        for order in [[&old, &new], [&new, &old]] {
            let inherited = order.iter().map(|l| ("http".to_owned(), fd(l))).collect();
            let m = match_listeners(inherited, &[listener("http", new_addr)], Leftovers::Close).unwrap();
            assert_eq!(names(&m), [("http".to_owned(), new_addr.to_string())], "order {order:?}");
            assert_eq!(m.stale_names, ["http"], "the store must drop the other one");
        }
        // Neither on the configured address: the first one systemd passed.
        let (_, elsewhere) = bound();
        let inherited = vec![("http".to_owned(), fd(&old)), ("http".to_owned(), fd(&new))];
        let m = match_listeners(inherited, &[listener("http", elsewhere)], Leftovers::Close).unwrap();
        assert_eq!(names(&m), [("http".to_owned(), old_addr.to_string())]);
    }

    #[test]
    fn unused_sockets_fail_unless_an_fd_store_may_hold_leftovers() {
        let (l, a) = bound();
        let (extra, _) = bound();
        let inherited = || vec![("http".to_owned(), fd(&l)), ("gone".to_owned(), fd(&extra))];
        let err = match_listeners(inherited(), &[listener("http", a)], Leftovers::Refuse).err().unwrap();
        assert!(matches!(err, ActivationError::Unused { ref name, .. } if name == "gone"), "{err}");
        let m = match_listeners(inherited(), &[listener("http", a)], Leftovers::Close).unwrap();
        assert_eq!(names(&m), [("http".to_owned(), a.to_string())]);
        assert_eq!(m.stale_names, ["gone"]);
    }

    #[test]
    fn a_missing_listener_is_still_an_error() {
        let (l, a) = bound();
        let (_, b) = bound();
        let inherited = vec![("http".to_owned(), fd(&l))];
        let err = match_listeners(inherited, &[listener("http", a), listener("alt", b)], Leftovers::Close)
            .err()
            .unwrap();
        assert!(matches!(err, ActivationError::Missing { ref name, .. } if name == "alt"), "{err}");
    }
}
