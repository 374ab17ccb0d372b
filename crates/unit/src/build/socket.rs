//! The `.socket` units: one per listener, the first one pulling in the others.

use std::net::SocketAddr;

use graced_config::{ListenAddress, Listener};

use super::plan::Plan;
use super::text::unit_path;
use crate::error::Error;
use crate::model::*;

impl Plan<'_> {
    /// The socket unit of `listener`, the `index`th (the first one is the primary).
    pub(super) fn socket(&self, listener: &Listener, index: usize) -> Result<UnitFile, Error> {
        let (options, names, runtime_directory) =
            (self.options, &self.names, &self.paths.runtime_directory_abs);
        let primary = index == 0;
        let listen_stream = match &listener.address {
            ListenAddress::Tcp(addr) => listen_tcp(addr),
            ListenAddress::Unix(path) => {
                if path.starts_with(runtime_directory) {
                    return Err(Error::SocketInRuntimeDirectory {
                        path: path.clone(),
                        dir: runtime_directory.to_owned(),
                    });
                }
                unit_path(path, "Unix listener")?
            }
        };
        let (tcp, v6) = match &listener.address {
            ListenAddress::Tcp(addr) => (Some(addr), addr.is_ipv6()),
            ListenAddress::Unix(_) => (None, false),
        };
        let unit = UnitSection {
            description: format!(
                "graced web server{}: listener {} on {}",
                names.description_suffix(),
                listener.name,
                listen_stream
            ),
            documentation: options.documentation.clone(),
            source_path: self.source_path.clone(),
            // The first socket brings the others along and takes them down with it, so that
            // enabling, starting or stopping it acts on every listener.
            wants: if primary { names.sockets[1..].to_vec() } else { Vec::new() },
            part_of: if primary { Vec::new() } else { vec![names.sockets[0].clone()] },
            ..UnitSection::default()
        };
        let socket = SocketSection {
            listen_stream,
            file_descriptor_name: listener.name.clone(),
            service: (!primary).then(|| names.service.clone()),
            backlog: listener.backlog,
            bind_ipv6_only: listener
                .ipv6_only
                .filter(|_| v6)
                .map(|only| if only { BindIpv6Only::Ipv6Only } else { BindIpv6Only::Both }),
            free_bind: tcp.is_some_and(|a| !a.ip().is_unspecified() && !a.ip().is_loopback()),
            no_delay: tcp.map(|_| listener.no_delay),
            socket_mode: if tcp.is_none() { listener.socket_mode } else { None },
            remove_on_stop: tcp.is_none(),
        };
        let install = primary.then(|| InstallSection { wanted_by: vec!["sockets.target".to_owned()] });
        Ok(UnitFile { header: self.header.clone(), unit, body: Body::Socket(socket), install })
    }
}

/// `1.2.3.4:80`, `[::]:80`, `[fe80::1]:80%%2` (systemd puts the scope after the port).
pub(super) fn listen_tcp(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) if a.scope_id() != 0 => format!("[{}]:{}%%{}", a.ip(), a.port(), a.scope_id()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}
