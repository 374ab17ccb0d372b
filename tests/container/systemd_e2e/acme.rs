//! Scenario n: certificates from ACME under real systemd — pebble (Debian's 2.4, pushed
//! from the host: a Go binary needing only libc) runs as a service with
//! pebble-challtestsrv as its DNS (every name → 127.0.0.1) and validates HTTP-01 for real
//! against graced on 127.0.0.1:80. The units are exactly what `graced unit` wrote:
//! graced.service (the ACME files as credentials with a `SetCredential=` fallback),
//! graced-acme.service (oneshot, DynamicUser, network, `ExecStopPost=+… --reload`) and
//! graced-acme.timer.

use std::net::TcpStream;

use graced_testsupport::http::Tls;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

use super::https::{assert_no_failure, tls_clients};
use super::load::Tally;
use super::*;
use crate::GRACED_ACME;

const HTTPS: &str = "127.0.0.1:443";
const DIRECTORY: &str = "https://127.0.0.1:14000/dir";
const ROOTS: &str = "https://127.0.0.1:15000/roots/0";
const LISTENER_CA: &str = "/etc/graced/pebble-listener-ca.pem";
const STATE: &str = "/var/lib/graced-acme/a.test";
/// Pebble's certificates live this long; graced-acme renews at two thirds (no ARI in 2.4).
const VALIDITY_SECS: u64 = 24;

/// The test configuration with an HTTPS listener and the one site's certificate from pebble.
fn acme_config() -> String {
    format!(
        "{}hosts = [\"a.test\"]\nacme = {{ directory = \"{DIRECTORY}\", contact = \"mailto:admin@a.test\", \
         directory_ca = \"{LISTENER_CA}\" }}\n\n[[listen]]\nname = \"https\"\naddress = \"{HTTPS}\"\ntls = true\n",
        config("/srv/www", "10s", HTTP)
    )
}

/// pebble and its DNS as services, with pebble's own HTTPS certificate from a CA written to
/// [`LISTENER_CA`]; returns once both listen.
fn start_pebble(c: &Container) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "pebble listener e2e CA");
    let ca_key = KeyPair::generate().unwrap();
    c.write_file(LISTENER_CA, ca.self_signed(&ca_key).unwrap().pem().as_bytes(), 0o644);
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    leaf.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let key = KeyPair::generate().unwrap();
    c.write_file("/etc/pebble/cert.pem", leaf.signed_by(&key, &issuer).unwrap().pem().as_bytes(), 0o644);
    c.write_file("/etc/pebble/key.pem", key.serialize_pem().as_bytes(), 0o600);
    c.push("/usr/bin/pebble".as_ref(), "/usr/local/bin/pebble", 0o755);
    c.push("/usr/bin/pebble-challtestsrv".as_ref(), "/usr/local/bin/pebble-challtestsrv", 0o755);
    let json = format!(
        "{{\"pebble\": {{\"listenAddress\": \"127.0.0.1:14000\", \"managementListenAddress\": \"127.0.0.1:15000\", \
         \"certificate\": \"/etc/pebble/cert.pem\", \"privateKey\": \"/etc/pebble/key.pem\", \"httpPort\": 80, \
         \"tlsPort\": 5001, \"ocspResponderURL\": \"\", \"externalAccountBindingRequired\": false, \
         \"certificateValidityPeriod\": {VALIDITY_SECS}}}}}"
    );
    c.write_file("/etc/pebble/pebble.json", json.as_bytes(), 0o644);
    c.write_file(
        "/etc/systemd/system/pebble-dns.service",
        b"[Service]\nExecStart=/usr/local/bin/pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 \"\" \
          -dns01 127.0.0.1:8053 -http01 \"\" -https01 \"\" -tlsalpn01 \"\" -management 127.0.0.1:8055\n",
        0o644,
    );
    c.write_file(
        "/etc/systemd/system/pebble.service",
        b"[Unit]\nAfter=pebble-dns.service\n\n[Service]\n\
          Environment=PEBBLE_VA_NOSLEEP=1 PEBBLE_AUTHZREUSE=0 PEBBLE_WFE_NONCEREJECT=0\n\
          ExecStart=/usr/local/bin/pebble -config /etc/pebble/pebble.json -dnsserver 127.0.0.1:8053\n",
        0o644,
    );
    c.must(&["systemctl", "daemon-reload"]);
    c.must(&["systemctl", "start", "pebble-dns.service", "pebble.service"]);
    for port in [8055u16, 14000, 15000] {
        let t = Instant::now();
        while !c.in_netns(move || TcpStream::connect(("127.0.0.1", port)).is_ok()) {
            assert!(t.elapsed() < Duration::from_secs(20), "pebble: nothing listens on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The serial graced serves for a.test on a new connection (GET / must be "one\n").
fn served(c: &Container, tls: &Tls) -> String {
    let tls = tls.clone();
    let (response, serial) = c.in_netns(move || tls.get("/")).unwrap_or_else(|failure| {
        let journal = c.journal(&["-u", "graced*", "-n", "40", "-o", "short-monotonic"]);
        panic!("GET https://a.test/: {failure}; the journal:\n{journal}")
    });
    assert_eq!((response.status, response.text().as_str()), (200, "one\n"));
    serial
}

/// Runs graced-acme.service to its end as the timer would; the run must succeed.
fn run_acme(c: &Container, what: &str) -> Duration {
    let t = Instant::now();
    let out = c.systemctl(&["start", "graced-acme.service"]);
    let took = t.elapsed();
    let journal =
        || c.journal(&["-u", "graced-acme.service", "-u", "graced.service", "-n", "40", "-o", "cat"]);
    assert!(out.success(), "{what}: systemctl start graced-acme: {out}\n{}", journal());
    assert_eq!(c.prop("graced-acme.service", "Result"), "success", "{what}:\n{}", journal());
    took
}

/// Lets graced-acme.timer itself start the service: a drop-in makes it elapse one second
/// after it is restarted (and drops the random delay, which applies to every trigger), as
/// its `OnBootSec=` would five minutes after boot; waits until that run has ended, which
/// must have succeeded.
fn fire_timer(c: &Container) -> Duration {
    c.write_file(
        "/etc/systemd/system/graced-acme.timer.d/e2e-now.conf",
        b"[Timer]\nOnActiveSec=1s\nRandomizedDelaySec=0\n",
        0o644,
    );
    c.must(&["systemctl", "daemon-reload"]);
    let t = Instant::now();
    c.must(&["systemctl", "restart", "graced-acme.timer"]);
    let journal =
        || c.journal(&["-u", "graced-acme.service", "-u", "graced-acme.timer", "-n", "40", "-o", "cat"]);
    loop {
        let p = c.show(
            "graced-acme.service",
            &["ExecMainExitTimestampMonotonic", "ActiveState", "Result", "TriggeredBy"],
        );
        if p["ExecMainExitTimestampMonotonic"] != "0" && p["ActiveState"] != "activating" {
            assert_eq!(p["Result"], "success", "the run the timer started: {p:?}\n{}", journal());
            assert!(p["TriggeredBy"].contains("graced-acme.timer"), "{p:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "the timer did not run graced-acme: {p:?}\n{}",
            journal()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = c.prop("graced-acme.timer", "LastTriggerUSecMonotonic");
    assert!(!last.is_empty() && last != "0", "the timer says it fired: {last:?}");
    c.must(&["rm", "/etc/systemd/system/graced-acme.timer.d/e2e-now.conf"]);
    c.must(&["systemctl", "daemon-reload"]);
    t.elapsed()
}

/// n. ACME: the site serves HTTP while waiting (STATUS= says so), the timer is armed, the
/// timer's run of graced-acme.service gets a certificate from pebble by HTTP-01 against graced and
/// reloads graced, which serves pebble's chain without a restart; a second run after two
/// thirds of the lifetime renews under TLS load with 0 failed requests.
pub(super) fn n_acme_certificates_from_pebble(target: Target) {
    if !std::path::Path::new("/usr/bin/pebble").is_file() {
        let reason = "pebble is not installed on the host (apt-get install pebble)";
        assert!(!harness::required(), "scenario n must run here (CI / GRACED_E2E_REQUIRE), but: {reason}");
        harness::visible(&format!("SKIP: n_acme_certificates_from_pebble: {reason}"));
        return;
    }
    let Some(c) = boot(target, "n", Duration::from_secs(240)) else { return };
    start_pebble(&c);
    c.push(GRACED_ACME.as_ref(), "/usr/sbin/graced-acme", 0o755);
    install(&c, &acme_config());

    // 1. The units as generated.
    let p = c.show(
        "graced-acme.service",
        &["Type", "DynamicUser", "StateDirectory", "RuntimeDirectory", "PrivateNetwork", "ExecStopPostEx"],
    );
    assert_eq!((p["Type"].as_str(), p["DynamicUser"].as_str()), ("oneshot", "yes"), "{p:?}");
    assert_eq!(
        (p["StateDirectory"].as_str(), p["RuntimeDirectory"].as_str()),
        ("graced-acme", "graced-acme")
    );
    assert_eq!(p["PrivateNetwork"], "no", "graced-acme reaches the CA: {p:?}");
    assert!(p["ExecStopPostEx"].contains("flags=privileged"), "the reload runs as root: {p:?}");
    assert_eq!(c.prop("graced.service", "PrivateNetwork"), "yes", "graced itself stays without network");
    let security = c.exec(&["systemd-analyze", "security", "--no-pager", "graced-acme.service"]);
    let exposure = security
        .stdout
        .lines()
        .find_map(|l| l.split("Overall exposure level for graced-acme.service: ").nth(1))
        .map(|r| r.split_whitespace().next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("no exposure level: {security}"));
    assert!(exposure.parse::<f64>().unwrap() <= 2.0, "graced-acme.service exposure {exposure}");

    // 2. Waiting: plain HTTP serves, HTTPS has no certificate yet, the status says why.
    c.must(&["systemctl", "start", "graced.socket", "graced-https.socket"]);
    assert_eq!(body(&c, HTTP, "/"), "one\n");
    let pid = main_pid(&c);
    let status = c.prop("graced.service", "StatusText");
    assert!(status.contains("waiting for certificate (graced-acme): a.test"), "{status}");
    c.must(&["systemctl", "enable", "--now", "graced-acme.timer"]);
    let timer = c.show("graced-acme.timer", &["ActiveState", "NextElapseUSecMonotonic", "Unit"]);
    assert_eq!(timer["ActiveState"], "active", "{timer:?}");
    assert_eq!(timer["Unit"], "graced-acme.service", "{timer:?}");
    assert!(!timer["NextElapseUSecMonotonic"].is_empty(), "the timer is armed (OnBootSec=): {timer:?}");

    // 3. The first certificate, from the timer's run: real HTTP-01 against graced, then the reload.
    let first_run = fire_timer(&c);
    let root = c.must(&["curl", "-sS", "--fail", "--cacert", LISTENER_CA, ROOTS]);
    let tls = Tls::new(addr(HTTPS), "a.test", root.as_bytes());
    let first = served(&c, &tls);
    let p = c.show("graced.service", &["MainPID", "StatusText", "ActiveState"]);
    assert_eq!(p["MainPID"], pid.to_string(), "served without a restart: {p:?}");
    assert!(!p["StatusText"].contains("waiting for certificate"), "{p:?}");
    let key = c.must(&["stat", "-L", "-c", "%a", &format!("{STATE}/key.pem")]);
    assert_eq!(key.trim(), "600", "the key is graced-acme's alone");
    let denied = c.exec(&[
        "setpriv",
        "--reuid=graced",
        "--regid=graced",
        "--clear-groups",
        "cat",
        &format!("{STATE}/key.pem"),
    ]);
    assert!(!denied.success(), "graced's user must not read the key itself: {denied}");
    let journal = c.journal_json(&["-u", "graced-acme.service"]);
    let installed = journal
        .iter()
        .find(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(message_id::ACME_INSTALLED))
        .unwrap_or_else(|| panic!("no ACME_INSTALLED entry: {journal:?}"));
    assert_eq!(installed.get("SITE").map(String::as_str), Some("a.test"));

    // 4. Renewal at two thirds of the lifetime, under TLS load: 0 failed requests.
    let chain = c.must(&["cat", &format!("{STATE}/fullchain.pem")]);
    let due = graced_acme::Lifetime::of_chain(chain.as_bytes()).unwrap().two_thirds();
    if let Ok(wait) = due.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(wait + Duration::from_millis(1100));
    }
    let stop = StopFlag::new();
    let clients: Vec<_> = tls_clients(&tls)
        .into_iter()
        .map(|client| {
            let stop = stop.clone();
            c.spawn_in_netns(move || client(stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let renew_run = run_acme(&c, "renewal");
    let renewed = served(&c, &tls);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let tallies: Vec<Tally> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert_ne!(renewed, first, "the renewed certificate serves");
    let lines = assert_no_failure("renewal", &tallies);
    assert_eq!(main_pid(&c), pid, "a reload, never a restart");
    let log = c.journal(&["-u", "graced-acme.service", "-o", "cat"]);
    assert!(log.contains("a.test: renewed certificate installed"), "{log}");

    let tag = "n";
    figures(
        &c,
        tag,
        &format!(
            "graced-acme.service exposure {exposure}; first certificate {first} in {} from the timer's run (HTTP-01 against graced), \
             renewed {renewed} in {}",
            ms(first_run),
            ms(renew_run)
        ),
    );
    for line in lines {
        figures(&c, tag, &format!("renewal run + reload under TLS load: {line}"));
    }
    assert_generated_unit_unchanged(&c);
}
