//! sd_notify: tells systemd where the server is in its life (READY, RELOADING, STOPPING, STATUS, WATCHDOG), and hands it fds to keep (FDSTORE).
//!
//! Written by hand over `std::os::unix::net::UnixDatagram` rather than with the
//! sd-notify crate, because that crate cannot reach abstract (`@…`) sockets and caps
//! `EXTEND_TIMEOUT_USEC` at u32 µs (71 min). A missing `NOTIFY_SOCKET` makes every
//! call a silent no-op; a failed send is logged and never fatal.
//!
//! File descriptors for systemd's fd store go in the same kind of datagram, as
//! `SCM_RIGHTS` ancillary data (`sendmsg`, through rustix). systemd (≥ 254) tells a
//! service that it may store fds, and how many, in `$FDSTORE` (`FileDescriptorStoreMax=`).

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix};

/// The connection to the service manager, if there is one.
pub struct Notifier {
    target: Option<Target>,
    /// `$FDSTORE`: how many fds systemd keeps for this service (0: no fd store).
    fd_store_max: usize,
}

struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// The same address for `sendmsg` with ancillary data.
    raw: SocketAddrUnix,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path or `@abstract`) and `FDSTORE`; without `NOTIFY_SOCKET`
    /// every send does nothing.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.into_encoded_bytes();
            let (addr, raw) = match path.strip_prefix(b"@") {
                Some(name) => (
                    SocketAddr::from_abstract_name(name),
                    SocketAddrUnix::new_abstract_name(name).map_err(std::io::Error::from),
                ),
                None => {
                    let path = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&path);
                    (SocketAddr::from_pathname(path), SocketAddrUnix::new(path).map_err(std::io::Error::from))
                }
            };
            let socket = UnixDatagram::unbound();
            match (socket, addr, raw) {
                (Ok(socket), Ok(addr), Ok(raw)) => Some(Target { socket, addr, raw }),
                (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
                    tracing::warn!(error = %err, "NOTIFY_SOCKET is unusable; systemd will not hear from graced");
                    None
                }
            }
        });
        let fd_store_max = std::env::var("FDSTORE").ok().and_then(|n| n.trim().parse().ok()).unwrap_or(0);
        Notifier { target, fd_store_max }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None, fd_store_max: 0 }
    }

    /// How many fds systemd's fd store keeps for this service (`$FDSTORE`); 0 when there
    /// is no store (or no systemd to send them to).
    pub fn fd_store_max(&self) -> usize {
        if self.target.is_some() { self.fd_store_max } else { 0 }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one datagram of `KEY=VALUE` lines.
    pub fn send(&self, fields: &[(&str, &str)]) {
        let Some(target) = &self.target else { return };
        if let Err(err) = target.socket.send_to_addr(message(fields).as_bytes(), &target.addr) {
            tracing::warn!(error = %err, "sd_notify send failed");
        }
    }

    /// Sends one datagram of `KEY=VALUE` lines with `fds` attached (`SCM_RIGHTS`); systemd
    /// receives duplicates, ours stay open. `Ok` without systemd (nothing to do).
    pub fn send_with_fds(&self, fields: &[(&str, &str)], fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
        let Some(target) = &self.target else { return Ok(()) };
        let text = message(fields);
        let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(std::io::Error::other("the ancillary buffer is too small"));
        }
        let sent = rustix::net::sendmsg_addr(
            &target.socket,
            &target.raw,
            &[IoSlice::new(text.as_bytes())],
            &mut control,
            SendFlags::empty(),
        )?;
        if sent != text.len() {
            return Err(std::io::Error::other(format!("sd_notify: sent {sent} of {} bytes", text.len())));
        }
        Ok(())
    }

    /// Hands `fd` to systemd's fd store under `name` (`FDSTORE=1`, `FDNAME=`): systemd keeps
    /// a duplicate and passes it back in `LISTEN_FDS`/`LISTEN_FDNAMES` on the next start.
    /// systemd ignores an fd it already holds in the store, so storing again is harmless.
    pub fn store_fd(&self, name: &str, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        self.send_with_fds(&[("FDSTORE", "1"), ("FDNAME", name)], &[fd])
    }

    /// Drops every fd stored under `name` from systemd's fd store (`FDSTOREREMOVE=1`).
    pub fn remove_stored(&self, name: &str) {
        self.send(&[("FDSTOREREMOVE", "1"), ("FDNAME", name)]);
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

/// `KEY=VALUE\n` lines; a newline in a value would start a new assignment (STATUS texts
/// are single lines), so it becomes a space.
fn message(fields: &[(&str, &str)]) -> String {
    let mut message = String::new();
    for (key, value) in fields {
        message.push_str(key);
        message.push('=');
        message.push_str(&value.replace('\n', " "));
        message.push('\n');
    }
    message
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

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::net::UnixDatagram;

    use super::*;

    /// A notifier aimed at `path`, as `from_env` would build it.
    fn notifier_for(path: &std::path::Path) -> Notifier {
        Notifier {
            target: Some(Target {
                socket: UnixDatagram::unbound().unwrap(),
                addr: SocketAddr::from_pathname(path).unwrap(),
                raw: SocketAddrUnix::new(path).unwrap(),
            }),
            fd_store_max: 4,
        }
    }

    #[test]
    fn fds_travel_as_scm_rights_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = notifier_for(&path);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        notifier.store_fd("http", listener.as_fd()).unwrap();

        let mut buf = [0u8; 256];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let got =
            rustix::net::recvmsg(&receiver, &mut iov, &mut control, rustix::net::RecvFlags::empty()).unwrap();
        let text = String::from_utf8_lossy(&buf[..got.bytes]).into_owned();
        assert_eq!(text, "FDSTORE=1\nFDNAME=http\n");
        let mut fds = Vec::new();
        for message in control.drain() {
            if let rustix::net::RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        assert_eq!(fds.len(), 1, "one fd attached");
        assert_ne!(fds[0].as_raw_fd(), listener.as_raw_fd(), "systemd gets a duplicate");
        let (ours, theirs) = (rustix::fs::fstat(&listener).unwrap(), rustix::fs::fstat(&fds[0]).unwrap());
        assert_eq!((ours.st_dev, ours.st_ino), (theirs.st_dev, theirs.st_ino), "the same socket");
    }

    #[test]
    fn without_systemd_nothing_is_stored() {
        let notifier = Notifier::disabled();
        assert_eq!(notifier.fd_store_max(), 0);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        notifier.store_fd("http", listener.as_fd()).unwrap();
    }

    #[test]
    fn values_stay_on_one_line() {
        assert_eq!(message(&[("STATUS", "a\nb"), ("ERRNO", "0")]), "STATUS=a b\nERRNO=0\n");
    }
}
