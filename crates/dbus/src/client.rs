//! `gracectl`: the client of `org.graced.Control1` — command line, proxy, output, exit codes.
//!
//! Exit status (also in `gracectl --help`):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done (`status`: the unit is active) |
//! | 1 | the operation failed: reload rejected, stop failed or timed out, systemd refused |
//! | 2 | usage: bad arguments, or the unit is not a graced unit |
//! | 3 | the unit does not exist or is not running |
//! | 4 | access denied by the bus policy (not root, not in `graced-admin`) |
//! | 5 | the helper is unreachable (no bus, not installed, activation failed) |

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::time::{Duration, UNIX_EPOCH};

use futures_core::Stream;
use zbus::OwnedVariant;
use zbus::proxy::CacheProperties;

use super::error::{ControlError, zbus_error_name};
use super::systemd::graced_unit_name;
use super::{BUS_NAME, DEFAULT_ADMIN_GROUP};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_RUNNING: u8 = 3;
pub const EXIT_DENIED: u8 = 4;
pub const EXIT_UNREACHABLE: u8 = 5;

const EXIT_HELP: &str = "\
Exit status:
  0  done (status: the unit is active)
  1  the operation failed: reload rejected (the old configuration keeps serving),
     stop failed or timed out, systemd refused
  2  usage: bad arguments, or the unit is not a graced unit
  3  the unit does not exist or is not running
  4  access denied by the bus policy (callers must be root or in graced-admin)
  5  the helper org.graced.Control1 is unreachable";

/// The client side of `org.graced.Control1`.
#[zbus::proxy(
    interface = "org.graced.Control1",
    default_service = "org.graced.Control1",
    default_path = "/org/graced/Control1"
)]
pub trait Control1 {
    /// Stops a graced unit gracefully; returns (drain_usec, aborted).
    fn graceful_stop(&self, unit: &str, timeout_sec: u32) -> Result<(u64, bool), ControlError>;

    /// Reloads a graced unit; returns the generation now serving.
    fn reload(&self, unit: &str) -> Result<u64, ControlError>;

    /// The unit's state as a dictionary.
    fn status(&self, unit: &str) -> Result<HashMap<String, OwnedVariant>, ControlError>;

    /// Progress of a graceful stop: the unit's StatusText.
    #[zbus(signal)]
    fn drain_progress(&self, unit: &str, status: &str) -> zbus::Result<()>;
}

/// Drain, reload or inspect graced units through the graced-dbus helper on the system bus.
#[derive(Debug, clap::Parser)]
#[command(name = "gracectl", version, after_help = EXIT_HELP)]
pub struct Cli {
    /// Use the system bus (the default).
    #[arg(long, global = true, conflicts_with = "address")]
    pub system: bool,
    /// Use the bus at this D-Bus address instead (e.g. unix:path=/run/test/bus).
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub address: Option<String>,
    /// Print the result as one JSON object on stdout (errors too).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Stop a unit gracefully: in-flight requests finish, then the server exits.
    /// Returns when the unit is inactive.
    GracefulStop {
        /// graced, graced@INSTANCE or graced-NAME (".service" is added).
        #[arg(default_value = "graced")]
        unit: String,
        /// Wait at most this long for the unit to become inactive (0: the helper's
        /// default, 10 minutes). The stop goes on after a timeout.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        timeout: u32,
    },
    /// Reload a unit's configuration; returns when the new generation serves, or fails
    /// with the configuration error while the old one keeps serving.
    Reload {
        #[arg(default_value = "graced")]
        unit: String,
    },
    /// Show a unit's state, generation, connections and main PID.
    Status {
        #[arg(default_value = "graced")]
        unit: String,
    },
}

impl Action {
    fn unit(&self) -> &str {
        match self {
            Action::GracefulStop { unit, .. } | Action::Reload { unit } | Action::Status { unit } => unit,
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Action::GracefulStop { .. } => "graceful-stop",
            Action::Reload { .. } => "reload",
            Action::Status { .. } => "status",
        }
    }
}

/// The exit status for a failed call.
pub fn exit_code(err: &ControlError) -> u8 {
    match err {
        ControlError::NotAGracedUnit(_) => EXIT_USAGE,
        ControlError::NoSuchUnit(_) | ControlError::NotRunning(_) => EXIT_NOT_RUNNING,
        ControlError::ReloadFailed(_)
        | ControlError::StopFailed(_)
        | ControlError::Timeout(_)
        | ControlError::Systemd(_) => EXIT_FAILED,
        ControlError::ZBus(err) => match zbus_error_name(err).as_deref() {
            Some(
                "org.freedesktop.DBus.Error.AccessDenied"
                | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
            ) => EXIT_DENIED,
            Some(name) if unreachable(name) => EXIT_UNREACHABLE,
            Some(_) => EXIT_FAILED,
            // No D-Bus error name: the bus itself could not be reached.
            None => EXIT_UNREACHABLE,
        },
    }
}

fn unreachable(name: &str) -> bool {
    name.starts_with("org.freedesktop.DBus.Error.Spawn.")
        || matches!(
            name.strip_prefix("org.freedesktop.DBus.Error."),
            Some(
                "ServiceUnknown"
                    | "NameHasNoOwner"
                    | "NoReply"
                    | "Disconnected"
                    | "NoServer"
                    | "Timeout"
                    | "TimedOut"
                    | "UnknownObject"
                    | "UnknownInterface"
                    | "UnknownMethod"
                    | "LimitsExceeded"
            )
        )
}

/// What to tell a person about a failed call.
pub fn message(err: &ControlError) -> String {
    let ControlError::ZBus(inner) = err else { return err.to_string() };
    let description = match inner {
        zbus::Error::MethodError(_, Some(desc), _) => desc.clone(),
        zbus::Error::FDO(fdo) => zbus::DBusError::description(fdo.as_ref()).unwrap_or_default().to_owned(),
        other => other.to_string(),
    };
    match exit_code(err) {
        EXIT_DENIED => format!(
            "access denied: only root and members of the group {DEFAULT_ADMIN_GROUP:?} may call {BUS_NAME} \
             ({description})"
        ),
        EXIT_UNREACHABLE => format!(
            "cannot reach the graced helper {BUS_NAME} (is graced-dbus installed, with its bus policy and \
             activation file?): {description}"
        ),
        _ => description,
    }
}

/// The next item of a signal stream.
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// No call may wait longer than the helper's longest operation (a 10-minute drain) plus
/// a margin: a helper that never answers is reported, not waited for forever.
const METHOD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(11 * 60);

async fn connect(cli: &Cli) -> Result<Control1Proxy<'static>, zbus::Error> {
    let builder = match &cli.address {
        Some(address) => zbus::connection::Builder::address(address.as_str()),
        None => zbus::connection::Builder::system(),
    };
    let conn = builder.method_timeout(METHOD_TIMEOUT).build().await?;
    Control1Proxy::builder(&conn).cache_properties(CacheProperties::No).build().await
}

/// Runs one `gracectl` command and prints its outcome; returns the exit status.
pub async fn run(cli: &Cli) -> u8 {
    let unit = graced_unit_name(cli.action.unit()).unwrap_or_else(|_| cli.action.unit().to_owned());
    let result = match connect(cli).await {
        Ok(proxy) => perform(cli, &proxy, &unit).await,
        Err(err) => Err(ControlError::ZBus(err)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let text = message(&err);
            if cli.json {
                let name = err.dbus_name().map_or(Json::Null, Json::Str);
                println!(
                    "{}",
                    object([("unit", Json::Str(unit)), ("error", name), ("message", Json::Str(text))])
                );
            } else {
                eprintln!("gracectl: {} {unit}: {text}", cli.action.verb());
            }
            exit_code(&err)
        }
    }
}

async fn perform(cli: &Cli, proxy: &Control1Proxy<'static>, unit: &str) -> Result<u8, ControlError> {
    match &cli.action {
        Action::GracefulStop { unit: requested, timeout } => {
            let mut progress = proxy.receive_drain_progress().await?;
            let call = proxy.graceful_stop(requested, *timeout);
            tokio::pin!(call);
            let (drain_usec, aborted) = loop {
                tokio::select! {
                    biased;
                    Some(signal) = next(&mut progress) => {
                        if let Ok(args) = signal.args()
                            && *args.unit() == unit
                            && !cli.json
                        {
                            eprintln!("{unit}: {}", args.status());
                        }
                    }
                    result = &mut call => break result?,
                }
            };
            let drain = Duration::from_micros(drain_usec);
            if cli.json {
                println!(
                    "{}",
                    object([
                        ("unit", Json::Str(unit.to_owned())),
                        ("drain_usec", Json::Num(drain_usec)),
                        ("aborted", Json::Bool(aborted)),
                    ])
                );
            } else if aborted {
                println!(
                    "{unit}: stopped after draining for {:.3}s; requests were aborted at the timeout",
                    drain.as_secs_f64()
                );
            } else {
                println!(
                    "{unit}: stopped gracefully after {:.3}s; no request was aborted",
                    drain.as_secs_f64()
                );
            }
            Ok(EXIT_OK)
        }
        Action::Reload { unit: requested } => {
            let generation = proxy.reload(requested).await?;
            if cli.json {
                println!(
                    "{}",
                    object([("unit", Json::Str(unit.to_owned())), ("generation", Json::Num(generation))])
                );
            } else {
                println!("{unit}: reloaded; generation {generation} serving");
            }
            Ok(EXIT_OK)
        }
        Action::Status { unit: requested } => {
            let dict = proxy.status(requested).await?;
            let fields: BTreeMap<&str, Json> =
                dict.iter().map(|(k, v)| (k.as_str(), Json::from_variant(v))).collect();
            if cli.json {
                println!("{}", object(fields.iter().map(|(k, v)| (*k, v.clone()))));
            } else {
                print!("{}", status_text(&fields));
            }
            let active =
                matches!(fields.get("active_state"), Some(Json::Str(s)) if s == "active" || s == "reloading");
            Ok(if active { EXIT_OK } else { EXIT_NOT_RUNNING })
        }
    }
}

/// The readable form of a `Status` reply.
fn status_text(fields: &BTreeMap<&str, Json>) -> String {
    let get = |key: &str| fields.get(key).map(Json::plain).unwrap_or_default();
    let mut out = format!("{}: {} ({})", get("unit"), get("active_state"), get("sub_state"));
    if let Some(Json::Num(since)) = fields.get("since")
        && *since > 0
    {
        let at = UNIX_EPOCH + Duration::from_micros(*since);
        out.push_str(&format!(" since {}", humantime::format_rfc3339_seconds(at)));
    }
    out.push('\n');
    for (key, label) in [
        ("main_pid", "main pid"),
        ("generation", "generation"),
        ("connections", "connections"),
        ("requests", "requests"),
        ("reload_error", "last reload failed"),
        ("status_text", "status"),
    ] {
        let value = get(key);
        let skip = value.is_empty() || (key == "main_pid" && value == "0");
        if !skip {
            out.push_str(&format!("  {label:>11}: {value}\n"));
        }
    }
    out
}

/// A JSON value, enough for gracectl's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Str(String),
    Num(u64),
    Int(i64),
    Bool(bool),
    Null,
}

impl Json {
    fn from_variant(value: &OwnedVariant) -> Json {
        if let Ok(s) = <&str>::try_from(value) {
            Json::Str(s.to_owned())
        } else if let Ok(n) = u64::try_from(value) {
            Json::Num(n)
        } else if let Ok(n) = u32::try_from(value) {
            Json::Num(n.into())
        } else if let Ok(n) = i32::try_from(value) {
            Json::Int(n.into())
        } else if let Ok(n) = i64::try_from(value) {
            Json::Int(n)
        } else if let Ok(b) = bool::try_from(value) {
            Json::Bool(b)
        } else {
            Json::Null
        }
    }

    /// The value without JSON quoting, for readable output.
    fn plain(&self) -> String {
        match self {
            Json::Str(s) => s.clone(),
            Json::Num(n) => n.to_string(),
            Json::Int(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            Json::Null => String::new(),
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Json::Null => out.push_str("null"),
            other => out.push_str(&other.plain()),
        }
    }
}

/// `{"key": value, …}` in the order given.
pub fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Json)>) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        Json::Str(key.to_owned()).write(&mut out);
        out.push(':');
        value.write(&mut out);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects() {
        let text = object([
            ("unit", Json::Str("graced.service".into())),
            ("message", Json::Str("a \"b\"\n\\c\u{1}".into())),
            ("n", Json::Num(3)),
            ("i", Json::Int(-2)),
            ("ok", Json::Bool(true)),
            ("none", Json::Null),
        ]);
        assert_eq!(
            text,
            r#"{"unit":"graced.service","message":"a \"b\"\n\\c\u0001","n":3,"i":-2,"ok":true,"none":null}"#
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&ControlError::ReloadFailed("x".into())), EXIT_FAILED);
        assert_eq!(exit_code(&ControlError::NotRunning("x".into())), EXIT_NOT_RUNNING);
        assert_eq!(exit_code(&ControlError::NoSuchUnit("x".into())), EXIT_NOT_RUNNING);
        assert_eq!(exit_code(&ControlError::NotAGracedUnit("x".into())), EXIT_USAGE);
        let denied = zbus::Error::FDO(Box::new(zbus::fdo::Error::AccessDenied("no".into())));
        assert_eq!(exit_code(&ControlError::ZBus(denied)), EXIT_DENIED);
        let unknown = zbus::Error::FDO(Box::new(zbus::fdo::Error::ServiceUnknown("gone".into())));
        assert_eq!(exit_code(&ControlError::ZBus(unknown)), EXIT_UNREACHABLE);
        let io = zbus::Error::InputOutput(std::sync::Arc::new(std::io::Error::other("no bus")));
        assert_eq!(exit_code(&ControlError::ZBus(io)), EXIT_UNREACHABLE);
    }

    #[test]
    fn readable_status() {
        let fields = BTreeMap::from([
            ("unit", Json::Str("graced.service".into())),
            ("active_state", Json::Str("active".into())),
            ("sub_state", Json::Str("running".into())),
            ("since", Json::Num(1_700_000_000_000_000)),
            ("main_pid", Json::Num(42)),
            ("generation", Json::Num(3)),
            ("status_text", Json::Str("generation 3; 1 connections; 9 requests served".into())),
        ]);
        assert_eq!(
            status_text(&fields),
            "graced.service: active (running) since 2023-11-14T22:13:20Z\n     main pid: 42\n   \
             generation: 3\n       status: generation 3; 1 connections; 9 requests served\n"
        );
    }
}
