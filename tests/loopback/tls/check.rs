//! `graced -t` loads and checks every certificate and key: exit 78 naming the file at fault.

use std::process::Command;

use graced_testsupport::process::{code, scrub};
use graced_testsupport::site::Site;

use super::{Ca, write_tls_config};
use crate::GRACED;

#[test]
fn graced_t_names_the_bad_file_for_each_broken_case() {
    let site = Site::new(GRACED);
    let ca = Ca::new();
    let dir = site.dir.path();
    let (good, good_key) = ca.write(dir, "good", &["a.test"], -1, 90);
    let (_, other_key) = ca.write(dir, "other", &["a.test"], -1, 90);
    let (expired, expired_key) = ca.write(dir, "expired", &["a.test"], -30, -1);
    let (future, future_key) = ca.write(dir, "future", &["a.test"], 1, 30);
    let (elsewhere, elsewhere_key) = ca.write(dir, "elsewhere", &["b.test"], -1, 90);
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n").unwrap();
    let missing = dir.join("missing.key");
    let cases = [
        (&good, &other_key, &other_key, "does not belong to the certificate"),
        (&expired, &expired_key, &expired, "expired"),
        (&future, &future_key, &future, "not valid before"),
        (&elsewhere, &elsewhere_key, &elsewhere, "does not cover host \"a.test\""),
        (&garbage, &good_key, &garbage, "PEM"),
        (&good, &missing, &missing, "cannot read it"),
    ];
    for (certificate, key, named, says) in cases {
        write_tls_config(&site, &certificate.display().to_string(), &key.display().to_string());
        let (code_, out) = site.run(&["-t"]);
        assert_eq!(code_, 78, "{says}: {out}");
        assert!(
            out.contains(&named.display().to_string()),
            "{says}: does not name {}: {out}",
            named.display()
        );
        assert!(out.contains(says), "{says}: {out}");
        assert!(!out.contains("Syntax OK"), "{says}: {out}");
    }
    write_tls_config(&site, &good.display().to_string(), &good_key.display().to_string());
    let (code_, out) = site.run(&["-t"]);
    assert_eq!((code_, out.trim()), (0, "Syntax OK"));

    // Expiring within [tls] expiry_warning: valid, with a warning.
    let (soon, soon_key) = ca.write(dir, "soon", &["a.test"], -1, 5);
    write_tls_config(&site, &soon.display().to_string(), &soon_key.display().to_string());
    let (code_, out) = site.run(&["-t"]);
    assert_eq!(code_, 0, "{out}");
    assert!(out.contains("warning: certificate of a.test") && out.contains("(in 4d)"), "{out}");
}

#[test]
fn credentials_are_read_from_credentials_directory() {
    let site = Site::new(GRACED);
    let creds = site.path("creds");
    std::fs::create_dir(&creds).unwrap();
    Ca::new().write(&creds, "site", &["a.test"], -1, 90);
    write_tls_config(&site, "credential:site.pem", "credential:site.key");
    let run = |dir: Option<&std::path::Path>| {
        let mut command = Command::new(GRACED);
        command.args(["-t", "-f"]).arg(site.config_path());
        scrub(&mut command).env_remove("CREDENTIALS_DIRECTORY");
        if let Some(dir) = dir {
            command.env("CREDENTIALS_DIRECTORY", dir);
        }
        let out = command.output().unwrap();
        (
            code(out.status),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (code_, out) = run(Some(&creds));
    assert_eq!((code_, out.trim()), (0, "Syntax OK"));
    let (code_, out) = run(None);
    assert_eq!(code_, 78, "{out}");
    assert!(out.contains("LoadCredential=site.pem:"), "{out}");
    let (code_, out) = run(Some(&site.path("elsewhere")));
    assert_eq!(code_, 78, "{out}");
    assert!(
        out.contains(&format!("credential site.pem ({})", site.path("elsewhere/site.pem").display())),
        "{out}"
    );
}
