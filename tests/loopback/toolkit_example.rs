//! The lifecycle toolkit's example (`crates/lifecycle/examples/tcp_server.rs`) really is systemd-native: run under a fake NOTIFY_SOCKET over loopback.
//!
//! The example is built by [`graced_testsupport::process::build_example`] (the `cargo` that
//! runs this test, and its own report of where the executable is). The same example runs
//! under a real systemd in the container suite (`toolkit_e2e`).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use graced_testsupport::process::build_example;

const T: Duration = Duration::from_secs(10);

/// The environment of one run: a runtime directory, a greeting file, a notify socket.
struct Setup {
    bin: PathBuf,
    dir: tempfile::TempDir,
    notify: UnixDatagram,
}

impl Setup {
    fn greeting(&self) -> PathBuf {
        self.dir.path().join("greeting")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        for key in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "FDSTORE"] {
            command.env_remove(key);
        }
        command
            .args(args)
            .env("NOTIFY_SOCKET", self.dir.path().join("notify"))
            .env("RUNTIME_DIRECTORY", self.dir.path().join("run"))
            .env("GREETING_FILE", self.greeting());
        command
    }

    fn client(&self, args: &[&str]) -> (i32, String) {
        let Output { status, stdout, .. } = self.command(args).stderr(Stdio::inherit()).output().unwrap();
        (status.code().expect("the client exits"), String::from_utf8_lossy(&stdout).trim().to_owned())
    }

    /// The next notify datagram, as lines.
    fn datagram(&self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let n = self.notify.recv(&mut buf).expect("a notify datagram in time");
        String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned).collect()
    }
}

fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

fn greeting_on(port: u16) -> String {
    let mut text = String::new();
    TcpStream::connect(("127.0.0.1", port)).unwrap().read_to_string(&mut text).unwrap();
    text
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + T;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().expect("exits, not killed");
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A reload datagram pair: RELOADING=1 with a fresh MONOTONIC_USEC, then READY=1.
fn assert_reload(setup: &Setup, asked_at: u64) -> Vec<String> {
    let reloading = setup.datagram();
    assert_eq!(reloading[0], "RELOADING=1", "{reloading:?}");
    let usec: u64 = reloading[1].strip_prefix("MONOTONIC_USEC=").expect("MONOTONIC_USEC").parse().unwrap();
    assert!(
        usec >= asked_at && usec <= monotonic_usec(),
        "MONOTONIC_USEC={usec} not taken after the request"
    );
    let ready = setup.datagram();
    assert_eq!(ready[0], "READY=1", "{ready:?}");
    ready
}

#[test]
fn the_toolkit_example_is_systemd_native() {
    let dir = tempfile::tempdir().unwrap();
    let notify = UnixDatagram::bind(dir.path().join("notify")).unwrap();
    notify.set_read_timeout(Some(T)).unwrap();
    let setup = Setup { bin: build_example("graced-lifecycle", "tcp_server"), dir, notify };
    std::fs::write(setup.greeting(), "one\n").unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");

    // READY=1 once it serves; the pid file in $RUNTIME_DIRECTORY names it.
    let mut server = setup.command(&["http", &address]).stdin(Stdio::null()).spawn().unwrap();
    let ready = setup.datagram();
    assert_eq!(ready, ["READY=1", "STATUS=serving generation 1"]);
    let pid_file = setup.dir.path().join("run/tcp_server.pid");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), format!("{}\n", server.id()));
    assert_eq!(greeting_on(port), "one (generation 1)\n");

    // A second instance refuses while the first holds the lock, and names the holder.
    let second = setup.command(&["http", "127.0.0.1:0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second instance started: {stderr}");
    assert!(
        stderr.contains("already running") && stderr.contains(&format!("pid {}", server.id())),
        "{stderr}"
    );

    // `-k graceful --wait`: the client exits with the reload's outcome, from the server itself.
    std::fs::write(setup.greeting(), "two\n").unwrap();
    let asked = monotonic_usec();
    assert_eq!(
        setup.client(&["-k", "graceful", "--wait"]),
        (0, format!("pid {}: generation 2 serving", server.id()))
    );
    assert_eq!(assert_reload(&setup, asked), ["READY=1", "STATUS=serving"]);
    assert_eq!(greeting_on(port), "two (generation 2)\n");

    // A reload that fails keeps generation 2 serving, says so to systemd, and fails the client.
    std::fs::write(setup.greeting(), "\n").unwrap();
    let asked = monotonic_usec();
    let (code, text) = setup.client(&["-k", "graceful", "--wait"]);
    assert_eq!((code, text.as_str()), (1, format!("pid {}: empty greeting", server.id()).as_str()));
    let ready = assert_reload(&setup, asked);
    assert_eq!(ready[1..], ["STATUS=reload failed, still serving generation 2: empty greeting", "ERRNO=22"]);
    assert_eq!(greeting_on(port), "two (generation 2)\n");

    // A signal does the same as the client (USR1 = graceful), and clears ERRNO.
    std::fs::write(setup.greeting(), "three\n").unwrap();
    let asked = monotonic_usec();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&server),
        rustix::process::Signal::from_named_raw(libc::SIGUSR1).unwrap(),
    )
    .unwrap();
    assert_eq!(assert_reload(&setup, asked), ["READY=1", "STATUS=serving", "ERRNO=0"]);
    assert_eq!(greeting_on(port), "three (generation 3)\n");

    // `-k graceful-stop --wait`: STOPPING=1, the pid file is gone, the process has exited.
    let (code, text) = setup.client(&["-k", "graceful-stop", "--wait"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with(&format!("sent SIGWINCH to pid {}", server.id())), "{text}");
    assert_eq!(setup.datagram(), ["STOPPING=1", "STATUS=graceful-stop"]);
    assert_eq!(wait_exit(&mut server), 0);
    assert!(!Path::new(&pid_file).exists(), "the pid file outlived a graceful stop");
    assert_eq!(setup.client(&["-k", "graceful", "--wait"]).0, 3, "nothing runs any more");
}
