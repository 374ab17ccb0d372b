//! Socket activation: takes systemd's listening sockets and matches them to configured listeners by name.
//!
//! Written by hand (about as long as the crates it replaces): sd-notify 0.5
//! errors when `LISTEN_PID` does not match but `LISTEN_FDNAMES` is set, libsystemd
//! drops every fd when `LISTEN_FDNAMES` is absent, and listenfd ignores names.
//! Here a `LISTEN_PID` that is not ours means "not for us" (an empty set), a missing
//! `LISTEN_FDNAMES` names every fd `unknown` (then matched by address), and
//! systemd's order is never trusted — it does not follow `Sockets=`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::config::Listener as ListenerConfig;
use crate::http::Socket2Listener;

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
         FileDescriptorName={name} to the socket unit (`graced unit` writes it)"
    )]
    Missing { name: String, address: String },
    #[error(
        "systemd passed a socket named {name:?} ({address}) that no [[listen]] uses; add a listener \
         with that name or remove it from the socket unit"
    )]
    Unused { name: String, address: String },
}

/// Takes ownership of the fds systemd passed to this process, with their names.
///
/// # Safety
/// Call at most once per process, before anything else could own fds 3.. (in
/// practice: first thing in `main`); each fd is wrapped in an `OwnedFd` exactly once.
pub unsafe fn take_from_env() -> Result<Vec<(String, OwnedFd)>, ActivationError> {
    let ours =
        std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    if !ours {
        return Ok(Vec::new());
    }
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
            // SAFETY: systemd passed fds LISTEN_FDS_START..+count to us (LISTEN_PID is ours),
            // and the caller guarantees nothing else owns them.
            let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START + i as i32) };
            (name, fd)
        })
        .collect())
}

/// Matches inherited sockets to `configured` listeners: by name first, then (for sockets
/// named `unknown`) by address. Every configured listener must be matched and every
/// inherited socket used.
pub fn match_listeners(
    inherited: Vec<(String, OwnedFd)>,
    configured: &[ListenerConfig],
) -> Result<Vec<Socket2Listener>, ActivationError> {
    let mut sockets = Vec::new();
    for (i, (name, fd)) in inherited.into_iter().enumerate() {
        let fd_number = SD_LISTEN_FDS_START + i as i32;
        let socket = Socket2Listener::adopt(name.clone(), fd)
            .map_err(|source| ActivationError::NotAListener { fd: fd_number, name: name.clone(), source })?;
        sockets.push(socket);
    }
    let mut matched = Vec::new();
    for listener in configured {
        let position = sockets
            .iter()
            .position(|s| s.name == listener.name)
            .or_else(|| sockets.iter().position(|s| s.name == "unknown" && s.matches(&listener.address)));
        match position {
            Some(i) => {
                let mut socket = sockets.swap_remove(i);
                socket.name = listener.name.clone();
                matched.push(socket);
            }
            None => {
                return Err(ActivationError::Missing {
                    name: listener.name.clone(),
                    address: listener.address.to_string(),
                });
            }
        }
    }
    if let Some(unused) = sockets.first() {
        return Err(ActivationError::Unused { name: unused.name.clone(), address: unused.local_addr() });
    }
    Ok(matched)
}
