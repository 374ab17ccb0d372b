//! The pure builder: a validated configuration + a target systemd version → unit files.
//!
//! Every decision the generated units encode is made here, with its reason next to it.
//! No IO: paths are checked as text, never looked up.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::Error;
use super::model::*;
use graced_config::{AccessLog, Config, ListenAddress, Listener, Root};

/// The oldest systemd the units are written for (Debian 11): `ProtectProc=` and
/// `ProcSubset=` need it.
pub const MIN_SYSTEMD: u32 = 247;
/// `Type=notify-reload` + `ReloadSignal=`; 252 silently reads the type as `simple`.
pub const NOTIFY_RELOAD_SINCE: u32 = 253;
/// `FileDescriptorStorePreserve=` and `$FDSTORE` (how the server learns that it may store
/// fds). `FileDescriptorStoreMax=` itself is older, but without `$FDSTORE` the server does
/// not store, so `[server] fd_store` writes both directives from 254 on and neither before.
pub const FD_STORE_SINCE: u32 = 254;
/// `PrivateIPC=`.
const PRIVATE_IPC_SINCE: u32 = 248;
/// The version assumed when it cannot be asked: its unit form is correct on every newer one.
pub const FALLBACK_SYSTEMD: u32 = 252;

/// Where the packaged binary lives.
pub const DEFAULT_BINARY: &str = "/usr/sbin/graced";
/// The unit name of the packaged server.
pub const DEFAULT_NAME: &str = "graced";

/// Added to `graceful_shutdown_timeout` for `TimeoutStopSec=`: after the drain deadline the
/// server aborts what is left, removes its pid file and exits, which takes well under a
/// second; 5 s of slack still kills a wedged server promptly. (A drain in progress extends
/// the timeout itself with EXTEND_TIMEOUT_USEC.)
pub const STOP_MARGIN: Duration = Duration::from_secs(5);
/// `StartLimitIntervalSec=`/`StartLimitBurst=`: systemd's 5 starts in 10 s counts manual
/// restarts and, when hit, fails the .socket too, closing the listener socket activation
/// keeps open. 50 starts in 10 s lets a burst of manual restarts through, while
/// `RestartSec=` paces a crash loop at one start a second, well under it.
pub const START_LIMIT_INTERVAL: Duration = Duration::from_secs(10);
pub const START_LIMIT_BURST: u32 = 50;
pub const RESTART_SEC: Duration = Duration::from_secs(1);
/// `LimitNOFILE=` = 2 per connection (its socket + the file being sent) + a reserve for
/// listeners, logs, the journal, the notify and control sockets, capped at the kernel's
/// default `fs.nr_open` (a higher value makes the start fail).
const NOFILE_PER_CONNECTION: u64 = 2;
const NOFILE_RESERVE: u64 = 64;
const NOFILE_CEILING: u64 = 1 << 20;
/// Files the service creates are not readable by others (pid file, control socket, logs).
const UMASK: u32 = 0o027;

/// Which family of units to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `NAME.service`, `NAME.socket`.
    Plain,
    /// `NAME@.service`, `NAME@.socket`: instances read `DIR/%i.toml`, DIR being the
    /// configuration's directory.
    Template,
    /// `NAME@INSTANCE.service`, `NAME@INSTANCE.socket`: a template specialised for one
    /// instance configuration (the generator's output).
    Instance(String),
}

/// Who writes the units; only changes the header comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `graced unit`.
    Command,
    /// `graced-generator`, at boot and on `systemctl daemon-reload`.
    Generator,
}

/// Where things are installed and what to call them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Unit name stem (`graced`).
    pub name: String,
    /// Absolute path of the server binary.
    pub binary: PathBuf,
    /// Absolute path the units pass to `-f`.
    pub config_path: PathBuf,
    pub kind: Kind,
    pub origin: Origin,
    /// `SourcePath=`: the file the units were generated from (generator output only).
    pub source_path: Option<PathBuf>,
    /// `Documentation=` URLs.
    pub documentation: Vec<String>,
}

impl Options {
    /// The packaged layout (`/usr/sbin/graced`, unit `graced`) for a configuration at `config_path`.
    pub fn new(config_path: impl Into<PathBuf>) -> Options {
        Options {
            name: DEFAULT_NAME.to_owned(),
            binary: PathBuf::from(DEFAULT_BINARY),
            config_path: config_path.into(),
            kind: Kind::Plain,
            origin: Origin::Command,
            source_path: None,
            documentation: Vec::new(),
        }
    }
}

/// The units for `config` under systemd `systemd`: the service, then one socket per listener.
pub fn build(config: &Config, systemd: u32, options: &Options) -> Result<Bundle, Error> {
    if systemd < MIN_SYSTEMD {
        return Err(Error::SystemdTooOld { version: systemd });
    }
    check_unit_name(&options.name)?;
    let names = Names::new(options, &config.listeners)?;
    let runtime_directory = runtime_directory(config, options)?;
    let exec = Exec::new(options)?;
    let paths = Paths::new(config, options, &runtime_directory)?;
    let source_path = options.source_path.as_deref().map(|p| unit_path(p, "source")).transpose()?;
    let header = header(options, systemd, &exec.config_display);
    let builder =
        Builder { config, systemd, options, names, exec, paths, runtime_directory, source_path, header };

    let mut files = vec![File {
        name: builder.names.file(&options.name, "service"),
        artifact: Artifact::Unit(builder.service()),
    }];
    for (index, listener) in config.listeners.iter().enumerate() {
        files.push(File {
            name: builder.names.file(&builder.names.socket_stems[index], "socket"),
            artifact: Artifact::Unit(builder.socket(listener, index)?),
        });
    }
    Ok(Bundle { files })
}

/// Everything decided before the units are assembled.
struct Builder<'a> {
    config: &'a Config,
    systemd: u32,
    options: &'a Options,
    names: Names,
    exec: Exec,
    paths: Paths,
    runtime_directory: String,
    source_path: Option<String>,
    header: Vec<String>,
}

/// How the units of one bundle refer to each other.
struct Names {
    /// `""`, `"%i"` or the instance name; with `@` in front unless plain.
    instance: Option<String>,
    /// Unit name stems of the sockets, first listener first: `NAME`, then `NAME-LISTENER`.
    socket_stems: Vec<String>,
    service: String,
    sockets: Vec<String>,
}

impl Names {
    fn new(options: &Options, listeners: &[Listener]) -> Result<Names, Error> {
        let instance = match &options.kind {
            Kind::Plain => None,
            Kind::Template => Some("%i".to_owned()),
            Kind::Instance(name) => {
                check_instance_name(name)?;
                Some(name.clone())
            }
        };
        let mut socket_stems = Vec::new();
        for (index, listener) in listeners.iter().enumerate() {
            check_listener_name(&listener.name)?;
            if index == 0 {
                socket_stems.push(options.name.clone());
            } else {
                socket_stems.push(format!("{}-{}", options.name, listener.name));
            }
        }
        let mut names = Names { instance, socket_stems, service: String::new(), sockets: Vec::new() };
        names.service = names.reference(&options.name, "service");
        names.sockets = names.socket_stems.iter().map(|stem| names.reference(stem, "socket")).collect();
        for name in std::iter::once(&names.service).chain(&names.sockets) {
            if name.len() > 255 {
                return Err(Error::InvalidName {
                    name: name.clone(),
                    reason: "a unit name has at most 255 characters",
                });
            }
        }
        Ok(names)
    }

    /// The file name: `graced.service`, `graced@.service`, `graced@blog.service`.
    fn file(&self, stem: &str, suffix: &str) -> String {
        match &self.instance {
            None => format!("{stem}.{suffix}"),
            Some(i) if i == "%i" => format!("{stem}@.{suffix}"),
            Some(i) => format!("{stem}@{i}.{suffix}"),
        }
    }

    /// The name other units use: `graced.socket`, `graced@%i.socket`, `graced@blog.socket`.
    fn reference(&self, stem: &str, suffix: &str) -> String {
        match &self.instance {
            None => format!("{stem}.{suffix}"),
            Some(i) => format!("{stem}@{i}.{suffix}"),
        }
    }

    /// `graced`, `graced@%i`, `graced@blog`.
    fn identifier(&self, stem: &str) -> String {
        match &self.instance {
            None => stem.to_owned(),
            Some(i) => format!("{stem}@{i}"),
        }
    }

    /// ` (instance blog)` for descriptions.
    fn description_suffix(&self) -> String {
        match &self.instance {
            None => String::new(),
            Some(i) => format!(" (instance {i})"),
        }
    }
}

/// The command lines.
struct Exec {
    program: String,
    /// Unit-file text for `-f`.
    config: String,
    /// The same for comments.
    config_display: String,
}

impl Exec {
    fn new(options: &Options) -> Result<Exec, Error> {
        let program = unit_path(&options.binary, "binary")?;
        if !options.binary.is_absolute() {
            return Err(Error::RelativePath { what: "binary", path: options.binary.clone() });
        }
        if !options.config_path.is_absolute() {
            return Err(Error::RelativePath { what: "configuration", path: options.config_path.clone() });
        }
        let (config, config_display) = match options.kind {
            Kind::Template => {
                let dir = options.config_path.parent().unwrap_or(Path::new("/"));
                let dir_text = unit_path(dir, "configuration directory")?;
                let sep = if dir_text.ends_with('/') { "" } else { "/" };
                (format!("{dir_text}{sep}%i.toml"), format!("{}{sep}%i.toml", dir.display()))
            }
            _ => {
                (unit_path(&options.config_path, "configuration")?, options.config_path.display().to_string())
            }
        };
        Ok(Exec { program, config, config_display })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push("-f".to_owned());
        args.push(self.config.clone());
        Command { program: self.program.clone(), args }
    }
}

/// The directory under /run that holds the pid file and the control socket.
fn runtime_directory(config: &Config, options: &Options) -> Result<String, Error> {
    let Some(pid_file) = &config.server.pid_file else {
        // The server falls back to $RUNTIME_DIRECTORY/graced.pid.
        return Ok(match &options.kind {
            Kind::Plain => options.name.clone(),
            // Not NAME/INSTANCE: stopping NAME.service would remove /run/NAME and with it
            // every running instance's pid file and control socket.
            Kind::Template => format!("{}-%i", options.name),
            Kind::Instance(i) => format!("{}-{i}", options.name),
        });
    };
    if options.kind == Kind::Template {
        return Err(Error::PidFileInTemplate { path: pid_file.clone() });
    }
    let outside = || Error::PidFileOutsideRun { path: pid_file.clone() };
    let relative = pid_file.strip_prefix("/run").map_err(|_| outside())?;
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(outside());
    }
    let dir = relative.parent().filter(|d| !d.as_os_str().is_empty()).ok_or_else(outside)?;
    unit_path(dir, "pid_file directory")
}

/// What the sandbox must let through, from the configuration's paths.
struct Paths {
    runtime_directory_abs: PathBuf,
    read_only_binds: Vec<String>,
    binds: Vec<String>,
    read_write: Vec<String>,
    logs_directory: Option<String>,
    mounts: Vec<String>,
    protect_home: ProtectHome,
    families: Vec<AddressFamily>,
}

/// Invisible under `ProtectHome=`: bound back in one by one with `ProtectHome=tmpfs`.
const HOME_DIRS: [&str; 3] = ["/home", "/root", "/run/user"];
/// Private and empty under `PrivateTmp=yes`.
const TMP_DIRS: [&str; 2] = ["/tmp", "/var/tmp"];

fn under_any(path: &Path, dirs: &[&str]) -> Option<PathBuf> {
    dirs.iter().map(PathBuf::from).find(|d| path.starts_with(d))
}

impl Paths {
    fn new(config: &Config, options: &Options, runtime_directory: &str) -> Result<Paths, Error> {
        let mut paths = Paths {
            runtime_directory_abs: Path::new("/run").join(runtime_directory),
            read_only_binds: Vec::new(),
            binds: Vec::new(),
            read_write: Vec::new(),
            logs_directory: None,
            mounts: Vec::new(),
            protect_home: ProtectHome::Yes,
            families: vec![AddressFamily::Unix],
        };
        let config_dir = options.config_path.parent().unwrap_or(Path::new("/"));
        paths.readable("configuration", config_dir, false)?;
        for site in &config.sites {
            if let Root::Dir(root) = &site.root {
                paths.readable("document root", root, true)?;
            }
        }
        if let AccessLog::File(file) = &config.server.access_log {
            paths.writable_log(file)?;
        }
        if config.listeners.iter().any(|l| matches!(l.address, ListenAddress::Tcp(_))) {
            // Accepting on an inherited socket needs no socket(2), so AF_UNIX alone (journal,
            // notify, control socket) would do; AF_INET/AF_INET6 are kept so that nothing
            // the server does with its listeners can fail on the filter.
            paths.families.extend([AddressFamily::Inet, AddressFamily::Inet6]);
        }
        if paths.protect_home == ProtectHome::Tmpfs {
            dedup(&mut paths.read_only_binds);
            dedup(&mut paths.binds);
        }
        dedup(&mut paths.mounts);
        Ok(paths)
    }

    fn readable(&mut self, what: &'static str, path: &Path, mount: bool) -> Result<(), Error> {
        if let Some(dir) = under_any(path, &TMP_DIRS) {
            return Err(Error::HiddenByPrivateTmp { what, path: path.to_owned(), dir });
        }
        let text = unit_path(path, what)?;
        if under_any(path, &HOME_DIRS).is_some() {
            self.protect_home = ProtectHome::Tmpfs;
            self.read_only_binds.push(text.clone());
        }
        if mount {
            self.mounts.push(text);
        }
        Ok(())
    }

    fn writable_log(&mut self, file: &Path) -> Result<(), Error> {
        let what = "access_log directory";
        let dir = file.parent().unwrap_or(Path::new("/"));
        if let Some(tmp) = under_any(dir, &TMP_DIRS) {
            return Err(Error::HiddenByPrivateTmp { what, path: file.to_owned(), dir: tmp });
        }
        if dir.starts_with(&self.runtime_directory_abs) {
            return Ok(());
        }
        if let Ok(relative) = dir.strip_prefix("/var/log") {
            if relative.as_os_str().is_empty() {
                return Err(Error::AccessLogInVarLog { path: file.to_owned() });
            }
            // systemd creates it, owned by the service's user (also a dynamic one).
            self.logs_directory = Some(unit_path(relative, what)?);
            return Ok(());
        }
        let text = unit_path(dir, what)?;
        if under_any(dir, &HOME_DIRS).is_some() {
            self.protect_home = ProtectHome::Tmpfs;
            self.binds.push(text.clone());
        } else {
            self.read_write.push(text.clone());
        }
        self.mounts.push(text);
        Ok(())
    }
}

fn dedup(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|item| seen.insert(item.clone()));
}

fn header(options: &Options, systemd: u32, config: &str) -> Vec<String> {
    let mut lines = match options.origin {
        Origin::Command => vec![
            format!("Generated by `graced unit` from {config} for systemd {systemd}."),
            "Regenerate it when the configuration changes; keep local changes in drop-ins.".to_owned(),
        ],
        Origin::Generator => vec![
            format!("Generated by graced-generator from {config} for systemd {systemd}."),
            "Edit the configuration and run `systemctl daemon-reload`; this file is rewritten then."
                .to_owned(),
        ],
    };
    if options.kind == Kind::Template {
        lines.push("Each instance gets its own listeners in a drop-in for its sockets:".to_owned());
        lines.push("[Socket] ListenStream= (empty, to reset) then ListenStream=ADDRESS.".to_owned());
    }
    lines
}

impl Builder<'_> {
    fn service(&self) -> UnitFile {
        let (config, options, names, exec, paths) =
            (self.config, self.options, &self.names, &self.exec, &self.paths);
        let systemd = self.systemd;
        let notify_reload = systemd >= NOTIFY_RELOAD_SINCE;
        let unit = UnitSection {
            description: format!("graced web server{}", names.description_suffix()),
            documentation: options.documentation.clone(),
            source_path: self.source_path.clone(),
            requires: names.sockets.clone(),
            wants: Vec::new(),
            part_of: Vec::new(),
            after: names.sockets.clone(),
            requires_mounts_for: paths.mounts.clone(),
            start_limit_interval: Some(START_LIMIT_INTERVAL),
            start_limit_burst: Some(START_LIMIT_BURST),
        };
        let check = exec.command(&["-t"]);
        let service = ServiceSection {
            service_type: if notify_reload { ServiceType::NotifyReload } else { ServiceType::Notify },
            notify_access: NotifyAccess::Main,
            reload_signal: notify_reload.then_some(Signal::Usr1),
            sockets: names.sockets.clone(),
            exec_start_pre: vec![check],
            exec_start: exec.command(&[]),
            // ≥ 253: systemd signals and waits for READY=1, but no notify field can fail the job;
            // an ExecReload= that exits non-zero can, and it runs after the signal: it asks the
            // server for that reload's outcome (`--signalled`), so a configuration the server
            // rejects fails the reload even where `graced -t` would accept the file.
            // < 253: the command itself sends USR1 and waits until the new configuration
            // serves, or fails.
            exec_reload: vec![if notify_reload {
                exec.command(&["-k", "graceful", "--wait", "--signalled"])
            } else {
                exec.command(&["-k", "graceful", "--wait"])
            }],
            kill_mode: KillMode::Mixed,
            kill_signal: Signal::Winch,
            timeout_stop: config.server.graceful_shutdown_timeout + STOP_MARGIN,
            restart: Restart::OnFailure,
            restart_sec: RESTART_SEC,
            watchdog: config.server.watchdog,
            // Opt-in: the socket units already keep every listener across restart, crash and
            // stop + start; a stored copy adds nothing for them, and keeps the port of a
            // stopped socket unit bound (restarting graced.socket then fails: EADDRINUSE).
            fd_store: (config.server.fd_store && systemd >= FD_STORE_SINCE).then(|| FdStore {
                max: config.listeners.len().max(1) as u32,
                preserve: FdStorePreserve::Yes,
            }),
            account: match (&config.server.user, &config.server.group) {
                (Some(user), group) => Account::Static { user: user.clone(), group: group.clone() },
                (None, group) => Account::Dynamic { group: group.clone() },
            },
            runtime_directory: self.runtime_directory.clone(),
            logs_directory: paths.logs_directory.clone(),
            syslog_identifier: names.identifier(&options.name),
            limit_nofile: (config.limits.max_connections as u64 * NOFILE_PER_CONNECTION + NOFILE_RESERVE)
                .min(NOFILE_CEILING),
            umask: UMASK,
            sandbox: sandbox(systemd, paths),
        };
        UnitFile {
            header: self.header.clone(),
            unit,
            body: Body::Service(Box::new(service)),
            install: None, // only the socket is enabled; traffic or the socket's start brings the service
        }
    }

    fn socket(&self, listener: &Listener, index: usize) -> Result<UnitFile, Error> {
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

fn sandbox(systemd: u32, paths: &Paths) -> Sandbox {
    Sandbox {
        bind_paths: paths.binds.clone(),
        bind_read_only_paths: paths.read_only_binds.clone(),
        capability_bounding_set: Vec::new(),
        device_policy: Some(DevicePolicy::Closed),
        // Does not touch accepted connections: they belong to the listening socket, which
        // PID 1 created (filter clients on the .socket unit instead).
        ip_address_deny_any: true,
        keyring_mode: Some(KeyringMode::Private),
        lock_personality: true,
        memory_deny_write_execute: true,
        no_new_privileges: true,
        private_devices: true,
        private_ipc: systemd >= PRIVATE_IPC_SINCE,
        private_mounts: true,
        // The listening sockets come from PID 1's network namespace; the server needs no other.
        private_network: true,
        private_tmp: true,
        private_users: true,
        proc_subset: Some(ProcSubset::Pid),
        protect_clock: true,
        protect_control_groups: true,
        protect_home: Some(paths.protect_home),
        protect_hostname: true,
        protect_kernel_logs: true,
        protect_kernel_modules: true,
        protect_kernel_tunables: true,
        protect_proc: Some(ProtectProc::Invisible),
        protect_system: Some(ProtectSystem::Strict),
        read_write_paths: paths.read_write.clone(),
        remove_ipc: true,
        restrict_address_families: paths.families.clone(),
        restrict_namespaces: true,
        restrict_realtime: true,
        restrict_suid_sgid: true,
        system_call_architectures_native: true,
        system_call_error_number: Some("EPERM"),
        system_call_filter: vec!["@system-service", "~@privileged @resources"],
    }
}

/// `1.2.3.4:80`, `[::]:80`, `[fe80::1]:80%%2` (systemd puts the scope after the port).
fn listen_tcp(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) if a.scope_id() != 0 => format!("[{}]:{}%%{}", a.ip(), a.port(), a.scope_id()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// A path as unit-file text: UTF-8, no whitespace, quotes, backslashes or control
/// characters (which would need quoting), `%` escaped as `%%`.
fn unit_path(path: &Path, what: &'static str) -> Result<String, Error> {
    let unsupported = |reason| Error::UnsupportedPath { what, path: path.to_owned(), reason };
    let text = path.to_str().ok_or_else(|| unsupported("it is not UTF-8"))?;
    if text.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\')) {
        return Err(unsupported("it contains whitespace, a quote, a backslash or a control character"));
    }
    Ok(text.replace('%', "%%"))
}

fn is_unit_word(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_unit_name(name: &str) -> Result<(), Error> {
    if is_unit_word(name) && !name.starts_with(['.', '-']) {
        Ok(())
    } else {
        Err(Error::InvalidName { name: name.to_owned(), reason: "use letters, digits, '_', '.' and '-'" })
    }
}

fn check_instance_name(name: &str) -> Result<(), Error> {
    if is_unit_word(name) && !name.starts_with(['.', '-']) {
        Ok(())
    } else {
        Err(Error::InvalidInstance { name: name.to_owned() })
    }
}

fn check_listener_name(name: &str) -> Result<(), Error> {
    if is_unit_word(name) { Ok(()) } else { Err(Error::ListenerName { name: name.to_owned() }) }
}

#[cfg(test)]
mod tests;
