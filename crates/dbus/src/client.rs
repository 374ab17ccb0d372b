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
use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use zbus::OwnedVariant;
use zbus::proxy::CacheProperties;

use super::error::{ControlError, zbus_error_name};
use super::systemd::graced_unit_name;
use graced_unit::dbus::{BUS_NAME, DEFAULT_ADMIN_GROUP};

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
                print_json(&ErrorReport { unit: &unit, error: err.dbus_name(), message: text });
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
                    Some(signal) = progress.next() => {
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
                print_json(&StopReport { unit, drain_usec, aborted });
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
                print_json(&ReloadReport { unit, generation });
            } else {
                println!("{unit}: reloaded; generation {generation} serving");
            }
            Ok(EXIT_OK)
        }
        Action::Status { unit: requested } => {
            let dict = proxy.status(requested).await?;
            let fields: BTreeMap<&str, Value> =
                dict.iter().map(|(k, v)| (k.as_str(), json_value(v))).collect();
            if cli.json {
                print_json(&fields);
            } else {
                print!("{}", status_text(&fields));
            }
            let active =
                matches!(fields.get("active_state").and_then(Value::as_str), Some("active" | "reloading"));
            Ok(if active { EXIT_OK } else { EXIT_NOT_RUNNING })
        }
    }
}

/// The readable form of a `Status` reply.
fn status_text(fields: &BTreeMap<&str, Value>) -> String {
    let get = |key: &str| fields.get(key).map(plain).unwrap_or_default();
    let mut out = format!("{}: {} ({})", get("unit"), get("active_state"), get("sub_state"));
    if let Some(since) = fields.get("since").and_then(Value::as_u64)
        && since > 0
    {
        let at = UNIX_EPOCH + Duration::from_micros(since);
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

/// `--json` output of a failed call: the D-Bus error name (`null` for transport failures).
#[derive(Debug, Serialize)]
struct ErrorReport<'a> {
    unit: &'a str,
    error: Option<String>,
    message: String,
}

/// `--json` output of `graceful-stop`.
#[derive(Debug, Serialize)]
struct StopReport<'a> {
    unit: &'a str,
    drain_usec: u64,
    aborted: bool,
}

/// `--json` output of `reload`.
#[derive(Debug, Serialize)]
struct ReloadReport<'a> {
    unit: &'a str,
    generation: u64,
}

/// Prints one JSON object on a line of its own.
fn print_json(report: &impl Serialize) {
    match serde_json::to_string(report) {
        Ok(text) => println!("{text}"),
        // Unreachable for these types (string keys, plain values); say so rather than panic.
        Err(err) => eprintln!("gracectl: cannot write JSON: {err}"),
    }
}

/// A `Status` value as JSON: strings, numbers and booleans; anything else is `null`.
fn json_value(value: &OwnedVariant) -> Value {
    if let Ok(s) = <&str>::try_from(value) {
        Value::from(s)
    } else if let Ok(n) = u64::try_from(value) {
        Value::from(n)
    } else if let Ok(n) = u32::try_from(value) {
        Value::from(n)
    } else if let Ok(n) = i32::try_from(value) {
        Value::from(n)
    } else if let Ok(n) = i64::try_from(value) {
        Value::from(n)
    } else if let Ok(b) = bool::try_from(value) {
        Value::from(b)
    } else {
        Value::Null
    }
}

/// A value without JSON quoting, for readable output (`null` is empty).
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reports_keep_their_field_order() {
        let error = ErrorReport { unit: "graced.service", error: None, message: "a \"b\"\n\\c\u{1}".into() };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"unit":"graced.service","error":null,"message":"a \"b\"\n\\c\u0001"}"#
        );
        let stop = StopReport { unit: "graced.service", drain_usec: 3, aborted: true };
        assert_eq!(
            serde_json::to_string(&stop).unwrap(),
            r#"{"unit":"graced.service","drain_usec":3,"aborted":true}"#
        );
        let reload = ReloadReport { unit: "graced.service", generation: 2 };
        assert_eq!(serde_json::to_string(&reload).unwrap(), r#"{"unit":"graced.service","generation":2}"#);
        let status =
            BTreeMap::from([("unit", Value::from("g")), ("i", Value::from(-2)), ("none", Value::Null)]);
        assert_eq!(serde_json::to_string(&status).unwrap(), r#"{"i":-2,"none":null,"unit":"g"}"#);
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
            ("unit", Value::from("graced.service")),
            ("active_state", Value::from("active")),
            ("sub_state", Value::from("running")),
            ("since", Value::from(1_700_000_000_000_000_u64)),
            ("main_pid", Value::from(42)),
            ("generation", Value::from(3)),
            ("status_text", Value::from("generation 3; 1 connections; 9 requests served")),
        ]);
        assert_eq!(
            status_text(&fields),
            "graced.service: active (running) since 2023-11-14T22:13:20Z\n     main pid: 42\n   \
             generation: 3\n       status: generation 3; 1 connections; 9 requests served\n"
        );
    }
}
