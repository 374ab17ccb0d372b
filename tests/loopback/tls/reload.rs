//! A running server with a TLS listener: a reload with a broken key is refused naming the
//! file (the running generation keeps serving), a good new certificate is taken, and a
//! certificate that expires within `[tls] expiry_warning` shows in STATUS= and the log.

use std::time::Duration;

use graced_testsupport::notify::Notes;
use graced_testsupport::process::StderrLog;
use graced_testsupport::site::Site;

use super::{Ca, write_tls_config};
use crate::GRACED;

const T: Duration = Duration::from_secs(10);

#[test]
fn a_broken_key_fails_the_reload_and_a_good_certificate_is_taken() {
    let site = Site::new(GRACED);
    let ca = Ca::new();
    let dir = site.dir.path().to_owned();
    let (cert, key) = ca.write(&dir, "site", &["a.test"], -1, 5);
    write_tls_config(&site, &cert.display().to_string(), &key.display().to_string());

    let notes = Notes::new();
    let socket = notes.env_value();
    let mut server = site.spawn(&[("NOTIFY_SOCKET", socket.as_str())]);
    let stderr = StderrLog::capture(&mut server);
    let ready = notes.wait_for("READY=1", T);
    let status = ready.iter().find(|l| l.starts_with("STATUS=")).expect("STATUS= with READY=1");
    assert!(status.contains("; WARNING: certificate a.test (") && status.contains("(in 4d)"), "{ready:?}");
    assert!(stderr.wait_for("certificate of a.test", T), "no expiry warning in:\n{}", stderr.text());
    let (code_, out) = site.run(&["-k", "status"]);
    assert_eq!(code_, 0, "{out}");
    assert!(out.contains("WARNING: certificate a.test"), "{out}");

    // A key that belongs to another certificate: refused, naming the key file.
    let (_, other_key) = ca.write(&dir, "other", &["a.test"], -1, 90);
    std::fs::copy(&other_key, &key).unwrap();
    let (code_, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code_, 1, "{out}");
    assert!(out.contains(&key.display().to_string()) && out.contains("does not belong"), "{out}");
    let failed = notes.wait_for("ERRNO=", T);
    assert!(
        failed.iter().any(|l| l.starts_with("STATUS=") && l.contains(&key.display().to_string())),
        "{failed:?}"
    );
    assert!(site.run(&["-k", "status"]).1.contains("generation=1"), "the first generation keeps serving");

    // A renewed certificate and its key: taken; the warning is gone.
    let (new_cert, new_key) = ca.write(&dir, "renewed", &["a.test"], -1, 90);
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let (code_, out) = site.run(&["-k", "graceful", "--wait"]);
    assert_eq!(code_, 0, "{out}");
    let (_, status) = site.run(&["-k", "status"]);
    assert!(status.contains("generation=2") && status.contains("; certificate a.test ("), "{status}");
    assert!(!status.contains("WARNING"), "{status}");
}
