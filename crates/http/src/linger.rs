//! Closing gently: a lingering close (read what the client still sends until it closes, so that unread bytes do not turn the close into a reset), and, in a graceful stop, waiting until the client has every byte.
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
//!
//! A graceful stop also waits, before it lets a finished connection's socket go, until
//! the kernel holds nothing more for the client ([`delivered`]): once the process has
//! exited, what a slow client has not yet received lives on only in an orphaned socket,
//! which the kernel resets when orphans or TCP memory run short (`tcp_max_orphans`,
//! `tcp_mem`) — the end of a response lost after the server said it was done.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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

    /// The socket, for [`delivered`].
    pub(crate) fn socket(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
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

/// How often [`delivered`] looks at the send queue, at most.
const DELIVERY_POLL_MAX: Duration = Duration::from_millis(50);

/// Bytes the kernel still holds for the peer of `socket`: for TCP not yet sent or not yet
/// acknowledged (the FIN included), for a Unix socket not yet read. `None` if unknown or
/// if no byte more can arrive (a TCP connection reset or closed: its unacknowledged bytes
/// stay counted for ever).
fn unsent(socket: BorrowedFd<'_>) -> Option<usize> {
    if tcp_state(socket) == Some(TCP_CLOSE) {
        return None;
    }
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one `int` through the pointer, which points at
    // `n`; `socket` is a valid descriptor for the duration of the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0).then(|| n.max(0) as usize)
}

/// `TCP_CLOSE` of the kernel's TCP states (include/net/tcp_states.h).
const TCP_CLOSE: u8 = 7;

/// The TCP state of `socket` (`TCP_INFO`); `None` for other sockets.
fn tcp_state(socket: BorrowedFd<'_>) -> Option<u8> {
    // SAFETY: all-zero is a valid `tcp_info` (integers only).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, which is that large, and
    // the new length into `len`; `socket` is valid for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0 && len >= 1).then_some(info.tcpi_state)
}

/// Waits until the kernel holds no byte more for the peer of `socket`, or until the
/// queue has not shrunk for `stall` (a client that stopped reading: `send_timeout`).
pub(crate) async fn delivered(socket: BorrowedFd<'_>, stall: Duration) {
    let mut left = match unsent(socket) {
        Some(0) | None => return,
        Some(n) => n,
    };
    let mut progress = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(DELIVERY_POLL_MAX);
        match unsent(socket) {
            Some(0) | None => return,
            Some(n) if n < left => {
                left = n;
                progress = tokio::time::Instant::now();
            }
            Some(_) if progress.elapsed() >= stall => return,
            Some(_) => {}
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

    #[tokio::test]
    async fn delivered_waits_until_the_client_has_read_everything() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let data = vec![5u8; 64 * 1024];
        let mut sent = 0;
        while sent < data.len() {
            match (&ours).write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        assert!(unsent(ours.as_fd()).unwrap() > 0, "the peer has not read yet");
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; sent];
            for chunk in got.chunks_mut(4096) {
                std::thread::sleep(Duration::from_millis(2));
                theirs.read_exact(chunk).unwrap();
            }
            theirs
        });
        delivered(ours.as_fd(), Duration::from_secs(5)).await;
        assert_eq!(unsent(ours.as_fd()), Some(0), "returns once the peer has it all");
        drop(reader.join().unwrap());
    }

    #[tokio::test]
    async fn delivered_gives_up_on_a_client_that_stopped_reading() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        (&ours).write_all(b"never read").unwrap();
        let started = Instant::now();
        delivered(ours.as_fd(), Duration::from_millis(100)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn delivered_does_not_wait_for_a_connection_the_client_reset() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        // The client's receive buffer fills, then it resets (SO_LINGER 0) with bytes unread.
        let data = vec![1u8; 1 << 20];
        let mut sent = 0;
        while let Ok(n) = (&ours).write(&data[sent..]) {
            sent += n;
            if sent == data.len() {
                break;
            }
        }
        assert!(unsent(ours.as_fd()).unwrap() > 0);
        socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO)).unwrap();
        drop(client);
        let started = Instant::now();
        delivered(ours.as_fd(), Duration::from_secs(10)).await;
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
