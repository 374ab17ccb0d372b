//! Scenarios a and b: socket activation starts the service on the first request; a reload tells the truth (good, broken, recovered).

use super::*;

/// a. `systemctl start graced.socket`; the first request activates graced.service, which
/// reports active/running, a STATUS= text and its MainPID.
pub(super) fn a_socket_activation_starts_the_service_on_the_first_request(target: Target) {
    let Some(c) = boot(target, "a", Duration::from_secs(120)) else { return };
    install(&c, &config("/srv/www", "10s", HTTP));
    c.must(&["systemctl", "start", "graced.socket"]);
    let socket = c.show("graced.socket", &["ActiveState", "SubState", "Listen"]);
    assert_eq!(socket["ActiveState"], "active", "{socket:?}");
    assert_eq!(socket["SubState"], "listening", "{socket:?}");
    assert!(socket["Listen"].contains("127.0.0.1:80"), "{socket:?}");
    assert_eq!(c.prop("graced.service", "ActiveState"), "inactive", "nothing has activated it yet");

    let t = Instant::now();
    let first = body(&c, HTTP, "/");
    let first_latency = t.elapsed();
    assert_eq!(first, "one\n");

    let p = c.show(
        "graced.service",
        &["ActiveState", "SubState", "StatusText", "MainPID", "TriggeredBy", "Result"],
    );
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["SubState"], "running", "{p:?}");
    assert!(p["StatusText"].starts_with("generation 1; "), "STATUS= text: {p:?}");
    let pid: u32 = p["MainPID"].parse().unwrap();
    assert!(pid > 1, "{p:?}");
    assert!(p["TriggeredBy"].contains("graced.socket"), "{p:?}");
    // The server runs as the unprivileged user, holds its pid file in the RuntimeDirectory.
    let pid_file = c.must(&["cat", PID_FILE]);
    assert_eq!(pid_file.trim(), pid.to_string(), "the pid file names MainPID");
    let status = c.must(&["cat", &format!("/proc/{pid}/status")]);
    let uid = c.must(&["id", "-u", "graced"]);
    assert!(
        status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid.trim())),
        "{status}"
    );
    // The same over D-Bus, where the container has a bus.
    let bus = c.busctl(&[
        "get-property",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1/unit/graced_2eservice",
        "org.freedesktop.systemd1.Unit",
        "ActiveState",
    ]);
    if bus.success() {
        assert_eq!(bus.stdout.trim(), "s \"active\"", "{bus}");
    }
    // Once the status tick has run the STATUS= text counts the request.
    let mut status_text = String::new();
    for _ in 0..80 {
        status_text = c.prop("graced.service", "StatusText");
        if status_text.contains("1 requests served") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    figures(
        &c,
        "a",
        &format!(
            "boot {}; first request (activation) {}; StatusText {:?}; MainPID {pid}; D-Bus {}",
            ms(c.boot_time),
            ms(first_latency),
            status_text,
            if bus.success() { "ok" } else { "not available" }
        ),
    );
    assert_generated_unit_unchanged(&c);
}

/// b. `systemctl reload` returns only once the new configuration serves; a broken one
/// fails the reload, keeps the old content, and the journal names FILE:LINE:COL.
pub(super) fn b_reload_tells_the_truth(target: Target) {
    let Some(c) = boot(target, "b", Duration::from_secs(120)) else { return };
    install(&c, &config("/srv/www", "10s", HTTP));
    c.must(&["systemctl", "start", "graced.socket"]);
    assert_eq!(body(&c, HTTP, "/"), "one\n");
    let pid = main_pid(&c);

    // A poller watches for the new content while the reload runs.
    c.write_file(CONFIG, config("/srv/www2", "10s", HTTP).as_bytes(), 0o644);
    let stop = StopFlag::new();
    let poller = {
        let stop = stop.clone();
        c.spawn_in_netns(move || {
            let mut first_new = None;
            let mut polls = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if let Ok(r) = http::get(addr(HTTP), "/") {
                    polls += 1;
                    if first_new.is_none() && r.text() == "two\n" {
                        first_new = Some(Instant::now());
                    }
                }
            }
            (first_new, polls)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let reload = c.systemctl(&["reload", "graced"]);
    let returned = Instant::now();
    // The FIRST request after `systemctl reload` returned, with no sleep in between.
    let after = get(&c, HTTP, "/");
    let after_latency = returned.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (first_new, polls) = poller.join().unwrap();
    assert!(reload.success(), "systemctl reload: {reload}");
    assert_eq!(
        after.text(),
        "two\n",
        "the first request after `systemctl reload` returned must see the new config"
    );
    let first_new = first_new.expect("the poller saw the new content");
    let p = c.show("graced.service", &["ActiveState", "SubState", "StatusText", "StatusErrno", "MainPID"]);
    assert_eq!((p["ActiveState"].as_str(), p["SubState"].as_str()), ("active", "running"), "{p:?}");
    assert!(p["StatusText"].starts_with("generation 2; "), "{p:?}");
    assert_eq!(p["MainPID"], pid.to_string(), "a reload keeps the process");
    let reload_time = returned - t0;
    // When the poller (another thread, so only indicative) first saw the new content,
    // relative to the reload's return: negative means before.
    let first_new_vs_return = first_new.duration_since(t0).as_secs_f64() - reload_time.as_secs_f64();

    // A configuration with a type error: the reload fails, nothing changes.
    let (broken, position) = broken_config("/srv/www");
    c.write_file(CONFIG, broken.as_bytes(), 0o644);
    let t1 = Instant::now();
    let failed = c.systemctl(&["reload", "graced"]);
    let failed_time = t1.elapsed();
    assert!(!failed.success(), "a broken config must fail `systemctl reload`: {failed}");
    assert_eq!(body(&c, HTTP, "/"), "two\n", "the old generation keeps serving");
    let p = c.show("graced.service", &["ActiveState", "SubState", "MainPID", "StatusText"]);
    assert_eq!((p["ActiveState"].as_str(), p["SubState"].as_str()), ("active", "running"), "{p:?}");
    assert_eq!(p["MainPID"], pid.to_string());
    let journal = c.journal(&["-u", "graced", "-o", "cat"]);
    assert!(journal.contains(&position), "journalctl -u graced must show {position}:\n{journal}");
    let error_line = journal.lines().find(|l| l.contains(&position)).unwrap_or_default().to_owned();

    // The server itself rejecting a reload (here: a listener change under socket
    // activation, which `graced -t` accepts) says why in STATUS= and ERRNO=, and fails
    // `systemctl reload` on both forms: < 253 the waiting ExecReload= carries the server's
    // answer; ≥ 253 no sd_notify field can fail the job (research/systemd-trixie.md §3c),
    // but ExecReload= runs after the signal and asks the server for that reload's outcome.
    c.write_file(CONFIG, config("/srv/www", "10s", "127.0.0.1:81").as_bytes(), 0o644);
    let rejected = c.systemctl(&["reload", "graced"]);
    assert!(!rejected.success(), "a reload the server rejects must fail: {rejected}");
    let p = c.show("graced.service", &["StatusText", "StatusErrno", "ActiveState", "SubState"]);
    assert!(p["StatusText"].contains("reload failed, still serving generation 2"), "{p:?}");
    assert_eq!(p["StatusErrno"], "22", "{p:?}");
    assert_eq!((p["ActiveState"].as_str(), p["SubState"].as_str()), ("active", "running"), "{p:?}");
    assert_eq!(body(&c, HTTP, "/"), "two\n");

    // Fixed again: the next reload succeeds and clears the error.
    c.write_file(CONFIG, config("/srv/www", "10s", HTTP).as_bytes(), 0o644);
    c.must(&["systemctl", "reload", "graced"]);
    assert_eq!(body(&c, HTTP, "/"), "one\n");
    let p = c.show("graced.service", &["StatusText", "StatusErrno"]);
    assert_eq!(p["StatusErrno"], "0", "{p:?}");
    assert!(p["StatusText"].starts_with("generation 3; "), "{p:?}");
    figures(
        &c,
        "b",
        &format!(
            "reload returned after {}; the poller ({polls} requests) first saw the new content {:+.0} ms \
         relative to the return; first request after the return: new content, {}; broken config: reload failed \
         (exit {}) in {}, old content served, journal: {:?}; a reload the server rejects: exit {}",
            ms(reload_time),
            first_new_vs_return * 1000.0,
            ms(after_latency),
            failed.status,
            ms(failed_time),
            error_line.trim(),
            rejected.status
        ),
    );
    assert_generated_unit_unchanged(&c);
}
