//! The D-Bus helper on private `dbus-daemon`s, against a fake systemd served on the same bus.
//!
//! The helper's real code path runs end to end: its zbus_systemd proxies call the fake's
//! `org.freedesktop.systemd1` objects, which play stops and reloads the way systemd and
//! graced report them (PropertiesChanged, JobRemoved). Tests assert on method replies,
//! D-Bus error names and signals — never on cached properties (every proxy is built with
//! `CacheProperties::No`). The last tests run dbus-daemon with the generated bus policy.

mod gracectl;
mod helper;
mod policy;

#[path = "../../fixtures/dbus/fake_systemd.rs"]
mod fake_systemd;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fake_systemd::{FakeSystemd, FakeUnit, ReloadScript, StopScript};
use graced_dbus::client::Control1Proxy;
use graced_dbus::{BUS_NAME, ControlError, HelperError, HelperOptions, INTERFACE, OBJECT_PATH};
use graced_unit::dbus as files;
use zbus::export::futures_core::Stream;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedVariant};

use graced_testsupport::process::Reaped;

use crate::{GRACECTL, HELPER};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbus").join(name)
}

/// A private dbus-daemon, killed on drop.
struct Bus {
    child: Reaped,
    address: String,
    dir: tempfile::TempDir,
}

impl Bus {
    /// A permissive session-type bus.
    fn session() -> Bus {
        Bus::start("session-bus.conf.in", "", |_| {}).unwrap_or_else(|err| panic!("dbus-daemon: {err}"))
    }

    /// A bus with the system bus's policy plus `include` (see system-bus.conf.in);
    /// `prepare` may write files into the bus's directory first. Err: dbus-daemon's stderr.
    fn system(include: &str, prepare: impl FnOnce(&Path)) -> Result<Bus, String> {
        Bus::start("system-bus.conf.in", include, prepare)
    }

    fn start(template: &str, include: &str, prepare: impl FnOnce(&Path)) -> Result<Bus, String> {
        let dir = tempfile::tempdir().unwrap();
        // Other users must reach the socket (the policy tests run clients as nobody).
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        prepare(dir.path());
        let config = std::fs::read_to_string(fixture(template))
            .unwrap()
            .replace("@INCLUDE@", &include.replace("@DIR@", &dir.path().display().to_string()))
            .replace("@DIR@", &dir.path().display().to_string());
        let config_path = dir.path().join("bus.conf");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config_path.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon) must be installed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            let _ = child.wait();
            return Err(stderr);
        }
        Ok(Bus { child: Reaped::new(child), address: line.trim().to_owned(), dir })
    }

    /// Stops the daemon and returns what it wrote on stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        stderr
    }

    /// A connection whose method calls fail after 60 s instead of waiting forever, so a
    /// lost reply is a named failure, never a hung test run.
    async fn connect(&self) -> Connection {
        self.builder().build().await.unwrap()
    }

    /// What [`Bus::connect`] builds, for the helper to build itself.
    fn builder(&self) -> zbus::connection::Builder<'static> {
        zbus::connection::Builder::address(self.address.as_str()).method_timeout(Duration::from_secs(60))
    }
}

/// The next item of a stream, or None after `wait`.
async fn next_within<S: Stream + Unpin>(stream: &mut S, wait: Duration) -> Option<S::Item> {
    tokio::time::timeout(wait, std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)))
        .await
        .ok()
        .flatten()
}

/// Returns once `name` has an owner on `conn`'s bus (waits for NameOwnerChanged).
async fn wait_for_owner(conn: &Connection, name: &str, start: impl FnOnce()) {
    let bus = zbus::fdo::DBusProxy::new(conn).await.unwrap();
    let mut changes = bus.receive_name_owner_changed_with_args(&[(0, name)]).await.unwrap();
    start();
    if bus.name_has_owner(name.try_into().unwrap()).await.unwrap() {
        return;
    }
    while let Some(change) = next_within(&mut changes, Duration::from_secs(10)).await {
        if change.args().unwrap().new_owner().is_some() {
            return;
        }
    }
    panic!("{name} never appeared on the bus");
}

fn options() -> HelperOptions {
    HelperOptions {
        idle_timeout: None,
        default_stop_timeout: Duration::from_secs(10),
        reload_timeout: Duration::from_secs(10),
    }
}

/// A bus, a fake systemd with `units`, the helper running in-process, and a client.
struct World {
    bus: Bus,
    fake: FakeSystemd,
    client: Connection,
    proxy: Control1Proxy<'static>,
    helper: tokio::task::JoinHandle<Result<(), HelperError>>,
}

async fn world(units: Vec<(&str, FakeUnit)>) -> World {
    world_with(units, options()).await
}

async fn world_with(units: Vec<(&str, FakeUnit)>, options: HelperOptions) -> World {
    let bus = Bus::session();
    let fake = FakeSystemd::start(&bus.address, units).await;
    let client = bus.connect().await;
    let helper_bus = bus.builder();
    let mut helper = None;
    wait_for_owner(&client, BUS_NAME, || {
        helper = Some(tokio::spawn(async move { graced_dbus::run(helper_bus, options).await }));
    })
    .await;
    let proxy = Control1Proxy::builder(&client).cache_properties(CacheProperties::No).build().await.unwrap();
    World { bus, fake, client, proxy, helper: helper.unwrap() }
}

impl World {
    /// Every DrainProgress signal already received, as (unit, status).
    async fn collect<S>(stream: &mut S) -> Vec<(String, String)>
    where
        S: Stream<Item = graced_dbus::client::DrainProgress> + Unpin,
    {
        let mut seen = Vec::new();
        while let Some(signal) = next_within(stream, Duration::from_millis(200)).await {
            let args = signal.args().unwrap();
            seen.push((args.unit().to_string(), args.status().to_string()));
        }
        seen
    }

    fn calls_matching(&self, prefix: &str) -> Vec<String> {
        self.fake.calls().into_iter().filter(|c| c.starts_with(prefix)).collect()
    }
}

fn text(dict: &HashMap<String, OwnedVariant>, key: &str) -> String {
    <&str>::try_from(&dict[key]).unwrap_or_else(|_| panic!("{key} is not a string")).to_owned()
}

fn number(dict: &HashMap<String, OwnedVariant>, key: &str) -> u64 {
    u64::try_from(&dict[key]).unwrap_or_else(|_| panic!("{key} is not a u64"))
}

/// The D-Bus error name a raw call gets back (proves the names on the wire).
async fn error_name<B>(client: &Connection, method: &str, body: &B) -> String
where
    B: serde::Serialize + zbus::DynamicType,
{
    let err =
        client.call_method(Some(BUS_NAME), OBJECT_PATH, Some(INTERFACE), method, body).await.unwrap_err();
    graced_dbus::error::zbus_error_name(&err).unwrap_or_else(|| panic!("no error name in {err}"))
}

/// Runs `gracectl --address ADDR ARGS…` (optionally as another user) off the runtime.
async fn gracectl(address: &str, args: &[&str], user: Option<(u32, u32)>) -> Output {
    let mut command = match user {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
            ]);
            c.arg(GRACECTL);
            c
        }
        None => Command::new(GRACECTL),
    };
    command.arg("--address").arg(address).args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Starts the graced-dbus binary on `bus` (killed on drop) and waits until it owns its name.
async fn start_helper(bus: &Bus, client: &Connection) -> Reaped {
    let mut child = None;
    wait_for_owner(client, BUS_NAME, || {
        child = Some(
            Command::new(HELPER)
                .args(["--address", &bus.address, "--idle-timeout", "60s"])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    })
    .await;
    Reaped::new(child.unwrap())
}
