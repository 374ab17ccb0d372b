//! The generated bus policy under a real dbus-daemon: accepted, a malformed one skipped, only root and the admin group admitted.

use super::*;

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
    let _helper = start_helper(&bus, &client).await;

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
