//! The lifecycle toolkit's example server (`crates/lifecycle/examples/tcp_server.rs`) under a real systemd: socket activation by name, `systemctl reload` with `--wait`, graceful stop.
//!
//! The units are written by hand, as a user of the toolkit would write them: a socket unit
//! whose `FileDescriptorName=` names the listener the example asks for, a `Type=notify`
//! service whose `ExecReload=` is the example's own `-k graceful --wait` (the reload's
//! outcome is its exit status), and `KillSignal=SIGWINCH` for a graceful stop. Both
//! systemds: the machine's (252) and 257 from the trixie tree.
//!
//!     cargo test --test container toolkit_e2e:: -- --nocapture

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use graced_testsupport::process::build_example;

use crate::harness::{Container, Target};

const BIN: &str = "/usr/local/bin/tcp_server";
const GREETING: &str = "/etc/tcp_server/greeting";
const ADDRESS: &str = "127.0.0.1:8080";

const SOCKET_UNIT: &str = "[Unit]
Description=the graced-lifecycle example's listener

[Socket]
ListenStream=127.0.0.1:8080
FileDescriptorName=web

[Install]
WantedBy=sockets.target
";

const SERVICE_UNIT: &str = "[Unit]
Description=the graced-lifecycle example
Requires=tcp_server.socket
After=tcp_server.socket

[Service]
Type=notify
Sockets=tcp_server.socket
RuntimeDirectory=tcp_server
Environment=GREETING_FILE=/etc/tcp_server/greeting
ExecStart=/usr/local/bin/tcp_server web
ExecReload=/usr/local/bin/tcp_server -k graceful --wait
KillSignal=SIGWINCH
";

/// The example, built once for the whole test process.
fn example() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_example("graced-lifecycle", "tcp_server"))
}

/// What one connection to the example reads (it writes its greeting line and closes).
fn greeting(c: &Container) -> String {
    c.in_netns(|| {
        let mut stream = TcpStream::connect(ADDRESS).expect("the socket unit listens");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("the greeting");
        text
    })
}

fn the_toolkit_example_lives_under_systemd(target: Target) {
    let tag = match target {
        Target::Host => "toolkit",
        Target::Trixie => "tx-toolkit",
    };
    let Some(c) = Container::boot_or_skip_on(target, tag, Duration::from_secs(120)) else { return };
    c.push(example(), BIN, 0o755);
    c.write_file(GREETING, b"hello\n", 0o644);
    c.write_file("/etc/systemd/system/tcp_server.socket", SOCKET_UNIT.as_bytes(), 0o644);
    c.write_file("/etc/systemd/system/tcp_server.service", SERVICE_UNIT.as_bytes(), 0o644);
    c.must(&["systemctl", "daemon-reload"]);
    c.must(&["systemctl", "start", "tcp_server.socket"]);
    assert_eq!(c.prop("tcp_server.service", "ActiveState"), "inactive", "nothing activated it yet");

    // Socket activation by name: the first connection starts the service, which adopts the
    // socket named "web" (it would bind 127.0.0.1:8080 itself only when run alone).
    assert_eq!(greeting(&c), "hello (generation 1)\n");
    let p = c.show("tcp_server.service", &["ActiveState", "SubState", "StatusText", "MainPID"]);
    assert_eq!((p["ActiveState"].as_str(), p["SubState"].as_str()), ("active", "running"), "{p:?}");
    assert_eq!(p["StatusText"], "serving generation 1", "{p:?}");
    let pid = p["MainPID"].clone();
    let pid_file = c.must(&["cat", "/run/tcp_server/tcp_server.pid"]);
    assert_eq!(pid_file.trim(), pid, "the pid file in the RuntimeDirectory names MainPID");

    // `systemctl reload` returns once the new greeting serves (ExecReload= waits for it).
    c.write_file(GREETING, b"bonjour\n", 0o644);
    c.must(&["systemctl", "reload", "tcp_server.service"]);
    assert_eq!(greeting(&c), "bonjour (generation 2)\n");
    let p = c.show("tcp_server.service", &["ActiveState", "StatusText", "MainPID"]);
    assert_eq!((p["ActiveState"].as_str(), p["StatusText"].as_str()), ("active", "serving"), "{p:?}");
    assert_eq!(p["MainPID"], pid, "a reload keeps the process");

    // A reload the server rejects fails `systemctl reload`; generation 2 keeps serving.
    c.write_file(GREETING, b"\n", 0o644);
    let failed = c.exec(&["systemctl", "reload", "tcp_server.service"]);
    assert!(!failed.success(), "a rejected reload must fail systemctl reload: {failed}");
    assert_eq!(greeting(&c), "bonjour (generation 2)\n");
    let p = c.show("tcp_server.service", &["ActiveState", "StatusText", "StatusErrno"]);
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["StatusErrno"], "22", "{p:?}");
    assert!(p["StatusText"].contains("empty greeting"), "{p:?}");

    // Fixed again: the next reload succeeds and clears the error.
    c.write_file(GREETING, b"salut\n", 0o644);
    c.must(&["systemctl", "reload", "tcp_server.service"]);
    assert_eq!(greeting(&c), "salut (generation 3)\n");
    assert_eq!(c.prop("tcp_server.service", "StatusErrno"), "0");

    // `systemctl stop` sends SIGWINCH: a graceful stop, a clean exit, the socket still listens.
    c.must(&["systemctl", "stop", "tcp_server.service"]);
    let p = c.show("tcp_server.service", &["ActiveState", "Result", "ExecMainStatus", "ExecMainCode"]);
    assert_eq!(p["ActiveState"], "inactive", "{p:?}");
    assert_eq!(p["Result"], "success", "{p:?}");
    assert_eq!((p["ExecMainCode"].as_str(), p["ExecMainStatus"].as_str()), ("1", "0"), "exited 0: {p:?}");
    assert_eq!(c.prop("tcp_server.socket", "ActiveState"), "active", "the listener outlives the service");
    // The next connection starts it again, on generation 1 of the new process.
    assert_eq!(greeting(&c), "salut (generation 1)\n");
    assert_ne!(c.prop("tcp_server.service", "MainPID"), pid);
}

mod host {
    #[test]
    fn the_toolkit_example_lives_under_systemd() {
        super::the_toolkit_example_lives_under_systemd(super::Target::Host)
    }
}

mod trixie {
    #[test]
    fn the_toolkit_example_lives_under_systemd() {
        super::the_toolkit_example_lives_under_systemd(super::Target::Trixie)
    }
}
