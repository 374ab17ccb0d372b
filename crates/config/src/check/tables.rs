//! The one-of tables — `[server]`, `[limits]`, `[tls]`, `[http2]` — checked: values in range, durations, paths.

use std::time::Duration;

use toml::Spanned;

use super::Checker;
use crate::model::{AccessLog, Http2, Limits, LogLevel, MAX_WORKERS, Server, Tls};
use crate::raw::{RawHttp2, RawLimits, RawServer, RawTls, RawWorkers};

impl Checker<'_> {
    pub(super) fn server(&mut self, raw: RawServer) -> Server {
        let graceful_shutdown_timeout =
            self.duration(&raw.graceful_shutdown_timeout, Duration::from_secs(30));
        let upgrade_timeout = self.duration(&raw.upgrade_timeout, Duration::from_secs(30));
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
        let access_log_format =
            crate::log_format::parse(raw.access_log_format.as_ref()).unwrap_or_else(|unknown| {
                self.problems.push(crate::diagnostic::Diagnostic::at(
                    self.file,
                    self.text,
                    unknown.at,
                    unknown.message,
                    Some(crate::log_format::HINT.into()),
                ));
                Default::default()
            });
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
            upgrade_timeout,
            pid_file,
            access_log,
            access_log_format,
            log_level,
            user,
            group,
            watchdog,
            fd_store,
            workers,
        }
    }

    pub(super) fn limits(&mut self, raw: RawLimits) -> Limits {
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

    pub(super) fn tls(&mut self, raw: RawTls) -> Tls {
        Tls {
            handshake_timeout: self.duration(&raw.handshake_timeout, Duration::from_secs(10)),
            expiry_warning: self.duration(&raw.expiry_warning, Duration::from_secs(21 * 86400)),
        }
    }

    pub(super) fn http2(&mut self, raw: RawHttp2) -> Http2 {
        let d = Http2::default();
        Http2 {
            enabled: raw.enabled.unwrap_or(d.enabled),
            max_concurrent_streams: self.count(
                &raw.max_concurrent_streams,
                d.max_concurrent_streams as usize,
                1..=10_000,
            ) as u32,
            max_pending_resets: self.count(&raw.max_pending_resets, d.max_pending_resets, 1..=10_000),
            max_error_resets: self.count(&raw.max_error_resets, d.max_error_resets, 1..=100_000),
        }
    }
}
