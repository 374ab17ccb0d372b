//! Scenario d: a stop drains in-flight requests (and EXTEND_TIMEOUT_USEC keeps systemd waiting).

use super::*;

/// Starts a slow download of `path` (in flight at the server for seconds), waits for its
/// response head, and returns the thread's handle.
pub(super) fn start_slow_download(
    c: &Container,
    path: &str,
) -> (std::thread::JoinHandle<http::SlowDownload>, Instant) {
    let (tx, rx) = mpsc::channel();
    let path = path.to_owned();
    let handle =
        c.spawn_in_netns(move || http::slow_get(addr(HTTP), &path, 64 * 1024, Duration::from_millis(10), tx));
    let head = rx.recv_timeout(Duration::from_secs(20)).expect("the slow download's response head");
    (handle, head)
}

/// d. `systemctl stop` drains: an in-flight slow request completes byte-exact, the unit
/// goes inactive within the drain timeout, the pid file and runtime directory are gone;
/// and a drain longer than TimeoutStopSec= survives through EXTEND_TIMEOUT_USEC.
pub(super) fn d_stop_drains_in_flight_requests(target: Target) {
    let Some(c) = boot(target, "d", Duration::from_secs(180)) else { return };
    install(&c, &config("/srv/www", "20s", HTTP));
    let big = pattern(24 << 20, 7);
    c.write_file("/srv/www/big.bin", &big, 0o644);
    c.must(&["systemctl", "start", "graced.socket"]);
    assert_eq!(body(&c, HTTP, "/"), "one\n");

    let (download, head) = start_slow_download(&c, "/big.bin");
    let t = Instant::now();
    let stop = c.systemctl(&["stop", "graced.service"]);
    let stopped = Instant::now();
    let stop_time = stopped - t;
    assert!(stop.success(), "systemctl stop: {stop}");
    let state = c.show("graced.service", &["ActiveState", "Result"]);
    let pid_file_gone = !c.exec(&["test", "-e", PID_FILE]).success();
    let runtime_dir_gone = !c.exec(&["test", "-e", "/run/graced"]).success();
    let d = download.join().unwrap();
    let response = d.response.unwrap_or_else(|f| panic!("the in-flight request failed: {f}"));
    assert_eq!(response.status, 200);
    response.assert_body(&big, "the slow response must be byte-exact");
    assert_eq!(state["ActiveState"], "inactive", "{state:?}");
    assert_eq!(state["Result"], "success", "{state:?}");
    assert!(pid_file_gone, "{PID_FILE} must be gone after the stop");
    assert!(runtime_dir_gone, "/run/graced must be gone after the stop");
    assert!(stop_time < Duration::from_secs(20), "inactive within the drain timeout (took {stop_time:?})");
    assert!(
        stop_time > Duration::from_millis(500),
        "the stop waited for the in-flight request ({stop_time:?})"
    );
    let download_time = d.done_at - head;
    // The drain ends when the client has every byte (acknowledged by its kernel), not when
    // the last byte was handed to graced's kernel: what the process leaves unsent would
    // live on only in an orphaned socket. What is left is what the client's 64 KiB receive
    // buffer holds, read within a few of its 10 ms pauses (before the kernel's send queue
    // was waited for, the client finished ~700 ms after the stop returned).
    let after_stop = d.done_at.saturating_duration_since(stopped);
    assert!(
        after_stop < Duration::from_millis(400),
        "the client finished {after_stop:?} after the stop returned"
    );
    let journal = c.journal(&["-u", "graced", "-o", "cat"]);
    assert!(journal.contains("graceful stop: draining 1 connections"), "{journal}");
    let first = format!(
        "drain: stop returned after {} while a {} MiB response was in flight; the client finished {} after \
         the head ({} after the stop returned); byte-exact; pid file and /run/graced gone",
        ms(stop_time),
        big.len() >> 20,
        ms(download_time),
        ms(d.done_at.saturating_duration_since(stopped))
    );

    // A drain longer than TimeoutStopSec=: only EXTEND_TIMEOUT_USEC keeps it alive.
    c.write_file(CONFIG, config("/srv/www", "60s", HTTP).as_bytes(), 0o644);
    c.write_file(
        "/etc/systemd/system/graced.service.d/e2e-stop-timeout.conf",
        b"[Service]\nTimeoutStopSec=3s\n",
        0o644,
    );
    let huge = pattern(40 << 20, 11);
    c.write_file("/srv/www/huge.bin", &huge, 0o644);
    c.must(&["systemctl", "daemon-reload"]);
    assert_eq!(c.prop("graced.service", "TimeoutStopUSec"), "3s");
    assert_eq!(body(&c, HTTP, "/"), "one\n");
    let (download, head) = start_slow_download(&c, "/huge.bin");
    let t = Instant::now();
    let stop = c.systemctl(&["stop", "graced.service"]);
    let stop_time = t.elapsed();
    assert!(stop.success(), "systemctl stop: {stop}");
    let state = c.show("graced.service", &["ActiveState", "Result"]);
    let d = download.join().unwrap();
    let response = d.response.unwrap_or_else(|f| panic!("the in-flight request failed: {f}"));
    response.assert_body(&huge, "the in-flight response must be byte-exact");
    assert_eq!(state["ActiveState"], "inactive", "{state:?}");
    assert_eq!(
        state["Result"], "success",
        "EXTEND_TIMEOUT_USEC must keep systemd from timing out: {state:?}"
    );
    assert!(stop_time > Duration::from_secs(3), "the drain outlived TimeoutStopSec=3s ({stop_time:?})");
    let journal = c.journal(&["-u", "graced", "-o", "cat"]);
    assert!(!journal.contains("timed out"), "{journal}");
    figures(&c, "d", &first);
    figures(
        &c,
        "d",
        &format!(
            "extended drain: TimeoutStopSec=3s, graceful_shutdown_timeout=60s, a {} MiB response in \
         flight: stop returned after {}, Result=success, byte-exact (client done {} after the head)",
            huge.len() >> 20,
            ms(stop_time),
            ms(d.done_at - head)
        ),
    );
}
