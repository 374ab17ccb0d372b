//! `gracectl` against the graced-dbus binary: output, exit codes, and what it says when no helper answers.

use super::*;

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
    let _helper = start_helper(&bus, &client).await;
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
