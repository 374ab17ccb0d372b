//! Lingering close: after a connection's last response, read and discard what the client still sends until it closes, so that unread bytes do not turn the close into a reset.
//!
//! A socket closed with unread bytes in its receive queue sends RST instead of FIN, and a
//! client that gets the RST may discard the end of a response it has not read yet (RFC 9112
//! §9.6). HTTP/2 clients keep sending after the server's last frame — WINDOW_UPDATEs for
//! the DATA they are consuming, PINGs, SETTINGS acks — so a server that closes right after
//! its GOAWAY (hyper does: its connection drops the socket when the last stream ends) resets
//! connections whose last response is still on the way. Apache (`lingering_close`) and nginx
//! (`lingering_close`) wait the same way.
//!
//! The socket is duplicated while the connection's owner still holds it; when the owner has
//! let go (its close releases only its own descriptor), the duplicate shuts the write side
//! (FIN after anything still queued) and reads until end of stream, bounded in time and
//! bytes, then closes.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// The longest a lingering close waits for the client to close.
pub(crate) const LINGER_MAX: Duration = Duration::from_secs(1);

/// The most a lingering close reads before it gives up.
const LINGER_BYTES_MAX: usize = 256 * 1024;

/// A second descriptor of a connection's socket, for closing it gently.
pub(crate) struct Linger(OwnedFd);

impl Linger {
    /// Keeps a duplicate of `socket`; `None` if the process is out of descriptors (the
    /// connection then closes the ordinary way).
    pub(crate) fn keep(socket: BorrowedFd<'_>) -> Option<Linger> {
        socket.try_clone_to_owned().ok().map(Linger)
    }

    /// Sends FIN after what is queued, then reads until the client closes, for at most
    /// `wait` and [`LINGER_BYTES_MAX`] bytes. Call it after every other descriptor of the
    /// socket is closed.
    pub(crate) async fn close(self, wait: Duration) {
        let _ = rustix::net::shutdown(&self.0, rustix::net::Shutdown::Write);
        // SAFETY: the descriptor is owned by the `AsyncFd` from here on and closed only
        // when it is dropped, after its deregistration; nothing else replaces or closes it.
        let Ok(fd) = (unsafe { AsyncFd::register_with_interest(self.0, Interest::READABLE) }) else {
            return;
        };
        let _ = tokio::time::timeout(wait, drain(&fd)).await;
    }
}

/// Reads and discards until end of stream, an error or the byte cap.
async fn drain(fd: &AsyncFd<OwnedFd>) {
    let mut buf = [0u8; 4096];
    let mut read = 0;
    while read < LINGER_BYTES_MAX {
        let Ok(mut ready) = fd.readable().await else { return };
        match ready.try_io(|fd| rustix::io::read(fd.get_ref().as_fd(), &mut buf).map_err(io::Error::from)) {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => read += n,
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn the_client_sees_fin_and_its_late_bytes_cause_no_reset() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (&ours).write_all(b"last response").unwrap();
        theirs.write_all(b"late bytes the server never reads").unwrap();
        let linger = Linger::keep(ours.as_fd()).unwrap();
        drop(ours);
        let client = std::thread::spawn(move || {
            let mut got = String::new();
            theirs.read_to_string(&mut got).unwrap();
            theirs.write_all(b"more").unwrap();
            drop(theirs);
            got
        });
        let started = Instant::now();
        linger.close(LINGER_MAX).await;
        assert!(started.elapsed() < LINGER_MAX, "ends when the client closes, not at the limit");
        assert_eq!(client.join().unwrap(), "last response");
    }

    #[tokio::test]
    async fn a_client_that_never_closes_costs_at_most_the_wait() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let linger = Linger::keep(ours.as_fd()).unwrap();
        drop(ours);
        let started = Instant::now();
        linger.close(Duration::from_millis(50)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(50) && took < Duration::from_secs(5), "{took:?}");
    }
}
