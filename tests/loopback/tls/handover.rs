//! A root-only key reaches a server that runs unprivileged: systemd's copy (a credential) at start, the descriptor a root `graced -k graceful --wait` hands over at reload — and nothing else.
//!
//! The server runs as `nobody` with `$CREDENTIALS_DIRECTORY` holding copies named as the
//! generated units' `LoadCredential=` lines name them; the key itself lives in a
//! root-only directory. A renewal then shows the ways a reload can go: a signal hands
//! nothing over, so the server pairs the renewed certificate with the key it runs with and
//! refuses it, saying so; a root `-k graceful --wait` hands the files over and the new
//! certificate is served (the old one served until then); and once neither file is
//! readable, a signal keeps the pair that serves rather than the start-time copies.

use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use graced_config::Secret;
use graced_testsupport::process::{Server, StderrLog};
use graced_testsupport::site::{Site, free_port};

use super::Ca;
use crate::GRACED;

const NOBODY: u32 = 65534;
const T: Duration = Duration::from_secs(10);

fn mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The serial of the certificate the TLS port presents (`openssl s_client | openssl x509`).
fn presented_serial(port: u16) -> String {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername a.test </dev/null 2>/dev/null \
         | openssl x509 -noout -serial"
    );
    let out = Command::new("sh").args(["-c", &script]).output().expect("openssl runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn serial_of(pem: &Path) -> String {
    let out = Command::new("openssl").args(["x509", "-noout", "-serial", "-in"]).arg(pem).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_root_reload_hands_a_root_only_key_to_an_unprivileged_server() {
    if !rustix::process::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs the tests as root: this test needs it to start the server as nobody"
        );
        eprintln!("SKIP: not root; cannot run the server as nobody");
        return;
    }
    let site = Site::new(GRACED);
    let dir = site.dir.path().to_owned();
    mode(&dir, 0o755);
    std::fs::create_dir(dir.join("run")).unwrap();
    chown(dir.join("run"), Some(NOBODY), Some(NOBODY)).unwrap();
    // The certificate is public; the key is root:root 0600 in a root-only directory.
    let (public, private, creds) = (dir.join("public"), dir.join("private"), dir.join("creds"));
    for d in [&public, &private, &creds] {
        std::fs::create_dir(d).unwrap();
    }
    mode(&private, 0o700);
    let ca = Ca::new();
    let (cert, written_key) = ca.write(&public, "site", &["a.test"], -1, 90);
    let key = private.join("site.key");
    std::fs::rename(&written_key, &key).unwrap();
    mode(&key, 0o600);
    let first_serial = serial_of(&cert);
    // What systemd's LoadCredential= would have put there at start, readable by nobody.
    for file in [&cert, &key] {
        let copy = creds.join(Secret::file_credential_name(file).unwrap());
        std::fs::copy(file, &copy).unwrap();
        chown(&copy, Some(NOBODY), Some(NOBODY)).unwrap();
        mode(&copy, 0o400);
    }
    chown(&creds, Some(NOBODY), Some(NOBODY)).unwrap();
    mode(&creds, 0o500);
    let tls_port = free_port();
    site.write_config(&format!(
        "hosts = [\"a.test\"]\ncertificate = \"{}\"\nkey = \"{}\"\n\n\
         [[listen]]\nname = \"https\"\naddress = \"127.0.0.1:{tls_port}\"\ntls = true\n",
        cert.display(),
        key.display()
    ));

    let mut command = site.command();
    command
        .uid(NOBODY)
        .gid(NOBODY)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server::new(command.spawn().unwrap(), site.port);
    let stderr = StderrLog::capture(&mut server);
    let started = Instant::now();
    while presented_serial(tls_port).is_empty() {
        assert!(started.elapsed() < T, "no certificate served; graced said:\n{}", stderr.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(presented_serial(tls_port), first_serial, "the key came from its credential copy");

    // Renewal: both files replaced in place; the key stays root-only.
    let staging = tempfile::tempdir().unwrap();
    let (new_cert, new_key) = ca.write(staging.path(), "renewed", &["a.test"], -1, 90);
    // Rewritten in place (the key keeps its mode), as a deploy hook's `cp` would.
    std::fs::write(&cert, std::fs::read(&new_cert).unwrap()).unwrap();
    std::fs::write(&key, std::fs::read(&new_key).unwrap()).unwrap();
    let new_serial = serial_of(&cert);
    assert_ne!(new_serial, first_serial);

    // A signal hands nothing over: the renewed certificate with the key the running
    // configuration has.
    server.signal(libc::SIGUSR1);
    assert!(
        stderr.wait_for("the bytes the running configuration has", T),
        "the refused reload says where the key came from:\n{}",
        stderr.text()
    );
    assert!(stderr.text().contains("does not belong"), "{}", stderr.text());
    assert_eq!(presented_serial(tls_port), first_serial, "the old certificate keeps serving");

    // Root asks: the files are opened here and handed over with the request.
    let (code, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code, 0, "{out}\ngraced said:\n{}", stderr.text());
    assert_eq!(presented_serial(tls_port), new_serial, "new connections get the renewed certificate");
    let (_, status) = site.run(&["-k", "status"]);
    assert!(status.contains("generation=2") && status.contains("failed_reloads=1"), "{status}");
    // Both files root-only now: a signal still hands nothing over, and the reload keeps
    // the pair that serves — never the older copies systemd made at start — and says so.
    mode(&public, 0o700);
    server.signal(libc::SIGUSR1);
    assert!(stderr.wait_for("were not read again", T), "{}", stderr.text());
    let (_, status) = site.run(&["-k", "status"]);
    assert!(status.contains("generation=3"), "the reload succeeded: {status}");
    assert_eq!(presented_serial(tls_port), new_serial, "still the renewed certificate");
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "the key stays 0600");
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), std::fs::metadata(&private).unwrap().mode() & 0o777), (0, 0o700));
}
