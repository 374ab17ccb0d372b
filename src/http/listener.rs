//! Listening sockets (TCP or Unix) and the accepted streams, bound from the configuration or inherited.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::config::{ListenAddress, Listener as ListenerConfig};

/// A listening socket, as a blocking std socket: it can be kept across generations,
/// inherited from systemd, or handed to a re-executed binary, and is registered
/// with the runtime only when an accept loop starts.
#[derive(Debug)]
pub struct Socket2Listener {
    pub name: String,
    pub socket: Socket,
}

impl Socket2Listener {
    /// Binds the configured address (removing a stale Unix socket file first).
    pub fn bind(config: &ListenerConfig) -> io::Result<Socket2Listener> {
        let socket = match &config.address {
            ListenAddress::Tcp(addr) => bind_tcp(*addr, config)?,
            ListenAddress::Unix(path) => bind_unix(path, config)?,
        };
        Ok(Socket2Listener { name: config.name.clone(), socket })
    }

    /// Adopts an inherited listening socket after checking it really is one.
    pub fn adopt(name: String, fd: OwnedFd) -> io::Result<Socket2Listener> {
        let socket = Socket::from(fd);
        if !socket.is_listener()? || socket.r#type()? != Type::STREAM {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a listening stream socket"));
        }
        socket.set_cloexec(true)?;
        Ok(Socket2Listener { name, socket })
    }

    /// The address it listens on, for messages.
    pub fn local_addr(&self) -> String {
        match self.socket.local_addr() {
            Ok(addr) => match addr.as_socket() {
                Some(a) => a.to_string(),
                None => addr.as_pathname().map_or("unix socket".into(), |p| p.display().to_string()),
            },
            Err(_) => "?".into(),
        }
    }

    /// Whether this socket listens on `address`.
    pub fn matches(&self, address: &ListenAddress) -> bool {
        let Ok(local) = self.socket.local_addr() else { return false };
        match address {
            ListenAddress::Tcp(addr) => local.as_socket() == Some(*addr),
            ListenAddress::Unix(path) => local.as_pathname() == Some(path.as_path()),
        }
    }

    /// A tokio listener sharing the same socket (the fd is duplicated).
    pub fn to_tokio(&self) -> io::Result<AnyListener> {
        let dup = self.socket.try_clone()?;
        dup.set_nonblocking(true)?;
        Ok(if dup.domain()? == Domain::UNIX {
            AnyListener::Unix(UnixListener::from_std(dup.into())?)
        } else {
            AnyListener::Tcp(TcpListener::from_std(dup.into())?)
        })
    }
}

impl AsFd for Socket2Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

fn bind_tcp(addr: SocketAddr, config: &ListenerConfig) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(config.ipv6_only.unwrap_or(true))?;
    }
    socket.set_tcp_nodelay(config.no_delay)?;
    socket.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    socket.listen(config.backlog as i32)?;
    Ok(socket)
}

fn bind_unix(path: &Path, config: &ListenerConfig) -> io::Result<Socket> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        // A socket file left by an earlier run; nobody can be listening on it
        // unless another server runs, and then binding would fail anyway.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by another process", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    socket
        .bind(&SockAddr::unix(path)?)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display())))?;
    if let Some(mode) = config.socket_mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    socket.listen(config.backlog as i32)?;
    Ok(socket)
}

/// A listener registered with the runtime.
pub enum AnyListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl AnyListener {
    /// Accepts one connection; the peer is rendered for the access log.
    pub async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            AnyListener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                Ok((Stream::Tcp(stream), peer.ip().to_canonical().to_string()))
            }
            AnyListener::Unix(l) => {
                let (stream, _) = l.accept().await?;
                Ok((Stream::Unix(stream), "unix".into()))
            }
        }
    }
}

/// An accepted connection.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }

    /// Runs the non-blocking write `op` on the socket once it is writable, through the
    /// runtime's readiness tracking (a `WouldBlock` waits for the next readiness).
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(BorrowedFd<'_>) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let result = match self {
                Stream::Tcp(s) => {
                    std::task::ready!(s.poll_write_ready(cx))?;
                    s.try_io(tokio::io::Interest::WRITABLE, || op(s.as_fd()))
                }
                Stream::Unix(s) => {
                    std::task::ready!(s.poll_write_ready(cx))?;
                    s.try_io(tokio::io::Interest::WRITABLE, || op(s.as_fd()))
                }
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
