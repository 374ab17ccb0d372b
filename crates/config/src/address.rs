//! Listen addresses as written in the configuration: `IP:PORT`, `[IPv6]:PORT`, a Unix path.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::model::ListenAddress;

/// Parses a listen address: `IP:PORT`, `[IPv6]:PORT`, or a Unix socket path (`/…` or `unix:/…`).
pub fn parse_address(text: &str) -> Result<ListenAddress, AddressError> {
    if let Some(path) = text.strip_prefix("unix:") {
        return Ok(ListenAddress::Unix(PathBuf::from(path)));
    }
    if text.starts_with('/') || text.starts_with('.') {
        return Ok(ListenAddress::Unix(PathBuf::from(text)));
    }
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err(AddressError::PortZero(text.to_owned())),
        Ok(addr) => Ok(ListenAddress::Tcp(addr)),
        Err(_) if !text.contains(':') => Err(AddressError::NoPort(text.to_owned())),
        Err(_) => Err(AddressError::NotAnAddress(text.to_owned())),
    }
}

/// Why a listen address was refused; each variant carries the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// `IP:0`: the kernel would pick a port, which no client could know.
    #[error("address {0:?} has port 0")]
    PortZero(String),
    /// An IP address without `:PORT`.
    #[error("address {0:?} has no port")]
    NoPort(String),
    /// Neither an IP address with a port nor a Unix socket path.
    #[error("{0:?} is not an IP address with a port")]
    NotAnAddress(String),
}

impl AddressError {
    /// What to write instead (the diagnostic's hint).
    pub fn hint(&self) -> &'static str {
        "write \"127.0.0.1:8080\", \"[::]:80\" or an absolute Unix socket path"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_typed_and_read_as_before() {
        assert_eq!(parse_address("127.0.0.1:0"), Err(AddressError::PortZero("127.0.0.1:0".into())));
        assert_eq!(parse_address("localhost").unwrap_err().to_string(), "address \"localhost\" has no port");
        assert_eq!(
            parse_address("example.org:80").unwrap_err().to_string(),
            "\"example.org:80\" is not an IP address with a port"
        );
    }
}
