//! Open files handed over with a control request: a privileged client (root, e.g. systemd's `ExecReload=+…`) opens what the server's user may not, and passes the descriptors.
//!
//! A server that runs wholly as an unprivileged user cannot open a root-only file
//! (a renewed TLS key) at reload; whoever asks for the reload may. The request then
//! carries the open files, each with a label (for graced, the path it was opened at):
//!
//! ```text
//! files N\n          N labels follow, and N descriptors arrive as SCM_RIGHTS
//! LABEL\n  × N       (no newline in a label; the descriptors in the same order)
//! REQUEST\n          the request line, as without files
//! ```
//!
//! The descriptors travel in batches of at most [`BATCH`], each attached to the bytes of
//! its labels, so any number up to [`MAX_FILES`] fits the kernel's per-message limit.
//! Written by hand because no maintained crate frames SCM_RIGHTS over a tokio stream;
//! the system calls are rustix's.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Descriptors per message (the kernel's SCM_MAX_FD is 253).
pub const BATCH: usize = 200;
/// Descriptors per request, at most.
pub const MAX_FILES: usize = 4096;
/// Bytes of a request with its labels, at most.
const MAX_BYTES: usize = 1 << 20;

/// One open file and what it is.
#[derive(Debug)]
pub struct HandedFile {
    /// What the file is, as the client named it (graced: the path it opened).
    pub label: String,
    pub fd: OwnedFd,
}

/// What a client sent: its request line and the files that came with it.
#[derive(Debug)]
pub struct Received {
    pub line: String,
    pub files: Vec<HandedFile>,
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandoverError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("the client closed the connection before its request line")]
    Closed,
    #[error("the request is longer than {MAX_BYTES} bytes")]
    TooLong,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("{labels} files were announced but {fds} descriptors arrived")]
    Mismatch { labels: usize, fds: usize },
}

/// Sends `line` with `files` (none: just the line) on a connected stream socket.
pub fn send(socket: BorrowedFd<'_>, line: &str, files: &[HandedFile]) -> io::Result<()> {
    if files.len() > MAX_FILES {
        return Err(io::Error::other(format!("{} files to hand over; at most {MAX_FILES}", files.len())));
    }
    if let Some(bad) = files.iter().find(|f| f.label.contains('\n') || f.label.is_empty()) {
        return Err(io::Error::other(format!(
            "cannot hand over {:?}: a label is one non-empty line",
            bad.label
        )));
    }
    let mut header = if files.is_empty() { String::new() } else { format!("files {}\n", files.len()) };
    for batch in files.chunks(BATCH) {
        let mut text = std::mem::take(&mut header);
        for file in batch {
            text.push_str(&file.label);
            text.push('\n');
        }
        let fds: Vec<BorrowedFd<'_>> = batch.iter().map(|f| f.fd.as_fd()).collect();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("the descriptors do not fit one message"));
        }
        let bytes = text.as_bytes();
        // The descriptors ride on the first sendmsg; the rest of the text follows plain.
        let sent = rustix::net::sendmsg(socket, &[IoSlice::new(bytes)], &mut control, SendFlags::NOSIGNAL)?;
        write_all(socket, &bytes[sent..])?;
    }
    write_all(socket, format!("{line}\n").as_bytes())
}

fn write_all(socket: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = rustix::net::send(socket, bytes, SendFlags::NOSIGNAL)?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Reads one request — its files, then its line — from `stream`.
pub async fn receive(stream: &tokio::net::UnixStream) -> Result<Received, HandoverError> {
    let mut text = Vec::new();
    let mut fds = Vec::new();
    loop {
        if let Some(received) = parse(&text, &mut fds)? {
            return Ok(received);
        }
        if text.len() > MAX_BYTES || fds.len() > MAX_FILES {
            return Err(HandoverError::TooLong);
        }
        let n = stream
            .async_io(tokio::io::Interest::READABLE, || receive_some(stream.as_fd(), &mut text, &mut fds))
            .await?;
        if n == 0 {
            return Err(HandoverError::Closed);
        }
    }
}

/// One recvmsg: appends the bytes to `text` and the descriptors to `fds`.
fn receive_some(socket: BorrowedFd<'_>, text: &mut Vec<u8>, fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut buf = [0u8; 4096];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(253))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    )?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::other("descriptors were lost: more than fit one message"));
    }
    text.extend_from_slice(&buf[..msg.bytes]);
    Ok(msg.bytes)
}

/// The request, once `text` holds all of it (the descriptors are taken from `fds`).
fn parse(text: &[u8], fds: &mut Vec<OwnedFd>) -> Result<Option<Received>, HandoverError> {
    let Some(lines) = complete_lines(text)? else { return Ok(None) };
    let mut lines = lines.into_iter();
    let Some(first) = lines.next() else { return Ok(None) };
    let Some(count) = first.strip_prefix("files ") else {
        if !fds.is_empty() {
            return Err(HandoverError::Mismatch { labels: 0, fds: fds.len() });
        }
        return Ok(Some(Received { line: first.to_owned(), files: Vec::new() }));
    };
    let count: usize = count
        .parse()
        .ok()
        .filter(|&n| n <= MAX_FILES)
        .ok_or_else(|| HandoverError::Malformed(format!("{first:?}")))?;
    let labels: Vec<&str> = lines.by_ref().take(count).collect();
    let Some(line) = lines.next() else { return Ok(None) };
    if fds.len() != count {
        return Err(HandoverError::Mismatch { labels: count, fds: fds.len() });
    }
    let files =
        labels.iter().zip(fds.drain(..)).map(|(l, fd)| HandedFile { label: (*l).to_owned(), fd }).collect();
    Ok(Some(Received { line: line.to_owned(), files }))
}

/// The newline-terminated lines of `text` (`None`: no whole line yet).
fn complete_lines(text: &[u8]) -> Result<Option<Vec<&str>>, HandoverError> {
    let Some(end) = text.iter().rposition(|&b| b == b'\n') else { return Ok(None) };
    let text = std::str::from_utf8(&text[..end]).map_err(|_| HandoverError::Malformed("not UTF-8".into()))?;
    Ok(Some(text.split('\n').collect()))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsFd;

    use super::*;

    /// An open, already unlinked file holding `text`.
    fn file_with(text: &str) -> OwnedFd {
        use std::io::{Seek, Write};
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file.rewind().unwrap();
        file.into()
    }

    async fn round_trip(files: Vec<HandedFile>) -> Received {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let sender = std::thread::spawn(move || send(a.as_fd(), "graceful", &files));
        b.set_nonblocking(true).unwrap();
        let b = tokio::net::UnixStream::from_std(b).unwrap();
        let received = receive(&b).await.unwrap();
        sender.join().unwrap().unwrap();
        received
    }

    #[tokio::test]
    async fn a_line_alone() {
        let received = round_trip(Vec::new()).await;
        assert_eq!(received.line, "graceful");
        assert!(received.files.is_empty());
    }

    #[tokio::test]
    async fn files_arrive_in_order_in_batches() {
        let n = BATCH * 2 + 7;
        let files =
            (0..n).map(|i| HandedFile { label: format!("/f/{i}"), fd: file_with(&"x".repeat(i % 5 + 1)) });
        let received = round_trip(files.collect()).await;
        assert_eq!(received.line, "graceful");
        assert_eq!(received.files.len(), n);
        for (i, file) in received.files.into_iter().enumerate() {
            assert_eq!(file.label, format!("/f/{i}"));
            let mut text = String::new();
            std::fs::File::from(file.fd).read_to_string(&mut text).unwrap();
            assert_eq!(text.len(), i % 5 + 1, "file {i}");
        }
    }

    #[test]
    fn announced_and_arrived_must_agree() {
        let mut fds = vec![file_with("a")];
        assert!(matches!(parse(b"graceful\n", &mut fds), Err(HandoverError::Mismatch { labels: 0, fds: 1 })));
        let mut none = Vec::new();
        assert!(matches!(parse(b"files 1\n/a\ngraceful\n", &mut none), Err(HandoverError::Mismatch { .. })));
        assert!(matches!(parse(b"files many\n", &mut none), Err(HandoverError::Malformed(_))));
        assert!(parse(b"files 1\n/a\n", &mut none).unwrap().is_none(), "waits for the request line");
    }

    #[test]
    fn labels_are_single_lines() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let bad = HandedFile { label: "a\nb".into(), fd: file_with("k") };
        assert!(send(a.as_fd(), "graceful", &[bad]).is_err());
    }
}
