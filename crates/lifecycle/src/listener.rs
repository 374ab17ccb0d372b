//! Listening sockets by name (TCP or Unix): bound from a [`ListenSpec`] when running alone, or adopted from systemd.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// What a listener listens on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Tcp(addr) => write!(f, "{addr}"),
            ListenAddress::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A listener the server wants: its name (systemd's `FileDescriptorName=`), its address,
/// and how to bind it when no socket is inherited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    pub name: String,
    pub address: ListenAddress,
    pub backlog: u32,
    /// For `[::]` addresses: accept IPv6 only (`true`, the default) or IPv4 too (`false`).
    pub ipv6_only: Option<bool>,
    pub no_delay: bool,
    /// Permissions of a Unix socket file.
    pub socket_mode: Option<u32>,
}

impl ListenSpec {
    /// A TCP listener with the defaults (backlog 511, `TCP_NODELAY`).
    pub fn tcp(name: impl Into<String>, address: SocketAddr) -> ListenSpec {
        ListenSpec {
            name: name.into(),
            address: ListenAddress::Tcp(address),
            backlog: 511,
            ipv6_only: None,
            no_delay: true,
            socket_mode: None,
        }
    }
}

/// A listening socket, as a blocking std socket: it can be kept across generations,
/// inherited from systemd, or handed to a re-executed binary, and is registered
/// with the runtime only when an accept loop starts.
#[derive(Debug)]
pub struct Listener {
    pub name: String,
    pub socket: Socket,
}

impl Listener {
    /// Binds `spec.address` (removing a stale Unix socket file first).
    pub fn bind(config: &ListenSpec) -> io::Result<Listener> {
        let socket = match &config.address {
            ListenAddress::Tcp(addr) => bind_tcp(*addr, config)?,
            ListenAddress::Unix(path) => bind_unix(path, config)?,
        };
        Ok(Listener { name: config.name.clone(), socket })
    }

    /// Adopts an inherited listening socket after checking it really is one.
    pub fn adopt(name: String, fd: OwnedFd) -> io::Result<Listener> {
        let socket = Socket::from(fd);
        if !socket.is_listener()? || socket.r#type()? != Type::STREAM {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a listening stream socket"));
        }
        socket.set_cloexec(true)?;
        Ok(Listener { name, socket })
    }

    /// The TCP listener registered with the current tokio runtime, for a server whose
    /// listeners never change (one that keeps listeners across reloads accepts on a
    /// duplicate, `socket.try_clone()`, so stopping a loop never closes the listener).
    pub fn into_tokio_tcp(self) -> io::Result<tokio::net::TcpListener> {
        if self.socket.local_addr()?.as_socket().is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a TCP listener"));
        }
        self.socket.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(self.socket.into())
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
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

fn bind_tcp(addr: SocketAddr, config: &ListenSpec) -> io::Result<Socket> {
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

fn bind_unix(path: &Path, config: &ListenSpec) -> io::Result<Socket> {
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
