//! The typed model of the files the generator writes: unit files as sections of typed directives.
//!
//! Values are stored as unit-file text (a `%` that is not a specifier is already `%%`);
//! [`render`](super::render) writes every section's keys in one fixed order, so the
//! output is byte-stable. Nothing here knows about graced's configuration.

use std::time::Duration;

/// Everything one configuration becomes, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub files: Vec<File>,
}

impl Bundle {
    /// The symlinks that enable the bundle, as a generator (or `systemctl enable`) makes them.
    pub fn enable_links(&self) -> Vec<WantsLink> {
        let mut links = Vec::new();
        for file in &self.files {
            let Artifact::Unit(unit) = &file.artifact;
            for target in unit.install.iter().flat_map(|i| &i.wanted_by) {
                links.push(WantsLink { dir: format!("{target}.wants"), unit: file.name.clone() });
            }
        }
        links
    }
}

/// One file: its name and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// The file name, e.g. `graced.service` or `graced@.socket`.
    pub name: String,
    pub artifact: Artifact,
}

/// What kind of file it is. Each kind renders through `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Artifact {
    /// A systemd unit file (`.service`, `.socket`), installed in a unit directory.
    Unit(UnitFile),
    // Issue 6 adds the D-Bus helper's files here, each with its own install directory:
    // DbusPolicy (`/usr/share/dbus-1/system.d/*.conf`) and DbusActivation
    // (`/usr/share/dbus-1/system-services/*.service`).
}

/// `DIR/UNIT`: a symlink `DIR/UNIT` → the unit file, e.g. `sockets.target.wants/graced.socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantsLink {
    pub dir: String,
    pub unit: String,
}

/// A unit file: a comment header, `[Unit]`, the type's own section, and maybe `[Install]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// Comment lines (without the `# `) at the top of the file.
    pub header: Vec<String>,
    pub unit: UnitSection,
    pub body: Body,
    pub install: Option<InstallSection>,
}

/// The type-specific section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Service(Box<ServiceSection>),
    Socket(SocketSection),
    /// A `Type=oneshot` job (graced-acme.service).
    Oneshot(Box<OneshotSection>),
    /// `[Timer]` (graced-acme.timer).
    Timer(TimerSection),
}

/// `[Unit]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitSection {
    pub description: String,
    pub documentation: Vec<String>,
    /// The file this unit was generated from (generator output only).
    pub source_path: Option<String>,
    pub requires: Vec<String>,
    pub wants: Vec<String>,
    pub part_of: Vec<String>,
    pub after: Vec<String>,
    pub requires_mounts_for: Vec<String>,
    pub start_limit_interval: Option<Duration>,
    pub start_limit_burst: Option<u32>,
}

/// `Type=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    Notify,
    /// systemd ≥ 253 only; 252 silently reads it as `simple`.
    NotifyReload,
}

/// `NotifyAccess=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyAccess {
    Main,
}

/// `Restart=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    OnFailure,
}

/// `KillMode=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMode {
    /// The kill signal to every process of the unit: after a binary upgrade the old
    /// process, still draining, is one of them (`mixed` would SIGKILL it, cutting its
    /// downloads).
    ControlGroup,
}

/// A signal name as systemd spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Usr1,
    Winch,
}

/// One command line of an `Exec*=` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `+`: run with full privileges, outside the sandbox and as root (`ExecReload=+…`).
    pub privileged: bool,
    /// Absolute path of the program (unit-file text).
    pub program: String,
    /// Arguments (unit-file text, no whitespace); `$` is escaped when rendered.
    pub args: Vec<String>,
}

/// Who the service runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// `User=` (and `Group=` when given; otherwise the user's primary group).
    Static { user: String, group: Option<String> },
    /// `DynamicUser=yes` (and `Group=` when given).
    Dynamic { group: Option<String> },
}

/// `[Service]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSection {
    pub service_type: ServiceType,
    pub notify_access: NotifyAccess,
    pub reload_signal: Option<Signal>,
    pub sockets: Vec<String>,
    pub exec_start_pre: Vec<Command>,
    pub exec_start: Command,
    pub exec_reload: Vec<Command>,
    pub kill_mode: KillMode,
    pub kill_signal: Signal,
    pub timeout_stop: Duration,
    pub restart: Restart,
    pub restart_sec: Duration,
    pub watchdog: Option<Duration>,
    /// `FileDescriptorStoreMax=` + `FileDescriptorStorePreserve=` (`[server] fd_store`).
    pub fd_store: Option<FdStore>,
    pub account: Account,
    /// Relative to `/run`; holds the pid file and the control socket.
    pub runtime_directory: String,
    /// Relative to `/var/log`; for an access-log file there.
    pub logs_directory: Option<String>,
    pub syslog_identifier: String,
    pub limit_nofile: u64,
    /// Octal, e.g. `0o027`.
    pub umask: u32,
    /// `LoadCredential=ID:PATH`, one per certificate or key file.
    pub credentials: Vec<Credential>,
    pub sandbox: Sandbox,
}

/// `LoadCredential=ID:PATH`: systemd copies PATH (read as root) to `$CREDENTIALS_DIRECTORY/ID`
/// when the service starts, readable by the service's user alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: String,
    /// Unit-file text.
    pub path: String,
    /// Followed by `SetCredential=ID:`[`ACME_NOT_ISSUED`](graced_config::ACME_NOT_ISSUED):
    /// the start does not fail while the file does not exist yet (an ACME site before its
    /// first certificate); `LoadCredential=` wins once it does.
    pub empty_fallback: bool,
}

/// A `Type=oneshot` service: one job, run to its end (graced-acme by its timer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneshotSection {
    pub exec_start: Command,
    /// Run after `ExecStart=` whether it succeeded or not (its failure fails the unit).
    pub exec_stop_post: Vec<Command>,
    pub timeout_start: Duration,
    pub account: Account,
    pub state_directory: String,
    pub runtime_directory: String,
    /// `RuntimeDirectoryMode=`: others (graced) may read the HTTP-01 answers under it.
    pub runtime_directory_mode: u32,
    pub syslog_identifier: String,
    pub umask: u32,
    pub sandbox: Sandbox,
}

/// `[Timer]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSection {
    pub on_calendar: String,
    pub on_boot: Duration,
    pub randomized_delay: Duration,
    pub persistent: bool,
}

/// systemd's fd store for the service: how many fds it keeps, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdStore {
    /// `FileDescriptorStoreMax=`.
    pub max: u32,
    /// `FileDescriptorStorePreserve=` (systemd ≥ 254).
    pub preserve: FdStorePreserve,
}

/// `FileDescriptorStorePreserve=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdStorePreserve {
    /// Kept while the unit is loaded, across `stop` + `start` too.
    Yes,
}

/// `ProtectSystem=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectSystem {
    Strict,
}

/// `ProtectHome=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectHome {
    /// `/home`, `/root` and `/run/user` are inaccessible.
    Yes,
    /// They are empty tmpfs; single paths are bound in with `BindReadOnlyPaths=`/`BindPaths=`.
    Tmpfs,
}

/// `ProtectProc=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectProc {
    Invisible,
}

/// `ProcSubset=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcSubset {
    Pid,
}

/// `KeyringMode=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringMode {
    Private,
}

/// `DevicePolicy=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePolicy {
    Closed,
}

/// An address family for `RestrictAddressFamilies=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddressFamily {
    Unix,
    Inet,
    Inet6,
}

/// The sandboxing directives of `[Service]`, rendered alphabetically like systemd's own units.
///
/// A `bool` renders as `KEY=yes` when true and is left out when false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub bind_paths: Vec<String>,
    pub bind_read_only_paths: Vec<String>,
    /// Empty means `CapabilityBoundingSet=` (no capabilities at all).
    pub capability_bounding_set: Vec<String>,
    pub device_policy: Option<DevicePolicy>,
    pub ip_address_deny_any: bool,
    pub keyring_mode: Option<KeyringMode>,
    pub lock_personality: bool,
    pub memory_deny_write_execute: bool,
    pub no_new_privileges: bool,
    pub private_devices: bool,
    /// systemd ≥ 248.
    pub private_ipc: bool,
    pub private_mounts: bool,
    pub private_network: bool,
    pub private_tmp: bool,
    pub private_users: bool,
    pub proc_subset: Option<ProcSubset>,
    pub protect_clock: bool,
    pub protect_control_groups: bool,
    pub protect_home: Option<ProtectHome>,
    pub protect_hostname: bool,
    pub protect_kernel_logs: bool,
    pub protect_kernel_modules: bool,
    pub protect_kernel_tunables: bool,
    pub protect_proc: Option<ProtectProc>,
    pub protect_system: Option<ProtectSystem>,
    pub read_write_paths: Vec<String>,
    pub remove_ipc: bool,
    pub restrict_address_families: Vec<AddressFamily>,
    pub restrict_namespaces: bool,
    pub restrict_realtime: bool,
    pub restrict_suid_sgid: bool,
    pub system_call_architectures_native: bool,
    /// `SystemCallErrorNumber=`, e.g. `EPERM`.
    pub system_call_error_number: Option<&'static str>,
    /// Each entry is one `SystemCallFilter=` line (allow lists, then `~` deny lists).
    pub system_call_filter: Vec<&'static str>,
}

/// `[Socket]`: one listening socket (systemd names every fd of a socket unit alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSection {
    /// `ListenStream=` value: `1.2.3.4:80`, `[::]:80` or an absolute path.
    pub listen_stream: String,
    pub file_descriptor_name: String,
    /// The service it activates, when not the one of the same name.
    pub service: Option<String>,
    pub backlog: u32,
    /// `BindIPv6Only=` for IPv6 addresses.
    pub bind_ipv6_only: Option<BindIpv6Only>,
    /// `FreeBind=yes`: bind an address that is not configured yet (sockets start before the network).
    pub free_bind: bool,
    /// TCP only.
    pub no_delay: Option<bool>,
    /// Unix sockets only.
    pub socket_mode: Option<u32>,
    /// Unix sockets only: unlink the socket file when the socket unit stops.
    pub remove_on_stop: bool,
}

/// `BindIPv6Only=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindIpv6Only {
    Both,
    Ipv6Only,
}

/// `[Install]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallSection {
    pub wanted_by: Vec<String>,
}
