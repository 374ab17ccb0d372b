//! sd_notify: tells systemd where the server is in its life (READY, RELOADING, STOPPING, STATUS, WATCHDOG).
//!
//! Written by hand over `std::os::unix::net::UnixDatagram` rather than with the
//! sd-notify crate, because that crate cannot reach abstract (`@…`) sockets and caps
//! `EXTEND_TIMEOUT_USEC` at u32 µs (71 min). A missing `NOTIFY_SOCKET` makes every
//! call a silent no-op; a failed send is logged and never fatal.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The connection to the service manager, if there is one.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path or `@abstract`); without it every send does nothing.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.into_encoded_bytes();
            let addr = match path.strip_prefix(b"@") {
                Some(name) => SocketAddr::from_abstract_name(name),
                None => SocketAddr::from_pathname(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&path)),
            };
            let socket = UnixDatagram::unbound();
            match (socket, addr) {
                (Ok(socket), Ok(addr)) => Some((socket, addr)),
                (Err(err), _) | (_, Err(err)) => {
                    tracing::warn!(error = %err, "NOTIFY_SOCKET is unusable; systemd will not hear from graced");
                    None
                }
            }
        });
        Notifier { target }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one datagram of `KEY=VALUE` lines.
    pub fn send(&self, fields: &[(&str, &str)]) {
        let Some((socket, addr)) = &self.target else { return };
        let mut message = String::new();
        for (key, value) in fields {
            message.push_str(key);
            message.push('=');
            // A newline would start a new assignment; STATUS texts are single lines.
            message.push_str(&value.replace('\n', " "));
            message.push('\n');
        }
        if let Err(err) = socket.send_to_addr(message.as_bytes(), addr) {
            tracing::warn!(error = %err, "sd_notify send failed");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[("READY", "1"), ("STATUS", status)]);
    }

    /// RELOADING=1 with the CLOCK_MONOTONIC time, read now — after the request to
    /// reload arrived, as systemd ≥ 253 requires — in the same datagram.
    pub fn reloading(&self, status: &str) {
        let now = monotonic_usec().to_string();
        self.send(&[("RELOADING", "1"), ("MONOTONIC_USEC", &now), ("STATUS", status)]);
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[("STOPPING", "1"), ("STATUS", status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[("STATUS", status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[("WATCHDOG", "1")]);
    }

    pub fn extend_timeout(&self, by: Duration, status: &str) {
        let usec = by.as_micros().to_string();
        self.send(&[("EXTEND_TIMEOUT_USEC", &usec), ("STATUS", status)]);
    }
}

/// CLOCK_MONOTONIC in microseconds, as systemd compares it.
pub fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

/// The watchdog interval systemd asked for this process, if any (`WATCHDOG_USEC`,
/// honouring `WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}
