//! The access log in Apache's combined format: to the journal (structured), stderr, a file, or nowhere.
//!
//! Plain-text destinations are written by one background thread fed through a bounded
//! channel, so a slow terminal or disk never stalls a request and never grows memory: a
//! line that finds the queue full is dropped and counted ([`dropped_lines`], logged and
//! exported as a metric). The thread flushes whenever the channel runs dry. Each
//! generation opens its own sink, which is how a reload or `reopen-logs` reopens the
//! file; the old sink's thread flushes and closes the old file once the last request
//! holding its generation has ended, and then [`AccessLogSink::closed`] resolves. A write
//! that fails (a full disk) drops lines, never a request: the failure is logged once when it
//! starts and once when writing works again, with the number of lines lost (`WriteHealth`).

use std::fs::OpenOptions;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use graced_config::{AccessLog, AccessLogFormat};

/// One served request, as the log needs it.
pub(crate) struct Entry<'a> {
    pub(crate) remote: &'a str,
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    pub(crate) version: &'a str,
    pub(crate) status: u16,
    /// Body bytes sent; `None` prints `-`.
    pub(crate) bytes: Option<u64>,
    pub(crate) referer: Option<&'a str>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) generation: u64,
    /// It came over HTTPS.
    pub(crate) tls: bool,
}

/// A request's access-log line, begun when its response is built and written when the
/// request ends (its last body byte sent, or the connection gone), with its duration.
/// Travels in the response's extensions from the handler to the request's guard.
#[derive(Clone)]
pub(crate) struct Pending(PendingLine);

impl Pending {
    /// The line with the connection's TLS version (JSON lines carry it; `null` when plain).
    pub(crate) fn with_tls_version(mut self, version: Option<&'static str>) -> Pending {
        if let PendingLine::Json(fields) = &mut self.0 {
            fields.insert("tls_version".into(), version.into());
        }
        self
    }
}

#[derive(Clone)]
enum PendingLine {
    /// A combined-format line, complete (Apache's `%t` is the request's start).
    Combined(String),
    /// The JSON fields but the duration.
    Json(serde_json::Map<String, serde_json::Value>),
}

/// Where this generation's access-log lines go, and in which format.
pub struct AccessLogSink(Sink, AccessLogFormat);

enum Sink {
    Off,
    Journal,
    /// To the writer thread, which writes to stderr or a file, and says when it closed it.
    Writer {
        tx: mpsc::SyncSender<String>,
        closed: watch::Receiver<bool>,
    },
}

/// Lines waiting for a writer thread at most (about a MiB); beyond, lines are dropped.
const QUEUE_LINES: usize = 4096;

/// Lines dropped because a destination did not keep up, since the process started.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Access-log lines dropped so far (a full queue: the destination is stuck or too slow).
/// Process-wide; a hard restart does not reset it.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

impl AccessLogSink {
    /// Opens the destination; a file is opened for appending (created 0640 if absent).
    /// `journal` falls back to plain lines on stderr when the caller says the process's
    /// log is not connected to the journal (`journal_connected`: decided by the logging setup).
    pub fn open(destination: &AccessLog, journal_connected: bool) -> io::Result<AccessLogSink> {
        Ok(match destination {
            AccessLog::Off => AccessLogSink(Sink::Off, AccessLogFormat::Combined),
            AccessLog::Journal if journal_connected => {
                AccessLogSink(Sink::Journal, AccessLogFormat::Combined)
            }
            AccessLog::Journal => AccessLogSink::spawn_writer(Box::new(io::stderr()), "stderr"),
            AccessLog::Stderr => AccessLogSink::spawn_writer(Box::new(io::stderr()), "stderr"),
            AccessLog::File(path) => AccessLogSink::spawn_writer(Box::new(open_append(path)?), "file"),
        })
    }

    fn spawn_writer(out: Box<dyn Write + Send>, what: &str) -> AccessLogSink {
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE_LINES);
        let (closed_tx, closed) = watch::channel(false);
        let what_owned = what.to_owned();
        let spawned = std::thread::Builder::new().name(format!("access-log-{what}")).spawn(move || {
            let mut out = BufWriter::with_capacity(64 * 1024, out);
            let mut health = WriteHealth::default();
            while let Ok(line) = rx.recv() {
                let mut batch = health.line(out.write_all(line.as_bytes()));
                while let Ok(line) = rx.try_recv() {
                    batch = batch.and(health.line(out.write_all(line.as_bytes())));
                }
                health.batch(batch.and(out.flush()), &what_owned);
            }
            // Every sender is gone: the generation has no request left. Flush, close, tell.
            let _ = out.flush();
            drop(out);
            let _ = closed_tx.send(true);
        });
        match spawned {
            Ok(_) => AccessLogSink(Sink::Writer { tx, closed }, AccessLogFormat::Combined),
            Err(err) => {
                tracing::error!(error = %err, "cannot start the access-log writer; access logging is off");
                AccessLogSink(Sink::Off, AccessLogFormat::Combined)
            }
        }
    }

    /// No access log.
    #[cfg(test)]
    pub(crate) fn off() -> AccessLogSink {
        AccessLogSink(Sink::Off, AccessLogFormat::Combined)
    }

    /// The same sink writing `format` lines (files and stderr; the journal keeps its fields).
    pub fn with_format(mut self, format: AccessLogFormat) -> AccessLogSink {
        self.1 = format;
        self
    }

    /// Whether a request's line needs its duration (the request is timed for it).
    #[inline]
    pub(crate) fn timed(&self) -> bool {
        matches!(self.0, Sink::Writer { .. }) && self.1 == AccessLogFormat::Json
    }

    /// Whether nothing is logged (the handler then builds no entry).
    #[inline]
    pub(crate) fn is_off(&self) -> bool {
        matches!(self.0, Sink::Off)
    }

    /// Resolves once this sink's destination is flushed and closed: at once for `off` and
    /// the journal; for a file or stderr when the sink was dropped (with the last request of
    /// its generation) and its thread wrote every line. Take it before dropping the sink.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + use<> {
        let closed = match &self.0 {
            Sink::Writer { closed, .. } => Some(closed.clone()),
            Sink::Off | Sink::Journal => None,
        };
        async move {
            if let Some(mut closed) = closed {
                // An error means the thread is gone, which also means the file is closed.
                let _ = closed.wait_for(|closed| *closed).await;
            }
        }
    }

    /// Begins `entry`'s line: the journal gets it now, with structured fields; a file or
    /// stderr gets the returned line when the request ends ([`finish`](Self::finish)).
    pub(crate) fn begin(&self, entry: &Entry<'_>) -> Option<Pending> {
        match &self.0 {
            Sink::Off => None,
            Sink::Writer { .. } => Some(Pending(match self.1 {
                AccessLogFormat::Combined => {
                    let mut line = combined(entry);
                    line.push('\n');
                    PendingLine::Combined(line)
                }
                AccessLogFormat::Json => PendingLine::Json(json_fields(entry)),
            })),
            Sink::Journal => {
                tracing::info!(
                    target: "graced::access",
                    remote_addr = entry.remote,
                    method = entry.method,
                    url = entry.target,
                    status = entry.status,
                    bytes = entry.bytes.unwrap_or(0),
                    host = entry.host.unwrap_or(""),
                    generation = entry.generation,
                    "{}",
                    combined(entry)
                );
                None
            }
        }
    }

    /// Writes a request's line now that it ended, `elapsed` after it began (when timed).
    /// Never blocks: a full queue drops the line and counts it.
    pub(crate) fn finish(&self, pending: Pending, elapsed: Option<std::time::Duration>) {
        let Sink::Writer { tx, .. } = &self.0 else { return };
        let line = match pending.0 {
            PendingLine::Combined(line) => line,
            PendingLine::Json(mut fields) => {
                let duration = elapsed.map_or(serde_json::Value::Null, |d| d.as_secs_f64().into());
                fields.insert("duration".into(), duration);
                let mut line = serde_json::Value::Object(fields).to_string();
                line.push('\n');
                line
            }
        };
        if let Err(mpsc::TrySendError::Full(_)) = tx.try_send(line) {
            let before = DROPPED.fetch_add(1, Ordering::Relaxed);
            // The first drop, then one line per 10,000: the journal is not flooded.
            if before.is_multiple_of(10_000) {
                tracing::warn!(
                    dropped = before + 1,
                    "the access log does not keep up (its destination is stuck or slow): {} lines dropped so far",
                    before + 1
                );
            }
        }
    }
}

/// Whether the access log's writes succeed, so that a failure (a full disk, a broken pipe) is
/// reported once when it starts and once when it ends — with the number of lines lost —
/// instead of on every line, and serving never waits for it.
#[derive(Default)]
struct WriteHealth {
    /// Writing failed and has not worked since.
    failing: bool,
    /// Lines that could not even be buffered since writing began to fail.
    lost: u64,
}

impl WriteHealth {
    /// One line's `write_all` into the buffer: counts it as lost if it failed.
    fn line(&mut self, result: io::Result<()>) -> io::Result<()> {
        if result.is_err() {
            self.lost += 1;
        }
        result
    }

    /// The outcome of a batch (its lines and the flush).
    fn batch(&mut self, result: io::Result<()>, what: &str) {
        match (result, self.failing) {
            (Err(err), false) => {
                tracing::error!(
                    destination = what,
                    error = %err,
                    "cannot write the access log; its lines are dropped (serving goes on) until writing works again"
                );
                self.failing = true;
            }
            (Ok(()), true) => {
                tracing::warn!(
                    destination = what,
                    lost_lines = self.lost,
                    "the access log is writable again"
                );
                self.failing = false;
                self.lost = 0;
            }
            _ => {}
        }
    }
}

/// A JSON line's fields but the duration (added at the end).
fn json_fields(e: &Entry<'_>) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        fields.insert(k.to_owned(), v);
    };
    put("time", humantime::format_rfc3339_millis(SystemTime::now()).to_string().into());
    put("remote", e.remote.into());
    put("method", e.method.into());
    put("target", e.target.into());
    put("version", e.version.into());
    put("tls", e.tls.into());
    put("status", e.status.into());
    put("bytes", e.bytes.into());
    put("generation", e.generation.into());
    put("host", e.host.into());
    put("referer", e.referer.into());
    put("user_agent", e.user_agent.into());
    fields
}

/// Opens `path` for appending. `O_NONBLOCK` for the open only: a FIFO with no reader fails
/// at once (ENXIO) instead of hanging a start or a reload; writes then block as usual (in
/// the writer thread, never in a request).
fn open_append(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .and_then(|file| {
            let flags = rustix::fs::fcntl_getfl(&file)?;
            rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
            Ok(file)
        });
    opened.map_err(|err| {
        let hint = if err.raw_os_error() == Some(libc::ENXIO) { " (a FIFO nobody reads)" } else { "" };
        io::Error::new(err.kind(), format!("cannot open access log {}: {err}{hint}", path.display()))
    })
}

/// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"`
pub(crate) fn combined(e: &Entry<'_>) -> String {
    let bytes = e.bytes.map_or_else(|| "-".to_owned(), |b| b.to_string());
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
        e.remote,
        clf_time(SystemTime::now()),
        e.method,
        escape(e.target),
        e.version,
        e.status,
        bytes,
        escape(e.referer.unwrap_or("-")),
        escape(e.user_agent.unwrap_or("-")),
    )
}

/// Escapes `"`, `\` and control characters the way Apache does, so a client cannot forge log lines.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

/// Common Log Format time, `10/Oct/2000:13:55:36 +0000`, always in UTC.
pub(crate) fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) — Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The request line's version as the access log writes it.
pub(crate) fn version_str(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clf_time_matches_apache() {
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(clf_time(t), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(clf_time(UNIX_EPOCH + Duration::from_secs(1_709_164_800)), "29/Feb/2024:00:00:00 +0000");
    }

    #[test]
    fn combined_line_escapes_quotes_and_controls() {
        let entry = Entry {
            remote: "127.0.0.1",
            method: "GET",
            target: "/a\"b",
            version: "HTTP/1.1",
            status: 200,
            bytes: Some(12),
            referer: None,
            user_agent: Some("evil\n127.0.0.1 - - fake"),
            host: None,
            generation: 1,
            tls: false,
        };
        let line = combined(&entry);
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(
            line.ends_with("] \"GET /a\\\"b HTTP/1.1\" 200 12 \"-\" \"evil\\x0a127.0.0.1 - - fake\""),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
