//! One site's life with ACME: HTTP only while waiting, the first certificate issued with
//! real HTTP-01 against graced and served after the reload, not renewed before two thirds
//! of its lifetime, renewed after, and kept when the CA is down (error, next retry, back-off).

use std::process::Command;
use std::time::Duration;

use graced_testsupport::site::{Site, free_port};

use super::{Pebble, graced_acme};

/// Pebble's certificates live this long: two thirds (the renewal point) is 10 s.
const VALIDITY: Duration = Duration::from_secs(15);
const INSTALLED: &str = "message_id=\"6c3b9f2a1e7d4c0f8a52d9e4b7a1c30b\"";
const FAILED: &str = "message_id=\"6c3b9f2a1e7d4c0f8a52d9e4b7a1c30c\"";
const RELOAD_FAILED: &str = "message_id=\"6c3b9f2a1e7d4c0f8a52d9e4b7a1c30d\"";

#[test]
fn issues_serves_renews_and_keeps_the_certificate_when_the_ca_is_down() {
    let site = Site::new(crate::GRACED);
    let dir = site.dir.path().to_owned();
    let Some(mut pebble) = Pebble::start(&dir, site.port, VALIDITY, &[]) else { return };
    let tls_port = free_port();
    site.write_config(&format!(
        "hosts = [\"a.test\"]\n\
         acme = {{ directory = \"{directory}\", contact = \"mailto:admin@a.test\", directory_ca = \"{ca}\" }}\n\n\
         [acme]\nstate_directory = \"{dir}/state\"\nchallenge_directory = \"{dir}/challenges\"\n\n\
         [[listen]]\nname = \"https\"\naddress = \"127.0.0.1:{tls_port}\"\ntls = true\n",
        directory = pebble.directory,
        ca = pebble.listener_ca.display(),
        dir = dir.display(),
    ));
    let config = site.config_path();
    let server = site.start(&[]);

    // Waiting: plain HTTP serves, the status says so, nothing on disk yet.
    assert_eq!(server.get("/").status, 200);
    let (_, status) = site.run(&["-k", "status"]);
    assert!(status.contains("waiting for certificate (graced-acme): a.test"), "{status}");

    // First run: pebble validates http://a.test:PORT/.well-known/acme-challenge/… on graced.
    let (code, log) = graced_acme(&config, &[]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("a.test: first certificate installed") && log.contains(INSTALLED), "{log}");
    let key = std::fs::metadata(dir.join("state/a.test/key.pem")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
    assert!(std::fs::read_dir(dir.join("challenges")).unwrap().next().is_none(), "answers are removed");
    // A reload that fails is a failure, and stays owed.
    let (code, log) = graced_acme(&config, &["--reload", "--reload-command", "false"]);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains(RELOAD_FAILED) && log.contains("the reload stays pending"), "{log}");
    assert!(dir.join("state/reload-pending").exists());
    let reload = format!("{} -k graceful --wait -f {}", crate::GRACED, config.display());
    assert_eq!(graced_acme(&config, &["--reload", "--reload-command", &reload]).0, 0);
    assert!(!dir.join("state/reload-pending").exists());
    let root = pebble.root(&dir.join("pebble-root.pem"));
    let first = presented(tls_port, &root);
    let (_, status) = site.run(&["-k", "status"]);
    assert!(!status.contains("waiting for certificate") && status.contains("certificate a.test"), "{status}");

    // Not due yet (pebble 2.4 has no renewal information: two thirds of the lifetime).
    let (code, log) = graced_acme(&config, &[]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("a.test: not due before") && log.contains("two thirds of its lifetime"), "{log}");

    // Due: the wall clock passes two thirds of the lifetime (the leaf's own dates say when).
    let chain = std::fs::read(dir.join("state/a.test/fullchain.pem")).unwrap();
    let due = graced_acme::Lifetime::of_chain(&chain).unwrap().two_thirds();
    if let Ok(wait) = due.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(wait + Duration::from_millis(1100));
    }
    let (code, log) = graced_acme(&config, &[]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("a.test: renewed certificate installed"), "{log}");
    assert_eq!(graced_acme(&config, &["--reload", "--reload-command", &reload]).0, 0);
    let renewed = presented(tls_port, &root);
    assert_ne!(first, renewed, "the renewed certificate serves");

    // The CA is down: the serving files stay, the journal line says when the next try is.
    pebble.stop();
    let before = std::fs::read(dir.join("state/a.test/fullchain.pem")).unwrap();
    let (code, log) = graced_acme(&config, &["--force"]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(FAILED) && log.contains("the current certificate keeps serving; next try at"),
        "{log}"
    );
    assert_eq!(std::fs::read(dir.join("state/a.test/fullchain.pem")).unwrap(), before);
    assert!(!dir.join("state/reload-pending").exists(), "nothing to reload");
    let (code, log) = graced_acme(&config, &[]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("a.test: backing off until"), "{log}");
    assert_eq!(presented(tls_port, &root), renewed);
}

/// The serial of the certificate graced presents for a.test, verified against pebble's root
/// (`openssl s_client -verify_return_error`).
fn presented(tls_port: u16, root: &std::path::Path) -> String {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{tls_port} -servername a.test -verify_hostname a.test \
         -verify_return_error -CAfile {} </dev/null 2>/dev/null | openssl x509 -noout -serial",
        root.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let serial = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(serial.starts_with("serial="), "graced's certificate verifies against pebble's root: {out:?}");
    serial
}
