//! Scenario j: HTTPS with a root-only key — credentials at start, descriptors handed over by the root `ExecReload=+…` at reload, under TLS load.
//!
//! The certificate and key live as certbot keeps them: `live/a.test/{fullchain,privkey}.pem`
//! are symlinks into `archive/a.test/`, both directories `root:root 0700`, the key
//! `root:root 0600`. Certificates are made here with rcgen (a test CA, explicit serials);
//! the clients run in-process in the container's network namespace, trust only that CA,
//! send SNI `a.test`, and report the serial of the certificate each connection got.

use graced_testsupport::http::{Tls, TlsKeepAlive, serial_hex};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SerialNumber,
};

use super::load::{LoadClient, Tally, storm_with};
use super::*;

const HTTPS: &str = "127.0.0.1:443";
const TLS_DIR: &str = "/etc/graced/tls";
const ARCHIVE: &str = "/etc/graced/tls/archive/a.test";
const CERT: &str = "/etc/graced/tls/live/a.test/fullchain.pem";
const KEY: &str = "/etc/graced/tls/live/a.test/privkey.pem";
/// `LoadCredential=` names: the path without its leading '/', other characters than
/// `[A-Za-z0-9._-]` as '_'.
const CERT_CREDENTIAL: &str = "etc_graced_tls_live_a.test_fullchain.pem";
const KEY_CREDENTIAL: &str = "etc_graced_tls_live_a.test_privkey.pem";
const FIRST: u64 = 0x0a01;
const RENEWED: u64 = 0x0a02;
const OTHER: u64 = 0x0b01;
/// No load client runs longer than this, whatever happens to the test.
const CLIENT_LIMIT: Duration = Duration::from_secs(90);

/// A test CA and the leaves it signs for `a.test`.
struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "graced e2e test CA");
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        Pki { ca_pem, issuer: Issuer::new(params, key) }
    }

    /// A certificate for `a.test` with `serial`, and its key: (chain PEM, key PEM).
    fn leaf(&self, serial: u64) -> (String, String) {
        let mut params = CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("a.test {serial:#x}"));
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The client: 127.0.0.1:443, SNI and Host `a.test`, trusting this CA only.
    fn client(&self) -> Tls {
        Tls::new(addr(HTTPS), "a.test", self.ca_pem.as_bytes())
    }
}

fn serial(n: u64) -> String {
    serial_hex(&n.to_be_bytes())
}

/// The test configuration plus an HTTPS listener on 127.0.0.1:443 and, for the one site,
/// hosts `a.test` with the certbot-style certificate and key.
fn tls_config() -> String {
    format!(
        "{}hosts = [\"a.test\"]\ncertificate = \"{CERT}\"\nkey = \"{KEY}\"\n\n\
         [[listen]]\nname = \"https\"\naddress = \"{HTTPS}\"\ntls = true\n",
        config("/srv/www", "10s", HTTP)
    )
}

/// What certbot does on issue and renewal: version `n` of the chain and key into
/// `archive/`, the key `root:root 0600`, and `live/`'s symlinks pointed at them.
fn deploy(c: &Container, n: u32, (chain, key): &(String, String)) {
    c.write_file(&format!("{ARCHIVE}/fullchain{n}.pem"), chain.as_bytes(), 0o644);
    c.write_file(&format!("{ARCHIVE}/privkey{n}.pem"), key.as_bytes(), 0o600);
    c.must_sh(&format!(
        "set -e; mkdir -p {TLS_DIR}/live/a.test; chmod 0700 {TLS_DIR}/live {TLS_DIR}/archive; \
         ln -sfn ../../archive/a.test/fullchain{n}.pem {CERT}; ln -sfn ../../archive/a.test/privkey{n}.pem {KEY}"
    ));
}

/// The key is `root:root 0600` in `root:root 0700` directories, and graced's user cannot
/// read it (`setpriv` as `graced`: Permission denied).
fn assert_key_root_only(c: &Container, when: &str) {
    let key = c.must(&["stat", "-L", "-c", "%U:%G %a", KEY]);
    assert_eq!(key.trim(), "root:root 600", "{when}: the key stays root:root 0600");
    let dirs = c.must(&["stat", "-c", "%U:%G %a", &format!("{TLS_DIR}/live"), &format!("{TLS_DIR}/archive")]);
    assert_eq!(dirs, "root:root 700\nroot:root 700\n", "{when}: live/ and archive/ stay root-only");
    let denied = c.exec(&["setpriv", "--reuid=graced", "--regid=graced", "--clear-groups", "cat", KEY]);
    assert!(
        !denied.success() && denied.stderr.contains("Permission denied"),
        "{when}: graced's user must not be able to read the key: {denied}"
    );
}

/// One HTTPS GET on a new connection from the container's network namespace: the
/// response must be 200 "one\n"; returns the certificate serial it was served with.
fn tls_serial(c: &Container, tls: &Tls) -> String {
    let tls = tls.clone();
    let (response, serial) = c.in_netns(move || tls.get("/")).unwrap_or_else(|failure| {
        let journal = c.journal(&["-u", "graced*", "-n", "40", "-o", "short-monotonic"]);
        panic!("GET https://a.test/ ({HTTPS}): {failure}; the journal of graced*:\n{journal}")
    });
    assert_eq!((response.status, response.text().as_str()), (200, "one\n"), "GET https://a.test/");
    serial
}

/// Two HTTPS load clients that never retry: one kept-alive connection, and one new
/// connection (full handshake) per request.
pub(super) fn tls_clients(tls: &Tls) -> Vec<LoadClient> {
    let keep_alive = {
        let tls = tls.clone();
        Box::new(move |stop: StopFlag| {
            let (mut tally, mut conn, t) = (Tally::default(), TlsKeepAlive::new(tls), Instant::now());
            while !stop.load(Ordering::SeqCst) && t.elapsed() < CLIENT_LIMIT {
                tally.record_tls(conn.get("/"));
            }
            tally.connections = conn.connections;
            tally.closed_by_header = conn.closed_by_header;
            tally.closed_between = conn.closed_between;
            tally
        }) as LoadClient
    };
    let new_connections = {
        let tls = tls.clone();
        Box::new(move |stop: StopFlag| {
            let (mut tally, t) = (Tally::default(), Instant::now());
            while !stop.load(Ordering::SeqCst) && t.elapsed() < CLIENT_LIMIT {
                tally.connections += 1;
                tally.record_tls(tls.get("/"));
            }
            tally
        }) as LoadClient
    };
    vec![keep_alive, new_connections]
}

const MODES: [&str; 2] = ["TLS keep-alive", "TLS new connection per request"];

/// Asserts no request failed; returns one line per client.
pub(super) fn assert_no_failure(what: &str, tallies: &[Tally]) -> Vec<String> {
    let mut lines = Vec::new();
    for (mode, tally) in MODES.iter().zip(tallies) {
        assert!(tally.ok > 0, "{what}, {mode}: no request succeeded: {tally:?}");
        assert_eq!(
            tally.failed(),
            0,
            "{what}, {mode}: failed {:?}, e.g. {:?}",
            tally.failures,
            tally.examples
        );
        lines.push(format!(
            "{mode}: {} ok, {} failed, {} connections (reconnects: {} `Connection: close`, {} closed between), \
             responses by serial {:?}",
            tally.ok,
            tally.failed(),
            tally.connections,
            tally.closed_by_header,
            tally.closed_between,
            tally.serials
        ));
    }
    lines
}

/// The overall exposure level `systemd-analyze security graced.service` reports.
fn exposure(c: &Container) -> f64 {
    let security = c.exec(&["systemd-analyze", "security", "--no-pager", "graced.service"]);
    security
        .stdout
        .lines()
        .find_map(|l| l.split("Overall exposure level for graced.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level: {security}"))
}

/// j. HTTPS from a key only root may read. The generated units pass the certificate and
/// key as credentials (`LoadCredential=`), run `ExecReload=+graced -k graceful --wait`
/// (as root: it opens the renewed files and hands the descriptors over) and use
/// `Type=notify` on every systemd version; the hardened unit's exposure stays ≤ 1.0.
/// Socket activation serves the first certificate (from the credential copy: graced's
/// user cannot read the key). A renewal + `systemctl reload` under TLS load: 0 failed
/// requests, new connections get the renewed certificate, the key stays root-only. A key
/// of another certificate fails the reload, names the key, and the renewed certificate
/// keeps serving. 20 restarts under TLS load lose no request.
pub(super) fn j_https_with_a_root_only_key(target: Target) {
    let Some(c) = boot(target, "j", Duration::from_secs(240)) else { return };
    let pki = Pki::new();
    let (first, renewed, other) = (pki.leaf(FIRST), pki.leaf(RENEWED), pki.leaf(OTHER));
    deploy(&c, 1, &first);
    install(&c, &tls_config());

    // 1. The units: credentials, the privileged ExecReload=, Type=notify, hardening.
    let unit = c.must(&["cat", "/etc/systemd/system/graced.service"]);
    for (credential, path) in [(CERT_CREDENTIAL, CERT), (KEY_CREDENTIAL, KEY)] {
        let line = format!("\nLoadCredential={credential}:{path}\n");
        assert!(unit.contains(&line), "graced.service must have {line:?}:\n{unit}");
    }
    let reload_line = format!("\nExecReload=+/usr/sbin/graced -k graceful --wait -f {CONFIG}\n");
    assert!(unit.contains(&reload_line), "graced.service must have {reload_line:?}:\n{unit}");
    let p = c.show("graced.service", &["Type", "ExecReloadEx"]);
    assert_eq!(p["Type"], "notify", "TLS files: Type=notify on every version: {p:?}");
    assert!(p["ExecReloadEx"].contains("flags=privileged"), "`+`: ExecReload= runs as root: {p:?}");
    assert!(
        unit.contains("\nSockets=graced.socket graced-https.socket\n"),
        "both listeners' sockets:\n{unit}"
    );
    let exposure = exposure(&c);
    assert!(exposure <= 1.0, "the generated TLS unit stays hardened: exposure {exposure}");
    assert_key_root_only(&c, "installed");

    // 2. Socket activation; the key reaches the unprivileged server as a credential.
    c.must(&["systemctl", "start", "graced.socket", "graced-https.socket"]);
    let socket = c.show("graced-https.socket", &["ActiveState", "Listen", "FileDescriptorName"]);
    assert_eq!(socket["ActiveState"], "active", "{socket:?}");
    assert!(socket["Listen"].contains(HTTPS) && socket["FileDescriptorName"] == "https", "{socket:?}");
    assert_eq!(c.prop("graced.service", "ActiveState"), "inactive", "nothing has activated it yet");
    let tls = pki.client();
    let t = Instant::now();
    let served = tls_serial(&c, &tls);
    let first_latency = t.elapsed();
    assert_eq!(served, serial(FIRST), "the first certificate, read from its credential copy");
    assert_eq!(body(&c, HTTP, "/"), "one\n", "plain HTTP on the same service");
    let pid = main_pid(&c);
    assert_eq!(c.prop("graced.service", "ActiveState"), "active");
    let loaded = c.must(&["ls", "/run/credentials/graced.service"]);
    assert_eq!(
        loaded,
        format!("{CERT_CREDENTIAL}\n{KEY_CREDENTIAL}\n"),
        "systemd loaded both files at start"
    );

    // 3. Renewal + `systemctl reload` while TLS clients run.
    let stop = StopFlag::new();
    let clients: Vec<_> = tls_clients(&tls)
        .into_iter()
        .map(|client| {
            let stop = stop.clone();
            c.spawn_in_netns(move || client(stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    deploy(&c, 2, &renewed);
    let t = Instant::now();
    let reload = c.systemctl(&["reload", "graced"]);
    let reload_time = t.elapsed();
    let after_reload = tls_serial(&c, &tls);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let tallies: Vec<Tally> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(reload.success(), "systemctl reload with renewed files: {reload}");
    assert_eq!(
        after_reload,
        serial(RENEWED),
        "a new connection after the reload gets the renewed certificate"
    );
    let reload_lines = assert_no_failure("reload", &tallies);
    assert!(
        tallies[1].serials.contains_key(&serial(RENEWED)),
        "new connections during the run got the renewed certificate: {:?}",
        tallies[1].serials
    );
    let p = c.show("graced.service", &["ActiveState", "SubState", "StatusText", "StatusErrno", "MainPID"]);
    assert_eq!((p["ActiveState"].as_str(), p["SubState"].as_str()), ("active", "running"), "{p:?}");
    assert!(p["StatusText"].starts_with("generation 2; "), "{p:?}");
    assert_eq!(p["MainPID"], pid.to_string(), "a reload keeps the process");
    // The renewed key is readable only by root, and not the credential copy from start
    // (that one belongs to the first certificate): it came through the handed-over descriptor.
    assert_key_root_only(&c, "after the reload");

    // 4. A key of another certificate: the reload fails, names the key, nothing changes.
    c.write_file(&format!("{ARCHIVE}/privkey3.pem"), other.1.as_bytes(), 0o600);
    c.must(&["ln", "-sfn", "../../archive/a.test/privkey3.pem", KEY]);
    let t = Instant::now();
    let broken = c.systemctl(&["reload", "graced"]);
    let broken_time = t.elapsed();
    assert!(!broken.success(), "a key of another certificate must fail `systemctl reload`: {broken}");
    let handed_key = format!("{KEY} (opened by the reload's caller)");
    let journal = c.journal(&["-u", "graced", "-o", "cat"]);
    let error_line = journal
        .lines()
        .find(|l| l.contains(&handed_key) && l.contains("does not belong"))
        .unwrap_or_else(|| panic!("the journal must name {handed_key} and the mismatch:\n{journal}"))
        .to_owned();
    let p = c.show("graced.service", &["ActiveState", "SubState", "StatusText", "StatusErrno", "MainPID"]);
    assert_eq!((p["ActiveState"].as_str(), p["SubState"].as_str()), ("active", "running"), "{p:?}");
    assert!(p["StatusText"].contains("reload failed, still serving generation 2"), "{p:?}");
    assert_eq!(p["MainPID"], pid.to_string());
    assert_eq!(tls_serial(&c, &tls), serial(RENEWED), "the renewed certificate keeps serving");
    let status = c.systemctl(&["status", "graced", "--lines=20"]).stdout;
    assert!(status.contains(&handed_key), "`systemctl status graced` shows the key at fault:\n{status}");
    // Fixed again: the good key back in place, the reload succeeds and clears the error.
    c.must(&["ln", "-sfn", "../../archive/a.test/privkey2.pem", KEY]);
    c.must(&["systemctl", "reload", "graced"]);
    let p = c.show("graced.service", &["StatusText", "StatusErrno"]);
    assert!(p["StatusText"].starts_with("generation 3; ") && p["StatusErrno"] == "0", "{p:?}");
    assert_key_root_only(&c, "after the failed reload");

    // 5. 20 restarts under TLS load: each new process loads the credentials afresh.
    let (tallies, times, total) = storm_with(
        &c,
        "graced.service",
        20,
        &|c: &Container, i| {
            let out = c.systemctl(&["restart", "graced.service"]);
            assert!(out.success(), "restart {i}: {out}");
        },
        tls_clients(&tls),
    );
    let restart_lines = assert_no_failure("restarts", &tallies);
    for unit in ["graced.socket", "graced-https.socket"] {
        let socket = c.show(unit, &["ActiveState", "SubState"]);
        assert_eq!(
            (socket["ActiveState"].as_str(), socket["SubState"].as_str()),
            ("active", "running"),
            "{unit}"
        );
    }
    let p = c.show("graced.service", &["ActiveState", "SubState", "Result"]);
    assert_eq!((p["ActiveState"].as_str(), p["Result"].as_str()), ("active", "success"), "{p:?}");
    let journal = c.journal(&["-u", "graced.service", "-u", "graced.socket", "-u", "graced-https.socket"]);
    assert!(!journal.contains("Start request repeated too quickly"), "start limit hit:\n{journal}");
    assert_eq!(
        tls_serial(&c, &tls),
        serial(RENEWED),
        "after restarts: the credential copy of the renewed files"
    );
    assert_key_root_only(&c, "after the restarts");

    let tag = "j";
    figures(
        &c,
        tag,
        &format!(
            "unit: Type=notify, ExecReload=+ (flags=privileged), LoadCredential= for chain and key, exposure {exposure}; \
             first HTTPS request (activation) {}, serial {}",
            ms(first_latency),
            serial(FIRST)
        ),
    );
    for line in reload_lines {
        figures(&c, tag, &format!("renewal + `systemctl reload` ({}): {line}", ms(reload_time)));
    }
    figures(
        &c,
        tag,
        &format!(
            "key of another certificate: reload exit {} in {}, still serving serial {}; journal and \
             `systemctl status`: {:?}",
            broken.status,
            ms(broken_time),
            serial(RENEWED),
            error_line.trim()
        ),
    );
    let max = times.iter().max().copied().unwrap_or_default();
    let avg = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    for line in restart_lines {
        figures(&c, tag, &format!("20 restarts in {} (avg {}, max {}): {line}", ms(total), ms(avg), ms(max)));
    }
    assert_generated_unit_unchanged(&c);
}
