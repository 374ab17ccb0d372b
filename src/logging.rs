//! Diagnostics: natively to the journal when stderr is the journal, otherwise readable text on stderr.
//!
//! systemd sets `JOURNAL_STREAM=<dev>:<ino>` for the stream it connects to a
//! service's stdout/stderr; when that matches `fstat(2)` of fd 2 we send records
//! over the journal's native protocol, which keeps structured fields (`MESSAGE_ID`,
//! `GENERATION`, …). If stderr was redirected elsewhere the variable no longer
//! matches and we write text. The level can be changed at run time (on reload).

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

use graced_config::LogLevel;

/// Stable MESSAGE_IDs of lifecycle events, explained by the journal catalog.
pub mod message_id {
    pub const STARTED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c301";
    pub const RELOADED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c302";
    pub const RELOAD_FAILED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c303";
    pub const RESTARTED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c304";
    pub const DRAINING: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c305";
    pub const STOPPED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c306";
    pub const STALE_PID_FILE: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c307";
    pub const CERTIFICATE_EXPIRING: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c308";
    pub const UPGRADED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c309";
    pub const UPGRADE_FAILED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c30a";
    pub const ACME_INSTALLED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c30b";
    pub const ACME_FAILED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c30c";
    pub const ACME_RELOAD_FAILED: &str = "6c3b9f2a1e7d4c0f8a52d9e4b7a1c30d";
}

/// Changes the log level after start-up.
pub struct LogHandle {
    reload: Option<reload::Handle<LevelFilter, Registry>>,
    /// Whether records go to the journal natively.
    pub journal: bool,
}

impl LogHandle {
    pub fn set_level(&self, level: LogLevel) {
        if let Some(reload) = &self.reload {
            let _ = reload.modify(|filter| *filter = level_filter(level));
        }
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

static JOURNAL: AtomicBool = AtomicBool::new(false);

/// Whether diagnostics go to the journal natively (set by [`init`]).
pub fn journal_connected() -> bool {
    JOURNAL.load(Ordering::Relaxed)
}

/// True when fd 2 is the stream systemd connected to the journal.
pub fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = expected.to_str().and_then(|s| s.split_once(':')) else { return false };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr().as_fd()) else { return false };
    dev.parse::<u64>().ok() == Some(stat.st_dev) && ino.parse::<u64>().ok() == Some(stat.st_ino)
}

/// Installs the global subscriber. Safe to call once; later calls return a handle that does nothing.
pub fn init(level: LogLevel) -> LogHandle {
    let (filter, reload) = reload::Layer::new(level_filter(level));
    let journald = if stderr_is_journal() {
        nonblocking_journald_layer().map(|layer| {
            layer.with_field_prefix(None).with_syslog_identifier("graced".into()).with_priority_mappings(
                tracing_journald::PriorityMappings {
                    info: tracing_journald::Priority::Informational,
                    debug: tracing_journald::Priority::Debug,
                    ..tracing_journald::PriorityMappings::new()
                },
            )
        })
    } else {
        None
    };
    let journal = journald.is_some();
    JOURNAL.store(journal, Ordering::Relaxed);
    let fmt = (!journal).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
    });
    let installed = tracing_subscriber::registry().with(filter).with(journald).with(fmt).try_init().is_ok();
    LogHandle { reload: installed.then_some(reload), journal }
}

/// tracing-journald's layer, its socket made non-blocking.
///
/// The layer sends every record with a blocking `sendto(2)` on its own datagram socket. When
/// journald stops reading (frozen, or busy), the socket's queue fills (`max_dgram_qlen`) and
/// the next record blocks the thread that logs it: a worker writing the access log, and so
/// serving, and the watchdog's pings with it (measured under systemd 252: a journald stopped
/// with SIGSTOP for 4 s stalled every request for 4 s, and the watchdog killed graced). The
/// crate offers no way to set the socket up, so the descriptor it opened is found as the one
/// datagram socket that appeared across its constructor, and set `O_NONBLOCK`: a record that
/// does not fit is dropped (the layer ignores send errors), and serving never waits for journald.
fn nonblocking_journald_layer() -> Option<tracing_journald::Layer> {
    let before = open_fds();
    let layer = tracing_journald::layer().ok()?;
    for (fd, _) in open_fds().difference(&before) {
        // SAFETY: a descriptor open now (listed in /proc/self/fd after the constructor), used
        // only for the calls below while `layer`, which owns it, is alive.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
        let datagram = rustix::net::sockopt::socket_type(fd) == Ok(rustix::net::SocketType::DGRAM)
            && rustix::net::sockopt::socket_domain(fd) == Ok(rustix::net::AddressFamily::UNIX);
        if datagram && let Ok(flags) = rustix::fs::fcntl_getfl(fd) {
            let _ = rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK);
        }
    }
    Some(layer)
}

/// The process's open descriptors with what each names (`socket:[INODE]`, a path): a number
/// alone could be the listing's own directory before and the new socket after. Logging is set
/// up before any other thread opens one.
fn open_fds() -> std::collections::BTreeSet<(std::os::fd::RawFd, std::path::PathBuf)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Default::default() };
    dir.filter_map(|e| {
        let e = e.ok()?;
        Some((e.file_name().to_str()?.parse().ok()?, std::fs::read_link(e.path()).ok()?))
    })
    .collect()
}

/// An error and its causes on one line, `outer: cause: root`, each said once. A cause whose
/// text already ends the message before it is left out: many errors here and in zbus put
/// their cause in their own text and also return it as `source()` (so a caller can still
/// match on the io::Error), and zbus wraps a bus's error reply in a second error showing
/// the same text; `{:#}` prints each of those twice.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut previous = line.clone();
    let mut cause = err.source();
    while let Some(err) = cause {
        let text = err.to_string();
        if !previous.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        previous = text;
        cause = err.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::message_id;

    #[test]
    fn every_message_id_is_explained_by_the_catalog() {
        let catalog = include_str!("../packaging/graced.catalog");
        let ids: Vec<&str> = catalog.lines().filter_map(|l| l.strip_prefix("-- ")).collect();
        for id in [
            message_id::STARTED,
            message_id::RELOADED,
            message_id::RELOAD_FAILED,
            message_id::RESTARTED,
            message_id::DRAINING,
            message_id::STOPPED,
            message_id::STALE_PID_FILE,
            message_id::CERTIFICATE_EXPIRING,
            message_id::UPGRADED,
            message_id::UPGRADE_FAILED,
            message_id::ACME_INSTALLED,
            message_id::ACME_FAILED,
            message_id::ACME_RELOAD_FAILED,
        ] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            assert!(ids.contains(&id), "MESSAGE_ID {id} has no catalog entry");
        }
        assert_eq!(ids.len(), 13, "the catalog explains an ID the code does not send");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Text(&'static str, #[source] Option<Box<Text>>);

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let root = Text("org.freedesktop.DBus.Error.AccessDenied: not allowed", None);
        let same = Text("org.freedesktop.DBus.Error.AccessDenied: not allowed", Some(Box::new(root)));
        let outer = Text("cannot own the name org.graced.Control1", Some(Box::new(same)));
        assert_eq!(
            super::error_chain(&outer),
            "cannot own the name org.graced.Control1: org.freedesktop.DBus.Error.AccessDenied: not allowed"
        );
        let anyhow = anyhow::Error::new(outer).context("serving on the system bus");
        assert_eq!(
            super::error_chain(anyhow.as_ref()),
            "serving on the system bus: cannot own the name org.graced.Control1: \
             org.freedesktop.DBus.Error.AccessDenied: not allowed"
        );
        // An error that shows its cause and also returns it as source().
        let bind = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let listen = crate::supervisor::LifecycleError::Bind { name: "http".into(), source: bind };
        assert_eq!(super::error_chain(&listen), "cannot listen for \"http\": address in use");
    }
}
