//! Pid-file tests against the real binary: a stale file never blocks a start, `-k` never signals a stranger, "already running" means the lock.
use std::process::{Command, Stdio};
use std::time::Duration;

use graced_testsupport::process::{Reaped, Server, StderrLog, code, process_is, scrub};
use graced_testsupport::site::Site;

use crate::GRACED;

const T: Duration = Duration::from_secs(5);

fn write_pid_file(site: &Site, pid: u32) {
    std::fs::create_dir_all(site.pid_path().parent().unwrap()).unwrap();
    std::fs::write(site.pid_path(), format!("{pid}\n")).unwrap();
}

fn pid_in_file(site: &Site) -> Option<u32> {
    std::fs::read_to_string(site.pid_path()).ok()?.trim().parse().ok()
}

/// Starts graced (clean environment) and waits until it serves.
fn start(site: &Site) -> (Server, StderrLog) {
    let mut server = site.spawn(&[]);
    let stderr = StderrLog::capture(&mut server);
    if server.child.try_wait().unwrap().is_some() {
        panic!("graced exited at once:\n{}", stderr.text());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", site.port)).is_err() {
        if let Some(status) = server.child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(50));
            panic!("graced exited with {status}:\n{}", stderr.text());
        }
        assert!(std::time::Instant::now() < deadline, "graced did not listen:\n{}", stderr.text());
        std::thread::sleep(Duration::from_millis(10));
    }
    (server, stderr)
}

/// A `sleep 30`, once it really is `sleep` (spawn may return before the exec completes).
fn sleeper() -> Reaped {
    let child = Reaped::new(Command::new("sleep").arg("30").stdin(Stdio::null()).spawn().unwrap());
    let deadline = std::time::Instant::now() + T;
    while !process_is(child.pid(), "sleep") {
        assert!(std::time::Instant::now() < deadline, "sleep never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
    child
}

#[test]
fn a_pid_file_naming_a_dead_process_does_not_block_a_start() {
    let site = Site::new(GRACED);
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    write_pid_file(&site, dead);

    let (mut server, stderr) = start(&site);
    assert_eq!(server.get("/").text(), "hello\n");
    assert_eq!(pid_in_file(&site), Some(server.pid() as u32));
    assert!(
        stderr.wait_for(&format!("stale_pid={dead}"), T),
        "the replacement is not logged:\n{}",
        stderr.text()
    );
    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
    assert!(!site.pid_path().exists(), "the pid file is removed on exit");
}

#[test]
fn a_pid_file_naming_a_live_stranger_neither_blocks_a_start_nor_gets_it_signalled() {
    let site = Site::new(GRACED);
    let stranger = sleeper();
    let pid = stranger.pid();
    assert!(process_is(pid, "sleep"), "comm: {:?}", std::fs::read_to_string(format!("/proc/{pid}/comm")));

    // (b) graced starts and serves; the stranger lives on.
    write_pid_file(&site, pid);
    let (mut server, stderr) = start(&site);
    assert_eq!(server.get("/").text(), "hello\n");
    assert_eq!(pid_in_file(&site), Some(server.pid() as u32));
    assert!(
        stderr.wait_for(&format!("named pid {pid} (sleep"), T),
        "the replaced file's owner is not described:\n{}",
        stderr.text()
    );
    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
    assert!(process_is(pid, "sleep"), "the stranger died");

    // (c) the same stale file and no graced: every -k leaves the stranger alone (USR1,
    // HUP and TERM would kill a sleep), exits 3 and says why.
    write_pid_file(&site, pid);
    for args in [
        &["-k", "stop"][..],
        &["-k", "stop", "--wait"],
        &["-k", "graceful"],
        &["-k", "restart"],
        &["-k", "graceful", "--wait"],
        &["-k", "graceful-stop"],
    ] {
        let (code_, out) = site.run(args);
        assert_eq!(code_, 3, "{args:?}: {out}");
        assert!(
            out.contains("stale") && out.contains(&format!("pid {pid}")),
            "{args:?} does not say why: {out}"
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(process_is(pid, "sleep"), "{args:?} signalled the stranger: {out}");
    }
    assert_eq!(pid_in_file(&site), Some(pid), "-k must not touch the file");
}

#[test]
fn a_second_graced_says_already_running_with_the_real_pid() {
    let site = Site::new(GRACED);
    let (mut first, _stderr) = start(&site);
    let out = scrub(&mut Command::new(GRACED))
        .arg("-f")
        .arg(site.config_path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(out.status), 1, "{text}");
    assert!(
        text.contains("already running") && text.contains(&format!("pid {}", first.pid())),
        "the refusal does not name the running pid {}: {text}",
        first.pid()
    );
    // The first one is undisturbed.
    assert_eq!(pid_in_file(&site), Some(first.pid() as u32));
    assert_eq!(first.get("/").text(), "hello\n");
    first.signal(libc::SIGTERM);
    assert_eq!(code(first.wait_exit(T)), 0);
}

#[test]
fn after_kill_9_a_new_graced_starts_at_once_and_reports_the_stale_file() {
    let site = Site::new(GRACED);
    let (mut first, _stderr) = start(&site);
    let killed = first.pid();
    first.signal(libc::SIGKILL);
    first.wait_exit(T);
    assert_eq!(pid_in_file(&site), Some(killed as u32), "kill -9 leaves the file behind");

    let (mut second, stderr) = start(&site);
    assert_eq!(second.get("/").text(), "hello\n");
    assert_eq!(pid_in_file(&site), Some(second.pid() as u32));
    assert!(
        stderr.wait_for(&format!("stale_pid={killed}"), T),
        "no stale pid-file report:\n{}",
        stderr.text()
    );
    assert!(stderr.text().contains("replaced"), "{}", stderr.text());
    // And -k finds the new one by its lock (the control socket left by the killed one was replaced too).
    let (code_, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code_, 0, "{out}");
    let (code_, out) = site.run(&["-k", "stop", "--wait"]);
    assert_eq!(code_, 0, "{out}");
    assert!(out.contains(&format!("pid {}", second.pid())), "{out}");
    assert_eq!(code(second.wait_exit(T)), 0);
}
