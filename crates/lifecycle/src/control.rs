//! The control socket: `-k … --wait` asks, the server answers when the work is done.
//!
//! A Unix stream socket next to the pid file (`NAME.pid` → `NAME.ctl`), mode
//! 0600, answering only root and the server's own user (SO_PEERCRED). The protocol
//! is one request line (`graceful`, `restart`, `status`, `stop`, `graceful-stop`,
//! `await-reload`; see [`Request`])
//! and one reply that ends with EOF: `ok <text>` or `error <text>` (text may span
//! lines). It is synchronous: the reply *is* the result, so nothing polls. A request may
//! carry open files ([`handover`]): how a root client passes what the
//! server's user may not open.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

pub use crate::command::{Reply, Request};
use crate::handover::{self, HandedFile};

/// A request waiting for the server's loop to answer it.
#[derive(Debug)]
pub struct Pending {
    pub request: Request,
    /// Files the client opened and passed with the request (usually none).
    pub files: Vec<HandedFile>,
    responder: oneshot::Sender<Reply>,
}

impl Pending {
    /// Sends the reply to the waiting client (gone clients are ignored).
    pub fn answer(self, reply: Reply) {
        let _ = self.responder.send(reply);
    }
}

/// What a client got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The answering process, as the kernel reports it (SO_PEERCRED), so the caller can
    /// check it holds the pid file's lock.
    pub server_pid: u32,
    pub reply: Reply,
}

/// The socket path that goes with a pid file.
pub fn socket_path(pid_file: &Path) -> PathBuf {
    pid_file.with_extension("ctl")
}

/// Binds the control socket (replacing a stale one: the caller holds the pid-file lock)
/// and forwards requests to `requests`. Every connection's task holds a clone of the
/// returned `Arc` until its reply is written, so a server about to exit can wait for
/// its last replies ([`Busy::settle`]).
pub fn serve(path: &Path, requests: mpsc::Sender<Pending>) -> io::Result<Busy> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let own_uid = rustix::process::geteuid().as_raw();
    let busy = Arc::new(());
    let counted = busy.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let held = counted.clone();
            let allowed = rustix::net::sockopt::socket_peercred(stream.as_fd())
                .map(|cred| cred.uid.as_raw() == 0 || cred.uid.as_raw() == own_uid)
                .unwrap_or(false);
            let requests = requests.clone();
            tokio::spawn(async move {
                let reply = if allowed {
                    match tokio::time::timeout(Duration::from_secs(5), handover::receive(&stream)).await {
                        Ok(Ok(received)) => match received.line.parse::<Request>() {
                            Ok(request) => {
                                let (responder, rx) = oneshot::channel();
                                let pending = Pending { request, files: received.files, responder };
                                if requests.send(pending).await.is_err() {
                                    Err("the server is shutting down".to_owned())
                                } else {
                                    rx.await.unwrap_or_else(|_| Err("the server is shutting down".to_owned()))
                                }
                            }
                            Err(_) => Err(format!("unknown request {:?}", received.line.trim())),
                        },
                        Ok(Err(err)) => Err(format!("no request received: {err}")),
                        Err(_) => Err("no request received within 5s".to_owned()),
                    }
                } else {
                    Err("permission denied: only root and the server's user may use the control socket"
                        .into())
                };
                let text = match reply {
                    Ok(text) => format!("ok {text}\n"),
                    Err(text) => format!("error {text}\n"),
                };
                let mut stream = stream;
                let _ = stream.write_all(text.as_bytes()).await;
                drop(held);
            });
        }
    });
    Ok(Busy(busy))
}

/// The control connections still being served (see [`serve`]).
#[derive(Debug)]
pub struct Busy(Arc<()>);

impl Busy {
    /// Waits, at most `timeout`, until every reply given has been written (the
    /// connections' tasks are done): the runtime's end would otherwise cut them.
    pub async fn settle(&self, timeout: Duration) {
        // This handle and the accept loop's hold one each; every connection one more.
        let deadline = tokio::time::Instant::now() + timeout;
        while Arc::strong_count(&self.0) > 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Sends `request` with `files` (usually none) and waits up to `timeout` for the reply.
pub fn request(
    path: &Path,
    request: Request,
    files: &[HandedFile],
    timeout: Duration,
) -> io::Result<Response> {
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    let peer = rustix::net::sockopt::socket_peercred(stream.as_fd())?.pid.as_raw_nonzero().get() as u32;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    handover::send(stream.as_fd(), request.as_str(), files)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(|err| {
        if err.kind() == io::ErrorKind::WouldBlock {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {}", humantime::format_duration(timeout)),
            )
        } else {
            err
        }
    })?;
    let text = text.trim_end();
    let reply = match text.split_once(' ').unwrap_or((text, "")) {
        ("ok", rest) => Ok(rest.to_owned()),
        ("error", rest) => Err(rest.to_owned()),
        _ => Err(format!("unexpected answer {text:?}")),
    };
    Ok(Response { server_pid: peer, reply })
}
