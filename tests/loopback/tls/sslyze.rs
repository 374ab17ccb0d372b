//! SSLyze — a TLS scanner from PyPI, written by nobody on the team — checks the real graced
//! over loopback against Mozilla's "intermediate" configuration (`--mozilla_config
//! intermediate`): protocols, cipher suites, curves, the certificate and its chain (the test
//! CA handed over with `--certinfo_ca_file`), and the known attacks (Heartbleed, ROBOT, CCS
//! injection, renegotiation, compression, downgrade). The other accepted checker
//! beside testssl.sh, and the one that judges by the profile graced follows, so testssl.sh's
//! one accepted verdict (client cipher order, which Mozilla's profile prescribes) is not an
//! exception here.
//!
//! Without SSLyze the test prints `SKIP:` and passes, except under `CI=true` or
//! `GRACED_E2E_REQUIRE=1`.

use std::process::{Command, Stdio};
use std::time::Instant;

use rcgen::KeyPair;

use super::testssl::{required, serve_a_test, visible};

#[test]
fn sslyze_finds_graced_compliant_with_mozillas_intermediate_configuration() {
    let installed = Command::new("python3")
        .args(["-c", "import sslyze"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let reason = "SSLyze not installed (python3 -m pip install sslyze)";
        assert!(!required(), "the SSLyze check must run here (CI / GRACED_E2E_REQUIRE), but: {reason}");
        visible(&format!("SKIP: {reason}"));
        return;
    }
    let (_site, _server, port, ca) = serve_a_test(&KeyPair::generate().unwrap());
    let started = Instant::now();
    // `NAME:PORT{IP}`: SNI and the name checked are a.test, the connection goes to 127.0.0.1.
    let out = Command::new("python3")
        .args(["-m", "sslyze", "--mozilla_config=intermediate", "--certinfo_ca_file"])
        .arg(&ca)
        .arg(format!("a.test:{port}{{127.0.0.1}}"))
        .stdin(Stdio::null())
        .output()
        .expect("python3 -m sslyze runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let verdict: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("COMPLIANCE AGAINST TLS CONFIGURATION"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("---"))
        .collect();
    visible(&format!(
        "SSLyze ({:.1} s, exit {:?}):\n  {}",
        started.elapsed().as_secs_f64(),
        out.status.code(),
        verdict.join("\n  ")
    ));
    let context = || format!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    // The scan spoke to graced: TLS 1.2 and 1.3 suites accepted, the chain trusted.
    for section in ["* TLS 1.2 Cipher Suites:", "* TLS 1.3 Cipher Suites:"] {
        let accepted = text
            .split(section)
            .nth(1)
            .and_then(|rest| rest.lines().find(|l| l.contains("The server accepted the following")));
        assert!(accepted.is_some(), "SSLyze saw no accepted suites under {section}:\n{}", context());
    }
    assert!(text.contains("Supplied CA file CA Store (N/A):   OK - Certificate is trusted"), "{}", context());
    assert!(
        verdict.iter().any(|l| l.ends_with(&format!("a.test:{port}: OK - Compliant."))),
        "not compliant with Mozilla's intermediate configuration: {}",
        context()
    );
    assert!(out.status.success(), "sslyze exit {:?}: {}", out.status.code(), context());
}
