//! A stand-in for systemd's notify socket: every datagram graced sends, timestamped, and a matcher for their lines.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The datagram socket itself, in a temporary directory of its own.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket { socket, path, _dir: dir }
    }

    fn env_value(&self) -> String {
        self.path.to_str().unwrap().to_owned()
    }
}

/// One datagram's lines and the pid that sent it.
pub type Sent = (u32, Vec<String>);

/// A fake systemd notify socket read by a thread, so graced never blocks on a full
/// queue (`net.unix.max_dgram_qlen` is 10 here) and every datagram is timestamped.
pub struct Notes {
    socket: NotifySocket,
    rx: Receiver<(Instant, Vec<String>)>,
    stop: Arc<AtomicBool>,
    /// Every datagram with its sender's pid (SCM_CREDENTIALS), in arrival order.
    log: Arc<Mutex<Vec<Sent>>>,
}

impl Notes {
    pub fn new() -> Notes {
        let socket = NotifySocket::new();
        let reader = socket.socket.try_clone().unwrap();
        reader.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let log = Arc::new(Mutex::new(Vec::new()));
        let logged = log.clone();
        pass_credentials(&reader);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16384];
            while !stopped.load(Ordering::Relaxed) {
                if let Some((n, pid)) = recv_with_pid(&reader, &mut buf) {
                    let lines: Vec<String> =
                        String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned).collect();
                    logged.lock().unwrap().push((pid, lines.clone()));
                    if tx.send((Instant::now(), lines)).is_err() {
                        break;
                    }
                }
            }
        });
        Notes { socket, rx, stop, log }
    }

    pub fn env_value(&self) -> String {
        self.socket.env_value()
    }

    /// Every datagram received so far with the pid that sent it, in arrival order (as
    /// systemd sees them: it decides by the sender's pid whether to accept one).
    pub fn senders(&self) -> Vec<Sent> {
        self.log.lock().unwrap().clone()
    }

    /// The next datagram of any kind.
    pub fn next_any(&self, timeout: Duration) -> Option<(Instant, Vec<String>)> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next datagram that is not a watchdog ping or a bare periodic STATUS=.
    pub fn next_event(&self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((_, lines)) = self.next_any(left) else {
                panic!("no notify datagram (other than WATCHDOG=1 or a bare STATUS=) within {timeout:?}")
            };
            if !is_background(&lines) {
                return lines;
            }
        }
    }

    /// Datagrams until one has a line starting with `needle` (returned); panics after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Vec<String> {
        self.wait_for_all(needle, timeout).pop().unwrap()
    }

    /// Every datagram up to and including the first with a line starting with `needle`.
    pub fn wait_for_all(&self, needle: &str, timeout: Duration) -> Vec<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((_, lines)) = self.next_any(left) else {
                panic!("no notify datagram with {needle:?} within {timeout:?}; saw {seen:?}")
            };
            let hit = lines.iter().any(|l| l.starts_with(needle));
            seen.push(lines);
            if hit {
                return seen;
            }
        }
    }

    /// Everything already received or arriving within `quiet` of the previous one
    /// (at most 5 s in all: watchdog pings never stop).
    pub fn drain(&self, quiet: Duration) -> Vec<(Instant, Vec<String>)> {
        let cap = Instant::now() + Duration::from_secs(5);
        let mut all = Vec::new();
        while Instant::now() < cap {
            match self.next_any(quiet) {
                Some(d) => all.push(d),
                None => break,
            }
        }
        all
    }

    /// Every datagram arriving within `window` from now.
    pub fn collect_for(&self, window: Duration) -> Vec<(Instant, Vec<String>)> {
        let end = Instant::now() + window;
        let mut all = Vec::new();
        while let Some(d) = self.next_any(end.saturating_duration_since(Instant::now())) {
            all.push(d);
        }
        all
    }
}

impl Default for Notes {
    fn default() -> Notes {
        Notes::new()
    }
}

impl Drop for Notes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// SO_PASSCRED: every datagram carries its sender's credentials.
fn pass_credentials(socket: &UnixDatagram) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a c_int option value on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_PASSCRED: {}", std::io::Error::last_os_error());
}

/// One datagram into `buf` and its sender's pid (0 if the kernel sent no credentials).
fn recv_with_pid(socket: &UnixDatagram, buf: &mut [u8]) -> Option<(usize, u32)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // u64s keep the control buffer aligned for cmsghdr; room for credentials and a few fds.
    let mut control = [0u64; 64];
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg into the buffers described by `msg`; fds received are closed below.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return None;
    }
    let mut pid = 0;
    // SAFETY: walking the control messages the kernel wrote, with the libc macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let data = libc::CMSG_DATA(cmsg);
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS {
                pid = std::ptr::read_unaligned(data.cast::<libc::ucred>()).pid as u32;
            } else if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    libc::close(std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Some((n as usize, pid))
}

/// WATCHDOG=1 alone, or STATUS= alone (the periodic summary).
pub fn is_background(lines: &[String]) -> bool {
    lines == ["WATCHDOG=1"] || (lines.len() == 1 && lines[0].starts_with("STATUS="))
}

/// Matches `line` against `pattern`, where `{n}` stands for a decimal number and `{*}`
/// for any text (up to the next literal part); returns the captured texts.
pub fn match_line(line: &str, pattern: &str) -> Option<Vec<String>> {
    let mut captures = Vec::new();
    let mut rest = line;
    let mut pat = pattern;
    loop {
        let next = [pat.find("{n}"), pat.find("{*}")].into_iter().flatten().min();
        let Some(at) = next else {
            return (rest == pat).then_some(captures);
        };
        let literal = &pat[..at];
        rest = rest.strip_prefix(literal)?;
        let kind = &pat[at..at + 3];
        pat = &pat[at + 3..];
        let end = if kind == "{n}" {
            rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())
        } else {
            let next_literal_end =
                [pat.find("{n}"), pat.find("{*}")].into_iter().flatten().min().unwrap_or(pat.len());
            let literal = &pat[..next_literal_end];
            if literal.is_empty() {
                rest.len()
            } else if next_literal_end == pat.len() {
                // The tail must match exactly: take the last occurrence.
                rest.rfind(literal)?
            } else {
                rest.find(literal)?
            }
        };
        if kind == "{n}" && end == 0 {
            return None;
        }
        captures.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
}

/// Asserts a datagram's lines, in order, against patterns (see [`match_line`]);
/// returns every capture, in order.
#[track_caller]
pub fn assert_datagram(lines: &[String], patterns: &[&str]) -> Vec<String> {
    assert_eq!(lines.len(), patterns.len(), "datagram {lines:?} does not have the lines {patterns:?}");
    let mut captures = Vec::new();
    for (line, pattern) in lines.iter().zip(patterns) {
        match match_line(line, pattern) {
            Some(c) => captures.extend(c),
            None => panic!("datagram {lines:?}: line {line:?} does not match {pattern:?}"),
        }
    }
    captures
}
