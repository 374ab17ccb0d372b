//! The validated configuration's types: what the server and the unit generator read.
//!
//! Nearly a leaf (it names `rules::SiteRules`): nothing here loads or checks (`check` does, through [`Config::from_toml`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::rules::SiteRules;

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
    pub tls: Tls,
    pub http2: Http2,
    /// `[acme]`: where graced-acme writes certificates and HTTP-01 answers.
    pub acme: Acme,
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
    /// How long a binary upgrade waits for the new binary to serve before it kills it
    /// and keeps serving (`-k upgrade`, USR2).
    pub upgrade_timeout: Duration,
    /// The pid file; `None` means the runtime default (see `lifecycle::pidfile`).
    pub pid_file: Option<PathBuf>,
    pub access_log: AccessLog,
    pub access_log_format: crate::log_format::AccessLogFormat,
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

/// The `[http2]` table: HTTP/2's own limits (the request limits of `[limits]` apply too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2 {
    /// Offer `h2` by ALPN on TLS listeners (HTTP/1.1 is always offered).
    pub enabled: bool,
    /// Streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Streams a client may open and reset before the server has seen them (the "Rapid
    /// Reset" attack, CVE-2023-44487); beyond it the connection is closed with GOAWAY.
    pub max_pending_resets: usize,
    /// Streams the server may reset for a client's protocol errors on one connection
    /// before it closes the connection with GOAWAY.
    pub max_error_resets: usize,
}

impl Default for Http2 {
    fn default() -> Self {
        // nginx's http2_max_concurrent_streams is 128; hyper's reset limits are its defaults.
        Http2 { enabled: true, max_concurrent_streams: 128, max_pending_resets: 20, max_error_resets: 1024 }
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
    /// HTTPS: connections on this listener start with a TLS handshake.
    pub tls: bool,
    /// Cleartext HTTP/2 with prior knowledge (h2c) besides HTTP/1.1, on a plain listener.
    pub h2c: bool,
    /// Serves only the status endpoint (page, JSON, `/metrics`); see `status_rules`.
    pub status: bool,
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
    /// The site's certificate chain and private key, for TLS listeners (chosen by SNI).
    pub tls: Option<SiteTls>,
    /// `acme = {…}`: `tls` names the files graced-acme writes (in `[acme] state_directory`),
    /// and plain HTTP answers its HTTP-01 challenges.
    pub acme: Option<SiteAcme>,
    /// Plain-HTTP requests get a 308 to https:// (except `/.well-known/acme-challenge/`).
    pub https_redirect: bool,
    /// `Strict-Transport-Security` value sent on HTTPS responses.
    pub hsts: Option<String>,
    /// `[site.compression]`: precompressed sidecars and on-the-fly compression.
    pub compression: crate::compression::Compression,
    /// Headers, redirects, error pages, clean URLs, listing, access (`rules`).
    pub rules: SiteRules,
}

/// A site's certificate chain and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteTls {
    /// PEM: the leaf certificate first, then intermediates.
    pub certificate: Secret,
    /// PEM: PKCS#8, PKCS#1 or SEC1 private key.
    pub key: Secret,
}

/// Where a certificate or key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// A file the server reads itself (absolute).
    File(PathBuf),
    /// `credential:NAME`: a systemd credential, `$CREDENTIALS_DIRECTORY/NAME`
    /// (`LoadCredential=NAME:/path` in the unit keeps the file root-only).
    Credential(String),
}

impl Secret {
    /// The credential name under which the generated units pass a file to the service
    /// (`LoadCredential=NAME:PATH`) and under which graced finds systemd's copy when it
    /// may not read `path` itself: the path without its leading `/`, each character other
    /// than an ASCII letter, digit, `.`, `-` or `_` written as `_`
    /// (`/etc/ssl/private/example.key` → `etc_ssl_private_example.key`). `None` when the
    /// name would be longer than systemd allows (255).
    pub fn file_credential_name(path: &std::path::Path) -> Option<String> {
        let text = path.to_string_lossy();
        let name: String = text
            .trim_start_matches('/')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
            .collect();
        (!name.is_empty() && name != "." && name != ".." && name.len() <= 255).then_some(name)
    }
}

/// The `[acme]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    /// graced-acme's StateDirectory: `<state_directory>/<site>/{fullchain.pem,key.pem}`.
    pub state_directory: PathBuf,
    /// Where graced-acme writes HTTP-01 key authorizations (one file per token) and graced
    /// reads them for `/.well-known/acme-challenge/<token>`.
    pub challenge_directory: PathBuf,
}

/// What the credential copy of an ACME site's file holds before graced-acme's first
/// certificate: the unit's `SetCredential=ID:` fallback (systemd 252 refuses an empty one).
pub const ACME_NOT_ISSUED: &str = "graced-acme-not-issued-yet";

/// Default `[acme] state_directory`.
pub const ACME_STATE_DIRECTORY: &str = "/var/lib/graced-acme";
/// Default `[acme] challenge_directory`.
pub const ACME_CHALLENGE_DIRECTORY: &str = "/run/graced-acme/challenges";

/// A site whose certificate comes from an ACME CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteAcme {
    /// The CA's directory URL (https://).
    pub directory: String,
    /// `mailto:` contact for the account, if any.
    pub contact: Option<String>,
    /// The CA's certificate profile, if one is asked for.
    pub profile: Option<String>,
    /// PEM roots that sign the directory's HTTPS certificate (test CAs); `None`: the system's.
    pub directory_ca: Option<PathBuf>,
    /// The site's directory under `state_directory`: its first host.
    pub name: String,
}

impl SiteAcme {
    /// The certificate chain graced-acme writes for this site.
    pub fn certificate_path(&self, acme: &Acme) -> PathBuf {
        acme.state_directory.join(&self.name).join("fullchain.pem")
    }

    /// The private key graced-acme writes for this site.
    pub fn key_path(&self, acme: &Acme) -> PathBuf {
        acme.state_directory.join(&self.name).join("key.pem")
    }
}

/// The `[tls]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// A TLS handshake must complete within this.
    pub handshake_timeout: Duration,
    /// Warn (journal, STATUS=, `-k status`) when a certificate expires within this.
    pub expiry_warning: Duration,
}

/// `hsts = true`: two years, as Mozilla's guidelines recommend.
pub const HSTS_DEFAULT: &str = "max-age=63072000";
/// The `credential:NAME` prefix of a [`Secret`].
pub const CREDENTIAL_PREFIX: &str = "credential:";

/// Where a site's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// A directory on disk (absolute; checked to exist when validated).
    Dir(PathBuf),
    /// The demo site compiled into the binary.
    BuiltinDemo,
}

impl Config {
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

/// Which validation steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Everything, including that document roots exist (the server, `graced -t`).
    All,
    /// Everything but the filesystem: a unit generator runs at boot, before file
    /// systems such as /srv are mounted.
    WithoutFilesystem,
}
