//! Socket activation against the real binary: named sockets in any order, clear errors for mismatches, listeners kept across reloads.
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use graced_testsupport::http::{Client, Response, refused};
use graced_testsupport::notify::Notes;
use graced_testsupport::process::{Server, StderrLog, code, inode_of, kill, scrub, socket_inodes};
use graced_testsupport::site::{Site, free_port};

use crate::GRACED;

const T: Duration = Duration::from_secs(5);

/// A config with the given `(name, port)` listeners on 127.0.0.1 (the site is `www`).
fn write_listeners(site: &Site, listeners: &[(&str, u16)]) {
    let mut text = format!(
        "[server]\npid_file = \"{}\"\naccess_log = \"off\"\ngraceful_shutdown_timeout = \"5s\"\n\n",
        site.pid_path().display()
    );
    for (name, port) in listeners {
        text.push_str(&format!("[[listen]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\n\n"));
    }
    text.push_str("[[site]]\nroot = \"www\"\n");
    std::fs::write(site.config_path(), text).unwrap();
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Starts graced the way systemd does: `fds` become 3, 4, … (close-on-exec cleared),
/// LISTEN_FDS/LISTEN_FDNAMES are set, and LISTEN_PID is the pid graced will have (the
/// shell's, which then execs graced).
fn spawn_activated(site: &Site, fds: &[&TcpListener], names: &str, env: &[(&str, &str)]) -> Server {
    assert!(fds.len() <= 4);
    let mut raw = [-1i32; 4];
    for (slot, fd) in raw.iter_mut().zip(fds) {
        *slot = fd.as_raw_fd();
    }
    let count = fds.len();
    let mut command = Command::new("/bin/sh");
    scrub(&mut command)
        .arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(GRACED)
        .arg("-f")
        .arg(site.config_path())
        .env("LISTEN_FDS", count.to_string())
        .env("LISTEN_FDNAMES", names)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec, on fixed arrays.
    unsafe {
        command.pre_exec(move || {
            // Move every socket above the target range first, so dup2 never clobbers one
            // still to be placed; dup2 leaves the new descriptors without FD_CLOEXEC.
            let mut high = [-1i32; 4];
            for i in 0..count {
                high[i] = libc::fcntl(raw[i], libc::F_DUPFD_CLOEXEC, 64);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().enumerate().take(count) {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Server::new(command.spawn().unwrap(), site.port)
}

fn get(port: u16) -> Response {
    Client::connect(port).request("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

#[test]
fn two_named_sockets_passed_in_the_wrong_order_are_matched_by_name() {
    let site = Site::new(GRACED);
    let ((a, port_a), (b, port_b)) = (listener(), listener());
    write_listeners(&site, &[("web", port_a), ("admin", port_b)]);
    let notes = Notes::new();
    // fd 3 = B named admin, fd 4 = A named web: the reverse of the config's order.
    let mut server = spawn_activated(&site, &[&b, &a], "admin:web", &[("NOTIFY_SOCKET", &notes.env_value())]);
    let stderr = StderrLog::capture(&mut server);
    let ready = notes.next_event(Duration::from_secs(10));
    assert_eq!(ready[0], "READY=1", "{ready:?}\n{}", stderr.text());

    for port in [port_a, port_b] {
        let r = get(port);
        assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "port {port}");
    }
    // graced serves the very sockets the test made (it could not have bound them: the test holds them).
    let held = socket_inodes(server.pid());
    for (name, l) in [("A", &a), ("B", &b)] {
        assert!(held.contains(&inode_of(l)), "graced does not hold socket {name}: {held:?}");
    }

    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
    let log = stderr.complete();
    assert!(log.contains(&format!("web=127.0.0.1:{port_a}")), "web is not on A:\n{log}");
    assert!(log.contains(&format!("admin=127.0.0.1:{port_b}")), "admin is not on B:\n{log}");
    assert!(log.contains("socket_activated=true"), "{log}");
}

#[test]
fn a_configured_listener_systemd_did_not_pass_is_a_clear_error() {
    let site = Site::new(GRACED);
    let (a, port_a) = listener();
    // "admin"'s port is free: a server that fell back to binding it would start.
    write_listeners(&site, &[("web", port_a), ("admin", free_port())]);
    let mut server = spawn_activated(&site, &[&a], "web", &[]);
    let stderr = StderrLog::capture(&mut server);
    let status = server.wait_exit(T);
    let log = stderr.complete();
    eprintln!("missing listener: exit {status:?}: {log}");
    assert_ne!(code(status), 0, "started without a socket for \"admin\":\n{log}");
    assert!(
        log.contains("\"admin\"") && log.contains("FileDescriptorName"),
        "the error does not say what to do:\n{log}"
    );
}

#[test]
fn a_passed_socket_nothing_uses_is_a_clear_error() {
    let site = Site::new(GRACED);
    let ((a, port_a), (b, port_b), (c, _)) = (listener(), listener(), listener());
    write_listeners(&site, &[("web", port_a), ("admin", port_b)]);
    let mut server = spawn_activated(&site, &[&a, &b, &c], "web:admin:extra", &[]);
    let stderr = StderrLog::capture(&mut server);
    let status = server.wait_exit(T);
    let log = stderr.complete();
    eprintln!("unused socket: exit {status:?}: {log}");
    assert_ne!(code(status), 0, "started with an unused socket:\n{log}");
    assert!(log.contains("\"extra\""), "the error does not name the unused socket:\n{log}");
}

#[test]
fn systemd_socket_activate_hands_graced_its_socket() {
    let tool = "/usr/bin/systemd-socket-activate";
    if !std::path::Path::new(tool).exists() {
        eprintln!("SKIP: {tool} not installed");
        return;
    }
    let site = Site::new(GRACED);
    let mut command = Command::new(tool);
    scrub(&mut command)
        .arg("-l")
        .arg(format!("127.0.0.1:{}", site.port))
        .arg("--fdname=http")
        .arg(GRACED)
        .arg("-f")
        .arg(site.config_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server::new(command.spawn().unwrap(), site.port);
    let stderr = StderrLog::capture(&mut server);
    // The tool listens at once and execs graced (same pid) when the first connection comes.
    let deadline = Instant::now() + T;
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", site.port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "systemd-socket-activate never listened: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    stream.set_read_timeout(Some(T)).unwrap();
    let mut client = Client { reader: std::io::BufReader::new(stream) };
    let r = client.request("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"));
    assert!(stderr.wait_for("socket_activated=true", T), "{}", stderr.text());
    assert!(stderr.text().contains(&format!("http=127.0.0.1:{}", site.port)), "{}", stderr.text());
    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0, "{}", stderr.complete());
}

#[test]
fn reloads_under_activation_keep_the_socket_and_serve_a_connection_queued_meanwhile() {
    let site = Site::new(GRACED);
    let (a, port) = listener();
    write_listeners(&site, &[("web", port)]);
    let notes = Notes::new();
    let mut server = spawn_activated(&site, &[&a], "web", &[("NOTIFY_SOCKET", &notes.env_value())]);
    let stderr = StderrLog::capture(&mut server);
    assert_eq!(notes.next_event(Duration::from_secs(10))[0], "READY=1", "{}", stderr.text());
    let inode = inode_of(&a);
    // From now on only graced holds the socket: if it closed it, the port would refuse.
    drop(a);
    assert!(socket_inodes(server.pid()).contains(&inode));
    assert_eq!(get(port).status, 200);

    // Freeze graced, queue a connection with its request in the kernel, USR1, thaw.
    kill(server.pid(), libc::SIGSTOP);
    let mut queued = Client::connect(port);
    queued.send("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    kill(server.pid(), libc::SIGUSR1);
    kill(server.pid(), libc::SIGCONT);
    assert_eq!(notes.next_event(T)[0], "RELOADING=1");
    let ready = notes.next_event(T);
    assert!(ready[0] == "READY=1" && ready[1].ends_with("; reloaded"), "{ready:?}");
    let r = queued.read_response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "the connection queued during the reload");
    assert!(socket_inodes(server.pid()).contains(&inode), "the listening socket changed across USR1");
    assert_eq!(get(port).status, 200);

    // HUP aborts requests in flight but keeps the listening socket too.
    server.signal(libc::SIGHUP);
    assert_eq!(notes.next_event(T)[0], "RELOADING=1");
    let ready = notes.next_event(T);
    assert!(ready[0] == "READY=1" && ready[1].ends_with("; restarted"), "{ready:?}");
    assert!(socket_inodes(server.pid()).contains(&inode), "the listening socket changed across HUP");
    assert_eq!(get(port).status, 200);

    server.signal(libc::SIGTERM);
    assert_eq!(code(server.wait_exit(T)), 0);
    // Once graced is gone nobody holds the socket: the port refuses.
    assert!(refused(port));
}
