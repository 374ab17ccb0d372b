//! The D-Bus helper on private `dbus-daemon`s, against a fake systemd served on the same bus.
//!
//! The helper's real code path runs end to end: its zbus_systemd proxies call the fake's
//! `org.freedesktop.systemd1` objects, which play stops and reloads the way systemd and
//! graced report them (PropertiesChanged, JobRemoved). Tests assert on method replies,
//! D-Bus error names and signals — never on cached properties (every proxy is built with
//! `CacheProperties::No`). The last tests run dbus-daemon with the generated bus policy.

#[path = "fixtures/dbus/fake_systemd.rs"]
mod fake_systemd;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fake_systemd::{FakeSystemd, FakeUnit, ReloadScript, StopScript};
use graced_dbus::client::Control1Proxy;
use graced_dbus::{BUS_NAME, ControlError, HelperError, HelperOptions, INTERFACE, OBJECT_PATH};
use graced_unit::dbus as files;
use zbus::export::futures_core::Stream;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedVariant};

const GRACECTL: &str = env!("CARGO_BIN_EXE_gracectl");
const HELPER: &str = env!("CARGO_BIN_EXE_graced-dbus");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbus").join(name)
}

/// A private dbus-daemon, killed on drop.
struct Bus {
    child: Child,
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
        Ok(Bus { child, address: line.trim().to_owned(), dir })
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

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_state_generation_connections_and_pid() {
    let w = world(vec![("graced.service", FakeUnit::graced()), ("graced@off.service", FakeUnit::inactive())])
        .await;
    let dict = w.proxy.status("graced").await.unwrap();
    assert_eq!(text(&dict, "unit"), "graced.service");
    assert_eq!(text(&dict, "state"), "active/running");
    assert_eq!(u32::try_from(&dict["main_pid"]).unwrap(), 4242);
    assert_eq!(number(&dict, "since"), 1_700_000_000_000_000);
    assert_eq!(number(&dict, "generation"), 1);
    assert_eq!(number(&dict, "connections"), 2);
    assert_eq!(number(&dict, "requests"), 17);
    assert_eq!(text(&dict, "status_text"), "generation 1; 2 connections; 17 requests served");

    let dict = w.proxy.status("graced@off.service").await.unwrap();
    assert_eq!(text(&dict, "state"), "inactive/dead");
    assert_eq!(u32::try_from(&dict["main_pid"]).unwrap(), 0);
    assert!(!dict.contains_key("generation"));
    assert_eq!(w.calls_matching("Subscribe").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_runs_a_stop_job_when_the_kill_signal_is_winch() {
    let w = world(vec![("graced.service", FakeUnit::graced())]).await;
    let mut progress = w.proxy.receive_drain_progress().await.unwrap();
    let started = Instant::now();
    let (drain_usec, aborted) = w.proxy.graceful_stop("graced", 10).await.unwrap();
    assert!(!aborted);
    assert!(drain_usec >= 90_000 && u128::from(drain_usec) <= started.elapsed().as_micros(), "{drain_usec}");
    assert_eq!(
        World::collect(&mut progress).await,
        [
            "graceful stop: draining 2 connections",
            "draining: 1 connections left, 29s to forced close",
            "graceful stop complete; 0 connections aborted"
        ]
        .map(|s| ("graced.service".to_owned(), s.to_owned()))
    );
    assert_eq!(w.calls_matching("StopUnit"), ["StopUnit(graced.service, replace)"]);
    assert!(w.calls_matching("KillUnit").is_empty());
    assert_eq!(w.fake.unit("graced.service").active_state, "inactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_signals_the_main_process_when_the_kill_signal_is_not_winch() {
    let legacy = FakeUnit {
        kill_signal: libc::SIGTERM,
        stop: StopScript::Drain {
            statuses: vec![
                "graceful stop: draining 1 connections".into(),
                "graceful stop complete; 1 connections aborted".into(),
            ],
            result: "success".into(),
        },
        ..FakeUnit::graced()
    };
    let w = world(vec![("graced@legacy.service", legacy)]).await;
    let mut progress = w.proxy.receive_drain_progress().await.unwrap();
    let (_, aborted) = w.proxy.graceful_stop("graced@legacy", 10).await.unwrap();
    assert!(aborted, "the server said 1 connection was aborted");
    assert_eq!(
        w.calls_matching("KillUnit"),
        [format!("KillUnit(graced@legacy.service, main, {})", libc::SIGWINCH)]
    );
    assert!(w.calls_matching("StopUnit").is_empty());
    let seen = World::collect(&mut progress).await;
    assert_eq!(seen.last().unwrap().1, "graceful stop complete; 1 connections aborted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_drain_counts_as_aborted() {
    // No "graceful stop complete" from the server, and systemd says Result=timeout.
    let killed = FakeUnit {
        stop: StopScript::Drain { statuses: vec![], result: "timeout".into() },
        ..FakeUnit::graced()
    };
    let w = world(vec![("graced.service", killed)]).await;
    let (_, aborted) = w.proxy.graceful_stop("graced.service", 10).await.unwrap();
    assert!(aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_times_out_while_the_drain_goes_on() {
    let w = world(vec![("graced.service", FakeUnit { stop: StopScript::Hang, ..FakeUnit::graced() })]).await;
    let started = Instant::now();
    let err = w.proxy.graceful_stop("graced", 1).await.unwrap_err();
    let ControlError::Timeout(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("graced.service is still deactivating/stop-sigterm after 1s"), "{message}");
    assert!(message.contains("draining: 1 connections left"), "{message}");
    assert!(started.elapsed() >= Duration::from_secs(1) && started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        error_name(&w.client, "GracefulStop", &("graced", 1u32)).await,
        "org.graced.Control1.Error.Timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_stop_job_fails() {
    let w =
        world(vec![("graced.service", FakeUnit { stop: StopScript::Cancel, ..FakeUnit::graced() })]).await;
    let err = w.proxy.graceful_stop("graced", 10).await.unwrap_err();
    let ControlError::StopFailed(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("\"canceled\"") && message.contains("active/running"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_returns_the_new_generation() {
    let w = world(vec![("graced.service", FakeUnit::graced())]).await;
    assert_eq!(w.proxy.reload("graced").await.unwrap(), 2);
    assert_eq!(w.calls_matching("ReloadUnit"), ["ReloadUnit(graced.service, replace)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_waits_for_a_status_that_comes_after_the_job() {
    let late = FakeUnit { reload: ReloadScript::LateStatus { generation: 5 }, ..FakeUnit::graced() };
    let w = world(vec![("graced.service", late)]).await;
    assert_eq!(w.proxy.reload("graced").await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_reload_carries_the_configuration_error() {
    let error = "/etc/graced/graced.toml:3:1: unknown field `lisen`, expected one of `server`, `limits`, `listen`, `site`";
    let broken = FakeUnit { reload: ReloadScript::Broken { error: error.into() }, ..FakeUnit::graced() };
    let w = world(vec![("graced.service", broken)]).await;
    let err = w.proxy.reload("graced").await.unwrap_err();
    let ControlError::ReloadFailed(message) = &err else { panic!("{err:?}") };
    assert_eq!(message, &format!("reload failed, still serving generation 1: {error}"));
    assert_eq!(error_name(&w.client, "Reload", &("graced",)).await, "org.graced.Control1.Error.ReloadFailed");
    // The server kept serving: the unit is still active.
    assert_eq!(text(&w.proxy.status("graced").await.unwrap(), "active_state"), "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_units_cannot_be_stopped_or_reloaded() {
    let w = world(vec![("graced.service", FakeUnit::inactive())]).await;
    let err = w.proxy.graceful_stop("graced", 10).await.unwrap_err();
    assert!(
        matches!(&err, ControlError::NotRunning(m) if m == "graced.service is not running (inactive/dead)"),
        "{err:?}"
    );
    let err = w.proxy.reload("graced").await.unwrap_err();
    assert!(matches!(err, ControlError::NotRunning(_)), "{err:?}");
    assert_eq!(error_name(&w.client, "Reload", &("graced",)).await, "org.graced.Control1.Error.NotRunning");
    assert!(w.calls_matching("StopUnit").is_empty() && w.calls_matching("ReloadUnit").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_graced_units_may_be_acted_on() {
    let w = world(vec![
        ("dbus.service", FakeUnit::running("/usr/bin/dbus-daemon")),
        ("graced-impostor.service", FakeUnit::running("/bin/sh")),
        ("graced-dbus.service", FakeUnit::running("/usr/sbin/graced-dbus")),
        ("graced-gone.service", FakeUnit::not_found()),
    ])
    .await;
    for unit in ["dbus.service", "dbus", "graced.socket", "graced@.service", "../graced"] {
        for err in [
            w.proxy.graceful_stop(unit, 1).await.unwrap_err(),
            w.proxy.reload(unit).await.unwrap_err(),
            w.proxy.status(unit).await.unwrap_err(),
        ] {
            let ControlError::NotAGracedUnit(message) = &err else { panic!("{unit}: {err:?}") };
            assert!(message.contains("only graced.service, graced@INSTANCE.service"), "{message}");
        }
    }
    // Refused by name: systemd was never asked about them.
    assert!(w.calls_matching("LoadUnit(dbus").is_empty(), "{:?}", w.fake.calls());

    // The right name, but not running graced.
    for unit in ["graced-impostor", "graced-dbus"] {
        let err = w.proxy.graceful_stop(unit, 1).await.unwrap_err();
        let ControlError::NotAGracedUnit(message) = &err else { panic!("{unit}: {err:?}") };
        assert!(message.contains("its ExecStart= runs /"), "{message}");
        assert!(message.ends_with(", not graced"), "{message}");
    }
    assert!(w.calls_matching("StopUnit").is_empty() && w.calls_matching("KillUnit").is_empty());

    for unit in ["graced-gone", "graced-missing"] {
        let err = w.proxy.status(unit).await.unwrap_err();
        assert!(matches!(&err, ControlError::NoSuchUnit(m) if m.contains("no such unit")), "{unit}: {err:?}");
    }
    assert_eq!(
        error_name(&w.client, "GracefulStop", &("dbus.service", 5u32)).await,
        "org.graced.Control1.Error.NotAGracedUnit"
    );
    assert_eq!(
        error_name(&w.client, "Status", &("graced-gone",)).await,
        "org.graced.Control1.Error.NoSuchUnit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_describes_the_interface() {
    let w = world(vec![]).await;
    let proxy = zbus::fdo::IntrospectableProxy::builder(&w.client)
        .destination(BUS_NAME)
        .path(OBJECT_PATH)
        .build()
        .await
        .unwrap();
    let xml = proxy.introspect().await.unwrap();
    for expected in [
        r#"<interface name="org.graced.Control1">"#,
        r#"<method name="GracefulStop">"#,
        r#"<arg name="timeout_sec" type="u" direction="in"/>"#,
        r#"<arg name="drain_usec" type="t" direction="out"/>"#,
        r#"<arg name="aborted" type="b" direction="out"/>"#,
        r#"<method name="Reload">"#,
        r#"<method name="Status">"#,
        r#"<arg type="a{sv}" direction="out"/>"#,
        r#"<signal name="DrainProgress">"#,
    ] {
        assert!(xml.contains(expected), "{expected} not in\n{xml}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helper_exits_when_idle_but_never_during_a_call() {
    let options = HelperOptions { idle_timeout: Some(Duration::from_secs(1)), ..options() };
    let w = world_with(
        vec![("graced.service", FakeUnit { stop: StopScript::Hang, ..FakeUnit::graced() })],
        options,
    )
    .await;
    // A call that lasts longer than the idle period keeps the helper alive.
    let err = w.proxy.graceful_stop("graced", 1).await.unwrap_err();
    assert!(matches!(err, ControlError::Timeout(_)), "{err:?}");
    assert!(!w.helper.is_finished(), "the helper exited during a call");
    let result =
        tokio::time::timeout(Duration::from_secs(5), w.helper).await.expect("the helper never exited");
    result.unwrap().unwrap();
    let bus = zbus::fdo::DBusProxy::new(&w.client).await.unwrap();
    assert!(!bus.name_has_owner(BUS_NAME.try_into().unwrap()).await.unwrap(), "the name was not released");
    drop(w.bus);
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

/// The graced-dbus binary on `bus`, killed on drop.
struct HelperProcess(Child);

impl HelperProcess {
    async fn start(bus: &Bus, client: &Connection) -> HelperProcess {
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
        HelperProcess(child.unwrap())
    }
}

impl Drop for HelperProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gracectl_output_and_exit_codes() {
    let bus = Bus::session();
    let broken = FakeUnit {
        reload: ReloadScript::Broken {
            error: "/etc/graced/instances/broken.toml:3:1: unknown field `lisen`".into(),
        },
        ..FakeUnit::graced()
    };
    let _fake = FakeSystemd::start(
        &bus.address,
        vec![
            ("graced.service", FakeUnit::graced()),
            ("graced@broken.service", broken),
            ("graced-off.service", FakeUnit::inactive()),
            ("dbus.service", FakeUnit::running("/usr/bin/dbus-daemon")),
        ],
    )
    .await;
    let client = bus.connect().await;
    let _helper = HelperProcess::start(&bus, &client).await;
    let address = bus.address.as_str();

    let out = gracectl(address, &["status"], None).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("graced.service: active (running) since 2023-11-14T22:13:20Z\n"), "{text}");
    assert!(text.contains("  generation: 1\n") && text.contains("    main pid: 4242\n"), "{text}");

    let out = gracectl(address, &["status", "graced", "--json"], None).await;
    assert_eq!(code(&out), 0);
    let json = stdout(&out);
    assert!(json.starts_with('{') && json.trim_end().ends_with('}'), "{json}");
    for field in [
        r#""generation":1"#,
        r#""main_pid":4242"#,
        r#""state":"active/running""#,
        r#""unit":"graced.service""#,
    ] {
        assert!(json.contains(field), "{field} not in {json}");
    }

    let out = gracectl(address, &["reload", "graced"], None).await;
    assert_eq!((code(&out), stdout(&out).as_str()), (0, "graced.service: reloaded; generation 2 serving\n"));
    let out = gracectl(address, &["--json", "reload", "graced"], None).await;
    assert_eq!(stdout(&out), "{\"unit\":\"graced.service\",\"generation\":2}\n");

    let out = gracectl(address, &["reload", "graced@broken"], None).await;
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "gracectl: reload graced@broken.service: reload failed, still serving generation 1: \
         /etc/graced/instances/broken.toml:3:1: unknown field `lisen`\n"
    );
    let out = gracectl(address, &["reload", "graced@broken", "--json"], None).await;
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains(r#""error":"org.graced.Control1.Error.ReloadFailed""#), "{}", stdout(&out));
    assert!(stdout(&out).contains("broken.toml:3:1: unknown field `lisen`"), "{}", stdout(&out));

    let out = gracectl(address, &["graceful-stop", "dbus.service"], None).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("\"dbus.service\" is not a graced unit"), "{}", stderr(&out));

    let out = gracectl(address, &["graceful-stop", "graced-off"], None).await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let out = gracectl(address, &["status", "graced-off"], None).await;
    assert_eq!(code(&out), 3, "status of a stopped unit: {}", stderr(&out));
    assert!(stdout(&out).starts_with("graced-off.service: inactive (dead)"), "{}", stdout(&out));
    let out = gracectl(address, &["status", "graced-nowhere"], None).await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));

    let out = gracectl(address, &["graceful-stop", "graced", "--timeout", "10"], None).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("graced.service: stopped gracefully after 0."), "{}", stdout(&out));
    assert!(stdout(&out).ends_with("s; no request was aborted\n"), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "graced.service: graceful stop: draining 2 connections\n\
         graced.service: draining: 1 connections left, 29s to forced close\n\
         graced.service: graceful stop complete; 0 connections aborted\n"
    );

    let out = gracectl(address, &["frobnicate"], None).await;
    assert_eq!(code(&out), 2);
    let out = gracectl(address, &["--help"], None).await;
    assert!(stdout(&out).contains("4  access denied by the bus policy"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gracectl_without_a_helper_is_unreachable() {
    let bus = Bus::session();
    let out = gracectl(&bus.address, &["status"], None).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot reach the graced helper org.graced.Control1"), "{}", stderr(&out));
    let out = gracectl(&bus.address, &["--json", "reload"], None).await;
    assert_eq!(code(&out), 5);
    assert!(
        stdout(&out).contains(r#""error":"org.freedesktop.DBus.Error.ServiceUnknown""#),
        "{}",
        stdout(&out)
    );
    let nowhere = format!("unix:path={}/none", bus.dir.path().display());
    let out = gracectl(&nowhere, &["status"], None).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
}

#[test]
fn dbus_daemon_accepts_the_generated_policy() {
    let bus = Bus::system("<include>@DIR@/org.graced.Control1.conf</include>", |dir| {
        let policy = files::bus_policy("graced-admin");
        files::validate_policy(&policy).unwrap();
        std::fs::write(dir.join("org.graced.Control1.conf"), policy).unwrap();
    })
    .unwrap_or_else(|stderr| panic!("dbus-daemon rejected the policy:\n{stderr}"));
    assert!(bus.address.starts_with("unix:path="), "{}", bus.address);
    let stderr = bus.stop();
    assert!(!stderr.contains("Error in file"), "{stderr}");
}

#[test]
fn a_malformed_policy_fails_validation_as_dbus_daemon_would_skip_it() {
    let broken = std::fs::read_to_string(fixture("broken-policy.conf")).unwrap();
    let err = files::validate_policy(&broken).unwrap_err();
    assert_eq!((err.line, err.column), (7, 3), "{err}");
    assert!(err.to_string().contains("<policy> is closed by </busconfig>"), "{err}");

    // Included directly, dbus-daemon refuses to start…
    let include = format!("<include>{}</include>", fixture("broken-policy.conf").display());
    let stderr = Bus::system(&include, |_| {}).err().expect("dbus-daemon started with a broken policy");
    assert!(stderr.contains("Failed to start message bus"), "{stderr}");

    // …but from a system.d-style directory it starts anyway, without the file's rules.
    let bus = Bus::system("<includedir>@DIR@/system.d</includedir>", |dir| {
        std::fs::create_dir(dir.join("system.d")).unwrap();
        std::fs::copy(fixture("broken-policy.conf"), dir.join("system.d/org.graced.Control1.conf")).unwrap();
    })
    .expect("dbus-daemon skips broken files in an includedir");
    let stderr = bus.stop();
    assert!(stderr.contains("Encountered error"), "{stderr}");
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_admits_root_and_the_admin_group_only() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and setpriv to run clients as other users");
        return;
    }
    // nobody (65534) is in the admin group here ("nogroup", its primary group);
    // daemon (uid 1, gid 1) is not.
    let (nobody, nogroup, daemon) = ((65534, 65534), "nogroup", (1, 1));
    let bus = Bus::system("<include>@DIR@/org.graced.Control1.conf</include>", |dir| {
        std::fs::write(dir.join("org.graced.Control1.conf"), files::bus_policy(nogroup)).unwrap();
    })
    .unwrap();
    let _fake = FakeSystemd::start(&bus.address, vec![("graced.service", FakeUnit::graced())]).await;
    let client = bus.connect().await;
    let _helper = HelperProcess::start(&bus, &client).await;

    let out = gracectl(&bus.address, &["status"], None).await;
    assert_eq!(code(&out), 0, "root: {}", stderr(&out));
    let out = gracectl(&bus.address, &["status"], Some(nobody)).await;
    assert_eq!(code(&out), 0, "a member of the admin group: {}", stderr(&out));
    let out = gracectl(&bus.address, &["reload"], Some(daemon)).await;
    assert_eq!(code(&out), 4, "outside the admin group: {}", stderr(&out));
    assert!(stderr(&out).contains("access denied: only root and members of"), "{}", stderr(&out));
    let out = gracectl(&bus.address, &["--json", "graceful-stop"], Some(daemon)).await;
    assert_eq!(code(&out), 4);
    assert!(
        stdout(&out).contains(r#""error":"org.freedesktop.DBus.Error.AccessDenied""#),
        "{}",
        stdout(&out)
    );

    // Anyone may introspect.
    let introspect = Command::new("setpriv")
        .args(["--reuid=1", "--regid=1", "--clear-groups", "--", "dbus-send"])
        .arg(format!("--bus={}", bus.address))
        .args(["--print-reply", "--dest=org.graced.Control1", "/org/graced/Control1"])
        .arg("org.freedesktop.DBus.Introspectable.Introspect")
        .output();
    if let Ok(out) = introspect {
        assert!(out.status.success(), "introspection as daemon: {}", stderr(&out));
        assert!(stdout(&out).contains("org.graced.Control1"), "{}", stdout(&out));
    }

    // Only root may own the name.
    let out = tokio::task::spawn_blocking({
        let address = bus.address.clone();
        move || {
            Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--",
                    HELPER,
                    "--address",
                    &address,
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot own the name org.graced.Control1"), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("is not allowed to own the service").count(),
        1,
        "the cause once: {}",
        stderr(&out)
    );
    assert_eq!(_fake.calls().iter().filter(|c| c.starts_with("ReloadUnit")).count(), 0);
}
