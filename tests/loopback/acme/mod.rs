//! Certificates from ACME against a real offline CA: Debian's `pebble` (2.4) with
//! `pebble-challtestsrv` as its DNS (every name → 127.0.0.1), validating HTTP-01 for real
//! against graced's plain listener (pebble's `httpPort` is graced's port; no
//! `PEBBLE_VA_ALWAYS_VALID`). `graced-acme` issues, renews when two thirds of pebble's
//! short lifetime have passed (pebble 2.4 offers no ARI), and keeps the serving
//! certificate when the CA is down; graced serves pebble's chain after the reload.
//!
//! Without pebble the test prints `SKIP:` and passes, except under `CI=true` or
//! `GRACED_E2E_REQUIRE=1` (`.ci/run` installs it).

mod issue;
mod refused;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use graced_testsupport::process::{Reaped, scrub};
use graced_testsupport::site::free_port;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// A running pebble and its DNS, killed when dropped.
pub(crate) struct Pebble {
    /// The ACME directory URL.
    pub(crate) directory: String,
    /// The CA that signed pebble's own HTTPS certificate (`directory_ca`).
    pub(crate) listener_ca: PathBuf,
    management_port: u16,
    pebble: Option<Reaped>,
    _dns: Reaped,
}

impl Pebble {
    /// Starts pebble in `dir` validating HTTP-01 on `http_port`, issuing certificates valid
    /// `validity`, refusing names under `blocked`; `None` (after a SKIP line) when pebble is
    /// not installed.
    pub(crate) fn start(dir: &Path, http_port: u16, validity: Duration, blocked: &[&str]) -> Option<Pebble> {
        if Command::new("pebble").arg("-h").stderr(Stdio::null()).status().is_err() {
            let reason = "pebble is not installed (apt-get install pebble)";
            assert!(!required(), "the ACME test must run here (CI / GRACED_E2E_REQUIRE), but: {reason}");
            eprintln!("SKIP: {reason}");
            return None;
        }
        let listener_ca = listener_certificate(dir);
        let (dns_port, dns_management, listen, management) =
            (free_port(), free_port(), free_port(), free_port());
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-http01", "", "-https01", ""])
            .args(["-tlsalpn01", "", "-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv runs");
        let dns = Reaped::new(dns);
        let config = dir.join("pebble.json");
        let json = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble.pem"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity.as_secs(),
            "domainBlocklist": blocked,
        }});
        std::fs::write(&config, json.to_string()).unwrap();
        let mut command = Command::new("pebble");
        command.arg("-config").arg(&config).args(["-dnsserver", &format!("127.0.0.1:{dns_port}")]);
        // Full speed, every order validated afresh, no injected bad nonces: the test is
        // about graced, not about pebble's fault injection.
        command
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        let pebble = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("pebble runs");
        let pebble = Reaped::new(pebble);
        for port in [listen, management, dns_management] {
            wait_port(port, Duration::from_secs(20));
        }
        Some(Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            listener_ca,
            management_port: management,
            pebble: Some(pebble),
            _dns: dns,
        })
    }

    /// Pebble's root (made at its start), from its management API, written to `path`.
    pub(crate) fn root(&self, path: &Path) -> PathBuf {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
            .arg(&self.listener_ca)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management_port))
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "pebble's root: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(path, &out.stdout).unwrap();
        path.to_owned()
    }

    /// Stops pebble (its DNS stays): the CA is down.
    pub(crate) fn stop(&mut self) {
        self.pebble = None;
    }
}

/// `pebble.pem`/`pebble.key` for 127.0.0.1, signed by a CA written to `listener-ca.pem`.
fn listener_certificate(dir: &Path) -> PathBuf {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: rcgen's default is one name for both, which OpenSSL takes for self-signed.
    ca.distinguished_name.push(DnType::CommonName, "pebble listener test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    leaf.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("pebble.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("pebble.key"), key.serialize_pem()).unwrap();
    let path = dir.join("listener-ca.pem");
    std::fs::write(&path, ca_cert.pem()).unwrap();
    path
}

/// Polls until 127.0.0.1:`port` accepts.
fn wait_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < timeout, "nothing listens on 127.0.0.1:{port} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `graced-acme ARGS -f CONFIG`: the exit code and its stderr (text logs: not the journal).
pub(crate) fn graced_acme(config: &Path, args: &[&str]) -> (i32, String) {
    let mut command = Command::new(crate::GRACED_ACME);
    command.arg("-f").arg(config).args(args).stdin(Stdio::null());
    let out = scrub(&mut command).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Whether a missing tool must fail the test instead of skipping it (CI runs them all).
fn required() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("GRACED_E2E_REQUIRE")
}
