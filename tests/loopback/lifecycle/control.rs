//! `graced -k` through the control socket: `--wait` returns after the outcome, a broken config is refused without harm.

use std::time::Duration;

use graced_testsupport::notify::Notes;
use graced_testsupport::process::{Server, code};
use graced_testsupport::site::Site;

use super::{T, config_name, start_notified};
use crate::GRACED;

/// `-k COMMAND` with a broken config (a type error on line 4, column 29): without --wait
/// the client refuses it (78) and sends nothing; with --wait it exits non-zero — 78 when
/// the client validates first, 1 when the server judged it (then the server must have
/// said RELOADING=1, then READY=1 with ERRNO=22) — printing FILE:LINE:COL either way.
/// The old config keeps serving (`body`).
fn broken_reload_is_refused(site: &Site, notes: &Notes, server: &Server, command: &str, body: &str) {
    let config = config_name(site);
    let (code_, out) = site.run(&["-k", command]);
    assert_eq!(code_, 78, "-k {command} with a broken config: {out}");
    assert!(out.contains(&format!("{config}:4:29: ")), "no FILE:LINE:COL in {out:?}");
    let after = notes.drain(Duration::from_millis(300));
    assert!(!after.iter().any(|(_, d)| d[0] == "RELOADING=1"), "-k {command} signalled anyway: {after:?}");

    let (code_, out) = site.run(&["-k", command, "--wait"]);
    eprintln!("-k {command} --wait with a broken config: exit {code_}: {out}");
    assert!(code_ == 78 || code_ == 1, "-k {command} --wait with a broken config: exit {code_}: {out}");
    assert!(out.contains(&format!("{config}:4:29: ")), "no FILE:LINE:COL in {out:?}");
    let after = notes.drain(Duration::from_millis(300));
    let failed: Vec<_> = after.iter().filter(|(_, d)| d.last().is_some_and(|l| l == "ERRNO=22")).collect();
    if code_ == 1 {
        assert!(after.iter().any(|(_, d)| d[0] == "RELOADING=1"), "exit 1 but no RELOADING=1: {after:?}");
        assert_eq!(failed.len(), 1, "exit 1 but no READY=1 … ERRNO=22: {after:?}");
        assert!(failed[0].1[1].contains(&format!("{config}:4:29: ")), "{failed:?}");
    } else {
        assert!(!after.iter().any(|(_, d)| d[0] == "RELOADING=1"), "exit 78 but signalled: {after:?}");
    }
    assert_eq!(server.get("/").text(), body, "the old config keeps serving");
}

#[test]
fn k_graceful_wait_returns_after_the_new_config_serves_and_fails_without_harm_on_a_broken_one() {
    let site = Site::new(GRACED);
    std::fs::create_dir(site.path("www2")).unwrap();
    std::fs::write(site.path("www2/index.html"), "hello from www2\n").unwrap();
    let (notes, mut server, _stderr) = start_notified(&site, &[]);

    site.edit_config("root = \"www\"", "root = \"www2\"");
    let (code_, out) = site.run(&["-k", "graceful", "--wait"]);
    let r = server.get("/");
    assert_eq!(code_, 0, "{out}");
    assert_eq!(r.text(), "hello from www2\n", "-k graceful --wait returned before the new config served");
    assert!(out.contains("generation 2"), "{out}");
    notes.wait_for("READY=1", T);

    // Broken config: refused by the client with FILE:LINE:COL, the server is not even asked.
    let good = std::fs::read_to_string(site.config_path()).unwrap();
    site.edit_config("graceful_shutdown_timeout = \"5s\"", "graceful_shutdown_timeout = 5");
    broken_reload_is_refused(&site, &notes, &server, "graceful", "hello from www2\n");

    // A config the client accepts but the server cannot apply (a port in use): exit 1.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    std::fs::write(
        site.config_path(),
        format!("{good}\n[[listen]]\nname = \"extra\"\naddress = \"127.0.0.1:{held_port}\"\n"),
    )
    .unwrap();
    let (code_, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code_, 1, "{out}");
    assert!(out.contains("extra"), "the error names the listener: {out}");
    let datagrams = notes.wait_for_all("ERRNO=22", T);
    assert!(datagrams.iter().any(|d| d[0] == "RELOADING=1"), "{datagrams:?}");
    assert_eq!(server.get("/").text(), "hello from www2\n", "the old config keeps serving");

    std::fs::write(site.config_path(), &good).unwrap();
    let (code_, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code_, 0, "{out}");
    let ok = notes.wait_for("READY=1", T);
    assert_eq!(ok.last().unwrap(), "ERRNO=0", "{ok:?}");
    drop(held);

    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn k_restart_wait_returns_after_the_new_config_serves_and_refuses_a_broken_one() {
    let site = Site::new(GRACED);
    std::fs::create_dir(site.path("www2")).unwrap();
    std::fs::write(site.path("www2/index.html"), "hello from www2\n").unwrap();
    let (notes, mut server, _stderr) = start_notified(&site, &[]);

    site.edit_config("root = \"www\"", "root = \"www2\"");
    let (code_, out) = site.run(&["-k", "restart", "--wait"]);
    let r = server.get("/");
    assert_eq!(code_, 0, "{out}");
    assert_eq!(r.text(), "hello from www2\n", "-k restart --wait returned before the new config served");
    let ready = notes.wait_for("READY=1", T);
    assert!(ready[1].ends_with("; restarted"), "{ready:?}");

    site.edit_config("graceful_shutdown_timeout = \"5s\"", "graceful_shutdown_timeout = 5");
    broken_reload_is_refused(&site, &notes, &server, "restart", "hello from www2\n");

    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn k_graceful_without_wait_returns_0_after_signalling() {
    let site = Site::new(GRACED);
    let (notes, mut server, _stderr) = start_notified(&site, &[]);
    let (code_, out) = site.run(&["-k", "graceful"]);
    assert_eq!(code_, 0, "{out}");
    assert!(out.contains(&format!("SIGUSR1 to pid {}", server.pid())), "{out}");
    assert_eq!(notes.next_event(T)[0], "RELOADING=1");
    assert!(notes.next_event(T)[1].starts_with("STATUS=generation 2;"));
    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
}

#[test]
fn k_stop_wait_and_k_graceful_stop_wait_return_after_the_process_exited() {
    for command in ["stop", "graceful-stop"] {
        let site = Site::new(GRACED);
        let (notes, mut server, _stderr) = start_notified(&site, &[]);
        let (code_, out) = site.run(&["-k", command, "--wait"]);
        let exited = server.child.try_wait().unwrap();
        assert_eq!(code_, 0, "-k {command} --wait: {out}");
        let status =
            exited.unwrap_or_else(|| panic!("-k {command} --wait returned while graced still ran: {out}"));
        assert_eq!(code(status), 0);
        assert_eq!(notes.next_event(T)[0], "STOPPING=1");
        assert!(!site.pid_path().exists());
        let (code_, out) = site.run(&["-k", command]);
        assert_eq!(code_, 3, "-k {command} with nothing running: {out}");
    }
}

/// `-k graceful --wait` against a server that holds the pid file's lock but has not bound
/// its control socket yet (it is starting: the lock comes first, and a socket-activated
/// listener accepts before either) waits for the socket instead of failing with "No such
/// file or directory". The server is a stand-in here, so the window is certain: a Python
/// process that takes the lock as graced does (a POSIX record lock), binds the socket
/// 600 ms later and answers one request as graced would.
#[test]
fn k_graceful_wait_waits_for_a_starting_servers_control_socket() {
    let site = Site::new(GRACED);
    let pid_path = site.pid_path();
    let ctl_path = pid_path.with_extension("ctl");
    let script = r#"
import fcntl, os, socket, sys, time
pid_path, ctl_path = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(pid_path), exist_ok=True)
f = open(pid_path, "w")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.write(f"{os.getpid()}\n"); f.flush()
print("locked", flush=True)
time.sleep(0.6)
s = socket.socket(socket.AF_UNIX); s.bind(ctl_path); s.listen(1); s.settimeout(10)
c, _ = s.accept()
line = b""
while not line.endswith(b"\n"):
    line += c.recv(1)
c.sendall(b"ok reloaded: generation 2 (" + line.strip() + b")\n"); c.close()
time.sleep(0.5)
"#;
    let mut stand_in = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&pid_path)
        .arg(&ctl_path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut locked = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stand_in.stdout.take().unwrap()), &mut locked)
        .unwrap();
    assert_eq!(locked.trim(), "locked");
    let started = std::time::Instant::now();
    let (code_, out) = site.run(&["-k", "graceful", "--wait"]);
    let waited = started.elapsed();
    let _ = stand_in.kill();
    let _ = stand_in.wait();
    assert_eq!(code_, 0, "-k graceful --wait before the control socket existed: {out}");
    assert!(out.contains("reloaded: generation 2 (graceful)"), "{out}");
    assert!(waited >= Duration::from_millis(400), "answered after {waited:?}: the socket was not there yet");
}
