//! graced's `[[listen]]` tables in the toolkit's terms, and where the listeners came from.

use graced_config::{ListenAddress, Listener as ListenerConfig};
use graced_lifecycle::listener::{self, ListenSpec};

/// Where the process's listeners came from: it decides whether a reload may change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListenerSource {
    /// Socket activation: systemd's socket units own the set.
    Systemd,
    /// Bound by graced itself (run alone).
    Bound,
}

/// The toolkit's description of a configured listener.
pub(super) fn listen_spec(config: &ListenerConfig) -> ListenSpec {
    ListenSpec {
        name: config.name.clone(),
        address: listen_address(&config.address),
        backlog: config.backlog,
        ipv6_only: config.ipv6_only,
        no_delay: config.no_delay,
        socket_mode: config.socket_mode,
    }
}

pub(super) fn listen_address(address: &ListenAddress) -> listener::ListenAddress {
    match address {
        ListenAddress::Tcp(addr) => listener::ListenAddress::Tcp(*addr),
        ListenAddress::Unix(path) => listener::ListenAddress::Unix(path.clone()),
    }
}
