//! The README's run command: `graced` with no arguments serves the built-in demo site on 127.0.0.1:8080.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use graced_testsupport::process::{Reaped, scrub};

use super::{get, must};
use crate::GRACED;

#[test]
fn no_arguments_serves_the_builtin_demo_site_on_127_0_0_1_8080() {
    if Path::new("/etc/graced/graced.toml").exists() {
        println!("SKIP: /etc/graced/graced.toml exists, so `graced` would not use the embedded default");
        return;
    }
    if let Err(e) = TcpListener::bind("127.0.0.1:8080") {
        println!("SKIP: 127.0.0.1:8080 is not free ({e})");
        return;
    }
    let runtime = tempfile::tempdir().unwrap();
    let stderr_path = runtime.path().join("stderr.log");
    let mut command = Command::new(GRACED);
    scrub(&mut command)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).unwrap());
    // Stopped with SIGTERM if the test fails, so it removes its pid file.
    let mut server = Reaped::terminate_first(command.spawn().unwrap(), Duration::from_secs(5));
    let pid = server.pid();
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect("127.0.0.1:8080").is_err() {
        if let Ok(Some(status)) = server.try_wait() {
            panic!("graced exited with {status} before listening; stderr:\n{}", stderr());
        }
        assert!(Instant::now() < deadline, "graced did not listen on 127.0.0.1:8080; stderr:\n{}", stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.try_wait().unwrap().is_none(), "someone else answered on 8080");

    let page = get(8080, "/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(must(&page, "content-type"), "text/html; charset=utf-8");
    assert!(page.text().contains("graced is serving"), "demo page: {:?}", page.text());
    let css = get(8080, "/style.css", &[]);
    assert_eq!((css.status, must(&css, "content-type")), (200, "text/css; charset=utf-8"));
    assert_eq!(get(8080, "/nope", &[]).status, 404);

    // It says where it listens, and writes its pid file where the docs say.
    assert!(stderr().contains("127.0.0.1:8080"), "stderr does not say where it listens:\n{}", stderr());
    // SAFETY: geteuid(2) has no preconditions.
    let pid_file = if unsafe { libc::geteuid() } == 0 {
        Path::new("/run/graced/graced.pid").to_owned()
    } else {
        runtime.path().join("graced/graced.pid")
    };
    let written = std::fs::read_to_string(&pid_file).unwrap_or_default();
    assert_eq!(written.trim(), pid.to_string(), "pid file {}", pid_file.display());

    // SIGTERM stops it, and it removes its pid file.
    let mut child = server.into_inner();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("graced did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}; stderr:\n{}", stderr());
    assert!(!pid_file.exists(), "the pid file {} was left behind", pid_file.display());
}
