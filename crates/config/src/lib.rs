//! The typed configuration: loaded from TOML, validated once, read by the server and the unit generator.
//!
//! Loading is two steps (ripgrep's low → high args): [`raw`] deserialises the file
//! keeping every value's span, then [`validate`](Config::from_toml) checks everything that can be
//! checked before serving — addresses, duplicate names and addresses, document roots,
//! durations — and reports *every* problem as `FILE:LINE:COL: message` with a hint.

mod diagnostic;
mod raw;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use diagnostic::{ConfigError, Diagnostic};
use raw::{RawConfig, RawLimits, RawListen, RawServer, RawSite, RawWorkers};
use toml::Spanned;

/// Where the server looks for its configuration when no `-f` is given.
pub const DEFAULT_PATH: &str = "/etc/graced/graced.toml";

/// The configuration built into the binary: the demo site on 127.0.0.1:8080.
pub const EMBEDDED_DEFAULT: &str = include_str!("embedded-default.toml");

/// The name under which the embedded default reports its diagnostics.
pub const EMBEDDED_NAME: &str = "<embedded default>";

/// A `root` value that serves the demo site compiled into the binary.
pub const BUILTIN_DEMO_ROOT: &str = "builtin:demo";

/// The most worker threads `[server] workers` may ask for.
pub const MAX_WORKERS: usize = 1024;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it was read from (a path, or the embedded default).
    pub source: Source,
    pub server: Server,
    pub limits: Limits,
    /// At least one; names and addresses unique.
    pub listeners: Vec<Listener>,
    /// At least one; exactly one is the default site.
    pub sites: Vec<Site>,
}

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl Source {
    /// How diagnostics name it.
    pub fn display_name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Embedded => EMBEDDED_NAME.to_owned(),
        }
    }
}

/// The `[server]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// How long a graceful stop lets in-flight requests run before aborting them.
    pub graceful_shutdown_timeout: Duration,
    /// The pid file; `None` means the runtime default (see `lifecycle::pidfile`).
    pub pid_file: Option<PathBuf>,
    pub access_log: AccessLog,
    pub log_level: LogLevel,
    /// Account to run as (used by the unit generator; the server itself never changes user).
    pub user: Option<String>,
    pub group: Option<String>,
    /// `WatchdogSec=` for the generated unit; the server pings whenever systemd asks.
    pub watchdog: Option<Duration>,
    /// Keep the listeners in systemd's fd store too (`FDSTORE=1`): the generated unit
    /// gets `FileDescriptorStoreMax=` + `FileDescriptorStorePreserve=yes` (systemd ≥ 254,
    /// which tells the server through `$FDSTORE`). Off by default: socket units already
    /// keep the listeners, and a stored copy keeps a stopped socket unit's port bound.
    pub fd_store: bool,
    /// Worker threads serving connections (`None`: one per CPU graced may use). Read at
    /// start; a reload that changes it is applied at the next start.
    pub workers: Option<usize>,
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// Structured, through the diagnostic log: natively to the journal when stderr is
    /// the journal, otherwise as text on stderr.
    Journal,
    /// Plain combined-format lines on stderr.
    Stderr,
    Off,
    /// Combined-format lines appended to a file, reopened on every reload.
    File(PathBuf),
}

/// The diagnostic log's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// The `[limits]` table: every bound on what a client may make the server do.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Open connections at most; past it new connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// A request head must arrive completely within this (slowloris guard).
    pub header_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub keepalive_timeout: Duration,
    /// A response that makes no write progress for this long is aborted (slow readers).
    pub send_timeout: Duration,
    /// Longest request target accepted (414 beyond).
    pub max_request_line: usize,
    /// Largest total size of the header fields (431 beyond).
    pub max_header_bytes: usize,
    /// Most header fields (431 beyond).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(20),
            keepalive_timeout: Duration::from_secs(15),
            send_timeout: Duration::from_secs(60),
            max_request_line: 8192,
            max_header_bytes: 16384,
            max_headers: 100,
        }
    }
}

/// One `[[listen]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Matches the socket unit's `FileDescriptorName=`.
    pub name: String,
    pub address: ListenAddress,
    pub backlog: u32,
    /// For `[::]` addresses: accept IPv6 only (`true`) or IPv4 too (`false`).
    pub ipv6_only: Option<bool>,
    pub no_delay: bool,
    /// Permissions of a Unix socket file.
    pub socket_mode: Option<u32>,
}

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

/// One `[[site]]`: a virtual host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Lower-case host names without port; empty for the default site.
    pub hosts: Vec<String>,
    pub root: Root,
    /// Tried in order for a request that names a directory.
    pub index: Vec<String>,
    /// Serve files and directories whose name starts with a dot (`.well-known` always is).
    pub hidden_files: bool,
    /// Requests whose Host matches no site go here.
    pub is_default: bool,
}

/// Where a site's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// A directory on disk (absolute; checked to exist when validated).
    Dir(PathBuf),
    /// The demo site compiled into the binary.
    BuiltinDemo,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, Checks::All)
    }

    /// Reads and validates `path`, with or without the checks that look at the filesystem.
    pub fn load_with(path: &Path, checks: Checks) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml_with(Source::File(path.to_owned()), &text, checks)
    }

    /// The configuration compiled into the binary.
    pub fn embedded_default() -> Config {
        Config::from_toml(Source::Embedded, EMBEDDED_DEFAULT)
            .expect("the embedded default configuration is valid")
    }

    /// Reads `path` if given; otherwise [`DEFAULT_PATH`] if it exists, else the embedded default.
    pub fn locate(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => Config::load(path),
            None if Path::new(DEFAULT_PATH).exists() => Config::load(Path::new(DEFAULT_PATH)),
            None => Ok(Config::embedded_default()),
        }
    }

    /// Reads the configuration again from where this one came from.
    pub fn reload(&self) -> Result<Config, ConfigError> {
        match &self.source {
            Source::File(path) => Config::load(path),
            Source::Embedded => Ok(Config::embedded_default()),
        }
    }

    /// Parses and validates TOML `text`; relative paths are resolved against the
    /// directory of `source`.
    pub fn from_toml(source: Source, text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with(source, text, Checks::All)
    }

    /// [`from_toml`](Config::from_toml), choosing which checks run.
    pub fn from_toml_with(source: Source, text: &str, checks: Checks) -> Result<Config, ConfigError> {
        let file = source.display_name();
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let span = err.span().unwrap_or(0..0);
            let message = err.message().trim_end().trim_end_matches('.').to_owned();
            let hint = syntax_hint(&message);
            ConfigError::Invalid(vec![Diagnostic::at(&file, text, span, message, hint)])
        })?;
        let base = match &source {
            Source::File(path) => path.parent().map(Path::to_owned).unwrap_or_default(),
            Source::Embedded => PathBuf::from("/"),
        };
        let mut check = Checker { file: &file, text, base: &base, checks, problems: Vec::new() };
        let server = check.server(raw.server);
        let limits = check.limits(raw.limits);
        let listeners = check.listeners(raw.listen);
        let sites = check.sites(raw.site);
        if check.problems.is_empty() {
            Ok(Config { source, server, limits, listeners, sites })
        } else {
            Err(ConfigError::Invalid(check.problems))
        }
    }

    /// The site for a request's Host (already lower-cased, without port).
    pub fn site_for_host(&self, host: Option<&str>) -> &Site {
        &self.sites[self.site_index_for_host(host)]
    }

    /// The index in `sites` of the site for a request's Host.
    pub fn site_index_for_host(&self, host: Option<&str>) -> usize {
        host.and_then(|h| self.sites.iter().position(|s| s.hosts.iter().any(|n| n == h)))
            .or_else(|| self.sites.iter().position(|s| s.is_default))
            .expect("a validated configuration has a default site")
    }
}

fn syntax_hint(message: &str) -> Option<String> {
    Some(if message.starts_with("unknown field") {
        "remove the key or correct its spelling; the reference is in README.md".into()
    } else if message.starts_with("invalid type") {
        "check the value's type: strings are quoted, numbers are not".into()
    } else if message.starts_with("missing field") {
        "add the key to this table".into()
    } else if message.starts_with("duplicate key") {
        "each key may appear once per table".into()
    } else {
        "this is not valid TOML here: check quotes, brackets and `key = value` (see https://toml.io)".into()
    })
}

/// Which validation steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Everything, including that document roots exist (the server, `graced -t`).
    All,
    /// Everything but the filesystem: a unit generator runs at boot, before file
    /// systems such as /srv are mounted.
    WithoutFilesystem,
}

/// Collects every problem while converting raw values.
struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    base: &'a Path,
    checks: Checks,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, message: impl Into<String>, hint: &str) {
        let hint = (!hint.is_empty()).then(|| hint.to_owned());
        self.problems.push(Diagnostic::at(self.file, self.text, at.span(), message, hint));
    }

    fn problem_at_top(&mut self, message: impl Into<String>, hint: &str) {
        self.problems.push(Diagnostic::at(self.file, self.text, 0..0, message, Some(hint.into())));
    }

    fn duration(&mut self, value: &Option<Spanned<String>>, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.problem(
                    value,
                    "a duration of zero is not allowed here",
                    "give a positive duration such as \"30s\"",
                );
                default
            }
            Ok(d) if d > Duration::from_secs(24 * 3600) => {
                self.problem(
                    value,
                    format!("duration {:?} is longer than a day", value.get_ref()),
                    "give at most \"24h\"",
                );
                default
            }
            Ok(d) => d,
            Err(err) => {
                self.problem(
                    value,
                    format!("invalid duration {:?}: {err}", value.get_ref()),
                    "write durations like \"500ms\", \"30s\" or \"2min\"",
                );
                default
            }
        }
    }

    fn count(
        &mut self,
        value: &Option<Spanned<i64>>,
        default: usize,
        range: std::ops::RangeInclusive<i64>,
    ) -> usize {
        let Some(value) = value else { return default };
        let n = *value.get_ref();
        if range.contains(&n) {
            n as usize
        } else {
            self.problem(
                value,
                format!("{n} is out of range"),
                &format!("give a number from {} to {}", range.start(), range.end()),
            );
            default
        }
    }

    fn absolute(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() { path.to_owned() } else { self.base.join(path) }
    }

    fn server(&mut self, raw: RawServer) -> Server {
        let graceful_shutdown_timeout =
            self.duration(&raw.graceful_shutdown_timeout, Duration::from_secs(30));
        let pid_file = raw.pid_file.as_ref().map(|p| {
            if p.get_ref().is_empty() {
                self.problem(
                    p,
                    "pid_file is empty",
                    "give an absolute path such as \"/run/graced/graced.pid\"",
                );
            }
            self.absolute(p.get_ref())
        });
        let access_log = match raw.access_log.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "journal")) => AccessLog::Journal,
            Some((_, "stderr")) => AccessLog::Stderr,
            Some((_, "off")) => AccessLog::Off,
            Some((v, path)) if path.contains('/') => {
                let _ = v;
                AccessLog::File(self.absolute(path))
            }
            Some((v, other)) => {
                self.problem(
                    v,
                    format!("unknown access_log {other:?}"),
                    "use \"journal\", \"stderr\", \"off\" or a file path containing a '/'",
                );
                AccessLog::Journal
            }
        };
        let log_level = match raw.log_level.as_ref().map(|v| (v, v.get_ref().to_ascii_lowercase())) {
            None => LogLevel::Info,
            Some((v, level)) => match level.as_str() {
                "error" => LogLevel::Error,
                "warn" | "warning" => LogLevel::Warn,
                "info" => LogLevel::Info,
                "debug" => LogLevel::Debug,
                "trace" => LogLevel::Trace,
                _ => {
                    self.problem(
                        v,
                        format!("unknown log_level {:?}", v.get_ref()),
                        "use error, warn, info, debug or trace",
                    );
                    LogLevel::Info
                }
            },
        };
        let mut account = |v: &Option<Spanned<String>>, what: &str| {
            let v = v.as_ref()?;
            let name = v.get_ref();
            let valid = !name.is_empty()
                && name.len() <= 32
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                && !name.starts_with('-');
            if !valid {
                self.problem(
                    v,
                    format!("{what} {name:?} is not a valid account name"),
                    "use letters, digits, '_', '-' and '.' (at most 32)",
                );
            }
            Some(name.clone())
        };
        let user = account(&raw.user, "user");
        let group = account(&raw.group, "group");
        let watchdog = raw.watchdog.as_ref().map(|_| self.duration(&raw.watchdog, Duration::from_secs(30)));
        let fd_store = raw.fd_store.unwrap_or(false);
        let workers = raw.workers.as_ref().and_then(|v| match v.get_ref() {
            RawWorkers::Word(word) if word == "auto" => None,
            RawWorkers::Count(n) if (1..=MAX_WORKERS as i64).contains(n) => Some(*n as usize),
            RawWorkers::Count(n) => {
                self.problem(
                    v,
                    format!("workers = {n} is out of range"),
                    &format!("give \"auto\" (one per CPU) or a number from 1 to {MAX_WORKERS}"),
                );
                None
            }
            RawWorkers::Word(word) => {
                self.problem(
                    v,
                    format!("unknown workers {word:?}"),
                    "give \"auto\" (one per CPU) or a number of threads such as 4",
                );
                None
            }
        });
        Server {
            graceful_shutdown_timeout,
            pid_file,
            access_log,
            log_level,
            user,
            group,
            watchdog,
            fd_store,
            workers,
        }
    }

    fn limits(&mut self, raw: RawLimits) -> Limits {
        let d = Limits::default();
        Limits {
            max_connections: self.count(&raw.max_connections, d.max_connections, 1..=1_000_000),
            header_timeout: self.duration(&raw.header_timeout, d.header_timeout),
            keepalive_timeout: self.duration(&raw.keepalive_timeout, d.keepalive_timeout),
            send_timeout: self.duration(&raw.send_timeout, d.send_timeout),
            max_request_line: self.count(&raw.max_request_line, d.max_request_line, 256..=65_536),
            max_header_bytes: self.count(&raw.max_header_bytes, d.max_header_bytes, 1024..=262_144),
            max_headers: self.count(&raw.max_headers, d.max_headers, 8..=1000),
        }
    }

    fn listeners(&mut self, raw: Vec<RawListen>) -> Vec<Listener> {
        if raw.is_empty() {
            self.problem_at_top(
                "no [[listen]] table",
                "add one, e.g. [[listen]] name = \"http\" address = \"0.0.0.0:80\"",
            );
        }
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut addresses: HashMap<ListenAddress, usize> = HashMap::new();
        let mut out = Vec::new();
        for l in raw {
            let name = l.name.get_ref().clone();
            // It becomes FileDescriptorName= and part of a socket unit's name.
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid_name {
                self.problem(&l.name, format!("listener name {name:?} is not usable as a socket name"), "use 1-64 letters, digits, '_', '.' or '-' (it becomes FileDescriptorName= and part of a unit name)");
            }
            let (line, _) = diagnostic::line_column(self.text, l.name.span().start);
            if let Some(first) = names.insert(name.clone(), line) {
                self.problem(
                    &l.name,
                    format!("duplicate listener name {name:?} (first defined on line {first})"),
                    "give each [[listen]] its own name",
                );
            }
            let address = match parse_address(l.address.get_ref()) {
                Ok(ListenAddress::Unix(p)) if !p.is_absolute() => {
                    self.problem(
                        &l.address,
                        "a Unix socket path must be absolute",
                        "write it as \"/run/graced/http.sock\"",
                    );
                    None
                }
                Ok(a) => Some(a),
                Err(message) => {
                    self.problem(
                        &l.address,
                        message,
                        "write \"127.0.0.1:8080\", \"[::]:80\" or an absolute Unix socket path",
                    );
                    None
                }
            };
            if let Some(address) = &address {
                let (line, _) = diagnostic::line_column(self.text, l.address.span().start);
                if let Some(first) = addresses.insert(address.clone(), line) {
                    self.problem(
                        &l.address,
                        format!("address {address} is already used by the listener on line {first}"),
                        "each address may be listened on once",
                    );
                }
            }
            let backlog = self.count(&l.backlog, 511, 1..=65_535) as u32;
            let socket_mode =
                l.socket_mode.as_ref().and_then(|m| match u32::from_str_radix(m.get_ref(), 8) {
                    Ok(mode) if mode <= 0o777 => Some(mode),
                    _ => {
                        self.problem(
                            m,
                            format!("socket_mode {:?} is not an octal permission", m.get_ref()),
                            "write it like \"0660\"",
                        );
                        None
                    }
                });
            if let Some(address) = address {
                out.push(Listener {
                    name,
                    address,
                    backlog,
                    ipv6_only: l.ipv6_only,
                    no_delay: l.no_delay.unwrap_or(true),
                    socket_mode,
                });
            }
        }
        out
    }

    fn sites(&mut self, raw: Vec<RawSite>) -> Vec<Site> {
        if raw.is_empty() {
            self.problem_at_top("no [[site]] table", "add one, e.g. [[site]] root = \"/srv/www\"");
        }
        let mut hosts_seen: HashMap<String, usize> = HashMap::new();
        let mut default_line: Option<usize> = None;
        let mut out = Vec::new();
        for s in raw {
            let mut hosts = Vec::new();
            for h in s.hosts.as_ref().map(|h| h.get_ref().as_slice()).unwrap_or_default() {
                let host = h.get_ref().trim_end_matches('.').to_ascii_lowercase();
                let valid = !host.is_empty()
                    && host.len() <= 253
                    && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.*[]:".contains(c));
                if !valid {
                    self.problem(
                        h,
                        format!("{:?} is not a host name", h.get_ref()),
                        "write host names without scheme, port or path, e.g. \"example.org\"",
                    );
                    continue;
                }
                let (line, _) = diagnostic::line_column(self.text, h.span().start);
                if let Some(first) = hosts_seen.insert(host.clone(), line) {
                    self.problem(
                        h,
                        format!("host {host:?} is already served by the site on line {first}"),
                        "a host name may belong to one site only",
                    );
                }
                hosts.push(host);
            }
            let is_default = hosts.is_empty();
            if is_default {
                let at = s.hosts.as_ref().map(|h| h.span()).unwrap_or(s.root.span());
                let (line, _) = diagnostic::line_column(self.text, at.start);
                if let Some(first) = default_line {
                    self.problems.push(Diagnostic::at(
                        self.file,
                        self.text,
                        at,
                        format!("a second default site (the first is on line {first})"),
                        Some("give this site hosts = [...], or remove one".into()),
                    ));
                }
                default_line = Some(line);
            }
            let root = if s.root.get_ref() == BUILTIN_DEMO_ROOT {
                Root::BuiltinDemo
            } else {
                let path = self.absolute(s.root.get_ref());
                match std::fs::metadata(&path) {
                    _ if self.checks == Checks::WithoutFilesystem => {}
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => self.problem(
                        &s.root,
                        format!("document root {} is not a directory", path.display()),
                        "point root at a directory",
                    ),
                    Err(err) => self.problem(
                        &s.root,
                        format!("document root {}: {err}", path.display()),
                        "create the directory or correct the path",
                    ),
                }
                Root::Dir(path)
            };
            let mut index = Vec::new();
            for i in s.index.unwrap_or_else(|| vec![Spanned::new(0..0, "index.html".to_owned())]) {
                let name = i.get_ref();
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    self.problem(
                        &i,
                        format!("index {name:?} is not a file name"),
                        "list plain file names such as \"index.html\"",
                    );
                } else {
                    index.push(name.clone());
                }
            }
            out.push(Site { hosts, root, index, hidden_files: s.hidden_files.unwrap_or(false), is_default });
        }
        if default_line.is_none()
            && let Some(first) = out.first_mut()
        {
            first.is_default = true;
        }
        out
    }
}

/// Parses a listen address: `IP:PORT`, `[IPv6]:PORT`, or a Unix socket path (`/…` or `unix:/…`).
pub fn parse_address(text: &str) -> Result<ListenAddress, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        return Ok(ListenAddress::Unix(PathBuf::from(path)));
    }
    if text.starts_with('/') || text.starts_with('.') {
        return Ok(ListenAddress::Unix(PathBuf::from(text)));
    }
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err(format!("address {text:?} has port 0")),
        Ok(addr) => Ok(ListenAddress::Tcp(addr)),
        Err(_) if !text.contains(':') => Err(format!("address {text:?} has no port")),
        Err(_) => Err(format!("{text:?} is not an IP address with a port")),
    }
}

#[cfg(test)]
mod tests;
