//! The helper in-process on a private bus: Status, GracefulStop, Reload, the graced-unit rule, introspection, idle exit — against the fake systemd.

use super::*;

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
