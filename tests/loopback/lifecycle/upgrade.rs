//! Binary upgrade (`-k upgrade`, USR2): the new process serves and becomes main while the old drains; every failure leaves the old one serving and says why.
//!
//! The server runs from a copy of graced in a directory of the test's own, so the test can
//! put something else at that path (a script that exits, hangs…) before asking for the
//! upgrade, as a package would install a new binary. The fake `NOTIFY_SOCKET` records who
//! sent each datagram (SCM_CREDENTIALS), as systemd would judge it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use graced_testsupport::http::Client;
use graced_testsupport::http::{STALL, SlowGet};
use graced_testsupport::notify::{Notes, assert_datagram, is_background};
use graced_testsupport::process::{Server, code, kill, process_is};
use graced_testsupport::site::Site;

use super::{T, hello};
use crate::GRACED;

const BIG: usize = 8 * 1024 * 1024;

/// A site served by a copy of graced at a path of the test's own (`bin/graced`), with a
/// big file, a short upgrade timeout and a drain long enough to hold a download.
struct Setup {
    site: Site,
    bin_dir: tempfile::TempDir,
    big: Vec<u8>,
}

impl Setup {
    fn new() -> Setup {
        // In Cargo's target tree: the same filesystem as the binary, so a hard link does.
        let bin_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let bin = bin_dir.path().join("graced");
        if std::fs::hard_link(GRACED, &bin).is_err() {
            std::fs::copy(GRACED, &bin).unwrap();
        }
        let site = Site::new(&bin);
        site.write_config_with_server(
            "access_log = \"off\"\ngraceful_shutdown_timeout = \"20s\"\nupgrade_timeout = \"1500ms\"",
            "",
        );
        let big = site.write_big_file("www/big", BIG, 17);
        Setup { site, bin_dir, big }
    }

    fn bin(&self) -> PathBuf {
        self.bin_dir.path().join("graced")
    }

    /// Replaces the installed binary by a new file (a new inode, as dpkg does).
    fn install(&self, from: &Path) {
        let staged = self.bin_dir.path().join("graced.new");
        if std::fs::hard_link(from, &staged).is_err() {
            std::fs::copy(from, &staged).unwrap();
        }
        std::fs::rename(&staged, self.bin()).unwrap();
    }

    /// Installs a shell script as the binary.
    fn install_script(&self, body: &str) {
        let script = self.bin_dir.path().join("script");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::rename(&script, self.bin()).unwrap();
    }

    /// The pid file's content.
    fn pid_in_file(&self) -> u32 {
        std::fs::read_to_string(self.site.pid_path()).unwrap().trim().parse().unwrap()
    }
}

/// Starts the server under a fake NOTIFY_SOCKET (plus `env`) and waits for READY=1.
fn start(setup: &Setup, env: &[(&str, &str)]) -> (Notes, Server) {
    let notes = Notes::new();
    let socket = notes.env_value();
    let mut all = vec![("NOTIFY_SOCKET", socket.as_str())];
    all.extend_from_slice(env);
    let server = setup.site.spawn(&all);
    notes.wait_for("READY=1", Duration::from_secs(10));
    (notes, server)
}

/// A process that is not the test's child (the new server, child of the old): killed by
/// pid when the test ends, however it ends.
struct Adopted(u32);

impl Drop for Adopted {
    fn drop(&mut self) {
        if process_is(self.0, "graced") {
            // SAFETY: kill(2) on a graced this test started (through the old server).
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
}

/// `graced -k upgrade --wait` (the test's own graced: the installed one may be a script).
fn upgrade(setup: &Setup) -> (i32, String) {
    ctl(setup, &["-k", "upgrade", "--wait"])
}

/// `graced ARGS -f CONFIG` run by the test's own graced: the exit code and the output.
fn ctl(setup: &Setup, args: &[&str]) -> (i32, String) {
    let mut command = std::process::Command::new(GRACED);
    command.args(args).arg("-f").arg(setup.site.config_path());
    let out = graced_testsupport::process::scrub(&mut command).output().unwrap();
    (
        code(out.status),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// The new pid from `-k upgrade --wait`'s answer ("… upgraded: pid N serves; …").
fn new_pid(out: &str) -> u32 {
    let rest = out.split("upgraded: pid ").nth(1).unwrap_or_else(|| panic!("no new pid in {out:?}"));
    rest.split(' ').next().unwrap().parse().unwrap()
}

/// The datagrams sent from `from` on (an index into [`Notes::senders`]), without the
/// background ones (watchdog pings, bare STATUS=).
fn events_since(notes: &Notes, from: usize) -> Vec<(u32, Vec<String>)> {
    notes.senders().into_iter().skip(from).filter(|(_, lines)| !is_background(lines)).collect()
}

/// Waits (bounded) until `pid` has sent a datagram whose first line is `first`.
#[track_caller]
fn wait_sent(notes: &Notes, pid: u32, first: &str) {
    let deadline = Instant::now() + T;
    while !notes.senders().iter().any(|(from, lines)| *from == pid && lines[0] == first) {
        assert!(Instant::now() < deadline, "pid {pid} sent no {first}: {:?}", notes.senders());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One request on a new connection to whichever process accepts it.
fn fresh_get(setup: &Setup) -> graced_testsupport::http::Response {
    Client::connect(setup.site.port).request("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

/// Waits (bounded) until `pid` has exited (a zombie counts as exited).
#[track_caller]
fn wait_gone(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while is_zombie_free(pid) {
        assert!(Instant::now() < deadline, "pid {pid} still runs after {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` exists and is not a zombie.
fn is_zombie_free(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

#[test]
fn upgrade_hands_over_main_pid_pid_file_and_control_socket_while_a_download_finishes() {
    let setup = Setup::new();
    let (notes, mut old) = start(&setup, &[]);
    let old_pid = old.pid() as u32;
    // A download the old process keeps in flight: the client reads nothing for now.
    let download = SlowGet::start(setup.site.port, "/big");
    download.wait_received(64 * 1024, T);
    download.set_pace(STALL);
    let before = notes.senders().len();

    setup.install(Path::new(GRACED)); // a new file at the same path: a new exec
    let asked = Instant::now();
    let (code_, out) = upgrade(&setup);
    let took = asked.elapsed();
    assert_eq!(code_, 0, "{out}");
    let new = new_pid(&out);
    let _adopted = Adopted(new);
    assert_ne!(new, old_pid);
    assert!(took < Duration::from_secs(3), "-k upgrade --wait took {took:?}");
    assert!(out.contains(&format!("pid {old_pid}: upgraded: pid {new} serves")), "{out}");

    // The new process serves, holds the pid file's lock and answers the control socket.
    hello(&fresh_get(&setup));
    assert_eq!(setup.pid_in_file(), new);
    let (code_, status) = ctl(&setup, &["-k", "status"]);
    assert_eq!(code_, 0, "{status}");
    assert!(status.contains(&format!("pid {new}: pid={new} ")), "-k status not answered by {new}: {status}");

    // Systemd heard, in order: the old process hand the main PID over, then the new one say READY.
    wait_sent(&notes, new, "READY=1");
    let events = events_since(&notes, before);
    assert!(events.len() >= 2, "{events:?}");
    assert_eq!(events[0].0, old_pid, "MAINPID= must come from the old (main) process: {events:?}");
    assert_datagram(
        &events[0].1,
        &[&format!("MAINPID={new}"), &format!("STATUS=upgrade: pid {new} serves; pid {old_pid} drains")],
    );
    assert_eq!(events[1].0, new, "{events:?}");
    assert_datagram(&events[1].1, &["READY=1", "STATUS=generation 1; {*}"]);

    // The old one drains: the download completes with the right bytes, then it exits 0
    // without a word to systemd (no STOPPING=1: that would stop the unit).
    let outcome = download.finish();
    assert_eq!(outcome.cut, None, "the download was cut");
    assert!(outcome.body == setup.big, "the download's bytes differ");
    assert_eq!(code(old.wait_exit(T)), 0);
    let from_old: Vec<_> =
        notes.senders().into_iter().skip(before).filter(|(pid, _)| *pid == old_pid).map(|(_, l)| l).collect();
    assert!(
        from_old.iter().all(|l| l[0].starts_with("STATUS=upgrade") || l[0].starts_with("MAINPID=")),
        "the old process spoke to systemd after the hand-over: {from_old:?}"
    );
    // The pid file still names the new process, which still serves.
    assert_eq!(setup.pid_in_file(), new);
    hello(&fresh_get(&setup));
    let (code_, out) = ctl(&setup, &["-k", "stop", "--wait"]);
    assert_eq!(code_, 0, "{out}");
    assert!(!setup.site.pid_path().exists());
}

/// Asks for an upgrade to what is installed now and asserts it failed with `reason`,
/// and that the old process said so (READY=1 + STATUS=) and still serves and answers.
#[track_caller]
fn assert_failed_and_old_serves(setup: &Setup, notes: &Notes, old: &Server, reason: &str) {
    let before = notes.senders().len();
    let (code_, out) = upgrade(setup);
    assert_eq!(code_, 1, "{out}");
    assert!(out.contains(reason), "{out:?} does not say {reason:?}");
    assert!(out.contains(&format!("pid {} keeps serving", old.pid())), "{out}");
    notes.wait_for("READY=1", T);
    let events = events_since(notes, before);
    let failed =
        events.iter().find(|(_, l)| l[0] == "READY=1").unwrap_or_else(|| panic!("no READY=1: {events:?}"));
    assert_eq!(failed.0, old.pid() as u32);
    assert!(failed.1[1].contains("upgrade failed: ") && failed.1[1].contains(reason), "{failed:?}");
    assert!(!events.iter().any(|(_, l)| l[0].starts_with("MAINPID=")), "{events:?}");
    hello(&old.get("/"));
    assert_eq!(setup.pid_in_file(), old.pid() as u32);
    let (code_, status) = ctl(setup, &["-k", "status"]);
    assert!(code_ == 0 && status.contains(&format!("pid={} ", old.pid())), "{status}");
}

#[test]
fn a_new_binary_that_exits_hangs_or_rejects_the_configuration_leaves_the_old_one_serving() {
    let setup = Setup::new();
    let (notes, mut old) = start(&setup, &[]);
    let mut keep_alive = old.connect();
    hello(&keep_alive.get("/"));

    setup.install_script("exit 1");
    assert_failed_and_old_serves(&setup, &notes, &old, "exited with status 1 before it was ready");

    // Hangs before ready: killed after upgrade_timeout (1.5 s).
    let marker = setup.bin_dir.path().join("hung.pid");
    setup.install_script(&format!("echo $$ > {}\nexec sleep 60", marker.display()));
    let asked = Instant::now();
    assert_failed_and_old_serves(&setup, &notes, &old, "was not ready within 1s 500ms; it was killed");
    assert!(asked.elapsed() < Duration::from_secs(5), "{:?}", asked.elapsed());
    let hung: u32 = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    assert!(!is_zombie_free(hung), "the hung new binary (pid {hung}) still runs");

    // The real binary with a broken configuration: it says why before it exits.
    setup.install(Path::new(GRACED));
    setup.site.edit_config("upgrade_timeout = \"1500ms\"", "upgrade_timeout = 5");
    assert_failed_and_old_serves(&setup, &notes, &old, "its configuration is invalid: ");
    let (_, out) = upgrade(&setup);
    assert!(out.contains(&format!("{}:5:", setup.site.config_path().display())), "no FILE:LINE: {out}");
    setup.site.edit_config("upgrade_timeout = 5", "upgrade_timeout = \"1500ms\"");

    // Through all that, a keep-alive connection of the old process was never disturbed,
    // and the old process upgrades fine afterwards.
    hello(&keep_alive.get("/"));
    let (code_, out) = upgrade(&setup);
    assert_eq!(code_, 0, "{out}");
    let _adopted = Adopted(new_pid(&out));
    assert_eq!(code(old.wait_exit(T)), 0);
}

#[test]
fn two_upgrades_in_a_row_the_second_by_usr2_while_the_first_old_process_drains() {
    let setup = Setup::new();
    let (notes, mut old) = start(&setup, &[]);
    let old_pid = old.pid() as u32;
    let download = SlowGet::start(setup.site.port, "/big");
    download.wait_received(64 * 1024, T);
    download.set_pace(STALL);
    let before = notes.senders().len();

    let (code_, out) = upgrade(&setup);
    assert_eq!(code_, 0, "{out}");
    let first = new_pid(&out);
    let _first = Adopted(first);
    // The old one still drains; the new one upgrades again, asked by its signal.
    assert!(is_zombie_free(old_pid));
    kill(first as i32, libc::SIGUSR2);
    let deadline = Instant::now() + T;
    let second = loop {
        let pid = setup.pid_in_file();
        if pid != first {
            break pid;
        }
        assert!(Instant::now() < deadline, "USR2 to {first} did not upgrade");
        std::thread::sleep(Duration::from_millis(10));
    };
    let _second = Adopted(second);
    wait_sent(&notes, second, "READY=1");
    hello(&fresh_get(&setup));

    let events = events_since(&notes, before);
    let main_moves: Vec<(u32, String)> = events
        .iter()
        .filter(|(_, l)| l[0].starts_with("MAINPID=") || l[0] == "READY=1")
        .map(|(pid, l)| (*pid, l[0].clone()))
        .collect();
    assert_eq!(
        main_moves,
        [
            (old_pid, format!("MAINPID={first}")),
            (first, "READY=1".to_owned()),
            (first, format!("MAINPID={second}")),
            (second, "READY=1".to_owned())
        ],
        "{events:?}"
    );
    let outcome = download.finish();
    assert_eq!(outcome.cut, None);
    assert!(outcome.body == setup.big);
    assert_eq!(code(old.wait_exit(T)), 0);
    wait_gone(first, T);
    let (code_, status) = ctl(&setup, &["-k", "status"]);
    assert!(code_ == 0 && status.contains(&format!("pid={second} ")), "{status}");
}

#[test]
fn a_stop_during_the_drain_aborts_only_the_old_process() {
    let setup = Setup::new();
    let (notes, mut old) = start(&setup, &[]);
    let download = SlowGet::start(setup.site.port, "/big");
    download.wait_received(64 * 1024, T);
    download.set_pace(STALL);
    let (code_, out) = upgrade(&setup);
    assert_eq!(code_, 0, "{out}");
    let new = new_pid(&out);
    let _adopted = Adopted(new);

    // systemd's stop (KillSignal=SIGWINCH to every process of the unit): the old one
    // keeps draining, it does not start over or exit.
    old.signal(libc::SIGWINCH);
    std::thread::sleep(Duration::from_millis(200));
    assert!(old.child.try_wait().unwrap().is_none(), "WINCH ended the draining old process");
    // TERM (a stop that must not wait): the old process aborts its download and exits.
    old.signal(libc::SIGTERM);
    assert_eq!(code(old.wait_exit(T)), 0);
    let outcome = download.finish();
    assert!(outcome.cut.is_some(), "the download finished although its process was stopped");
    // The new process never noticed.
    hello(&fresh_get(&setup));
    assert_eq!(setup.pid_in_file(), new);
    assert!(!notes.senders().iter().any(|(_, l)| l[0] == "STOPPING=1"), "a stop reached systemd");
}

#[test]
fn the_watchdog_follows_the_new_process() {
    let setup = Setup::new();
    let notes = Notes::new();
    // WATCHDOG_PID names the old process, as systemd sets it: started through a shell
    // that execs graced, so the pid is known before.
    let mut command = std::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" -f \"$1\"")
        .arg(setup.bin())
        .arg(setup.site.config_path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    graced_testsupport::process::scrub(&mut command)
        .env("NOTIFY_SOCKET", notes.env_value())
        .env("WATCHDOG_USEC", "300000");
    let mut old = Server::new(command.spawn().unwrap(), setup.site.port);
    let old_pid = old.pid() as u32;
    notes.wait_for("READY=1", Duration::from_secs(10));
    notes.wait_for("WATCHDOG=1", T);
    let (code_, out) = upgrade(&setup);
    assert_eq!(code_, 0, "{out}");
    let new = new_pid(&out);
    let _adopted = Adopted(new);
    assert_eq!(code(old.wait_exit(T)), 0);
    let handed = notes.senders().iter().position(|(_, l)| l[0].starts_with("MAINPID=")).unwrap();
    // Pings every 150 ms: a second of them, all from the new process.
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<_> = notes.senders().into_iter().skip(handed + 1).collect();
    let pings: Vec<u32> = after.iter().filter(|(_, l)| l == &["WATCHDOG=1"]).map(|(pid, _)| *pid).collect();
    assert!(pings.len() >= 4, "{after:?}");
    assert!(pings.iter().all(|&pid| pid == new), "pings after the hand-over not from {new}: {after:?}");
    assert!(!after.iter().any(|(pid, _)| *pid == old_pid), "{after:?}");
}

/// Under `fd_store = true` the new process stores the listeners again — as main, after
/// the old process handed the main PID over; before that it sends nothing at all
/// (`NotifyAccess=main` would refuse it, and the journal would say so).
#[test]
fn the_new_process_speaks_to_systemd_only_once_it_is_main_and_keeps_the_fd_store() {
    let setup = Setup::new();
    setup.site.write_config_with_server(
        "access_log = \"off\"\ngraceful_shutdown_timeout = \"20s\"\nupgrade_timeout = \"1500ms\"\nfd_store = true",
        "",
    );
    let (notes, mut old) = start(&setup, &[("FDSTORE", "4")]);
    let old_pid = old.pid() as u32;
    assert!(notes.senders().iter().any(|(pid, l)| *pid == old_pid && l[..] == ["FDSTORE=1", "FDNAME=http"]));
    let before = notes.senders().len();
    let (code_, out) = upgrade(&setup);
    assert_eq!(code_, 0, "{out}");
    let new = new_pid(&out);
    let _adopted = Adopted(new);
    wait_sent(&notes, new, "READY=1");
    let sent = notes.senders().into_iter().skip(before).collect::<Vec<_>>();
    let handed = sent.iter().position(|(_, l)| l[0] == format!("MAINPID={new}")).expect("MAINPID=");
    assert_eq!(sent[handed].0, old_pid);
    assert!(
        !sent[..handed].iter().any(|(pid, _)| *pid == new),
        "the new process spoke before it was main: {sent:?}"
    );
    let from_new: Vec<&Vec<String>> = sent.iter().filter(|(pid, _)| *pid == new).map(|(_, l)| l).collect();
    assert_eq!(from_new[0], &["FDSTORE=1", "FDNAME=http"], "{sent:?}");
    assert_eq!(from_new[1][0], "READY=1", "{sent:?}");
    assert_eq!(code(old.wait_exit(T)), 0);
}
