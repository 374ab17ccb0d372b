//! The crate's tests with certificates made at test time (rcgen): SNI choice, every
//! error naming its file, and resumption across rebuilt `ServerConfig`s sharing a
//! [`TlsState`] (a rustls client and server in memory).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use graced_config::{Checks, Config, Source};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, ServerConnection, SignatureScheme,
};

use crate::{Credentials, Handed, Serving, Sources, TlsError, TlsState};

const DAY: Duration = Duration::from_secs(86_400);

/// A test CA and the leaves it signs.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf: PEM chain (leaf, then the CA) and PEM key.
struct Leaf {
    chain: String,
    key: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca { issuer: Issuer::new(params, KeyPair::generate().unwrap()) }
    }

    fn leaf_valid(&self, names: &[&str], from: SystemTime, to: SystemTime) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.not_before = from.into();
        params.not_after = to.into();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { chain: cert.pem(), key: key.serialize_pem(), der: cert.der().clone() }
    }

    fn leaf(&self, names: &[&str]) -> Leaf {
        let now = SystemTime::now();
        self.leaf_valid(names, now - DAY, now + 90 * DAY)
    }
}

/// A temp dir with a config whose sites are `(hosts, certificate file stem)`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup { dir: tempfile::tempdir().unwrap() }
    }

    fn put(&self, stem: &str, leaf: &Leaf) {
        std::fs::write(self.path(&format!("{stem}.pem")), &leaf.chain).unwrap();
        std::fs::write(self.path(&format!("{stem}.key")), &leaf.key).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `sites`: (hosts, Some(stem) for a certificate).
    fn config(&self, sites: &[(&[&str], Option<&str>)]) -> Config {
        let mut text = "[[listen]]\nname = \"https\"\naddress = \"127.0.0.1:1\"\ntls = true\n".to_owned();
        for (hosts, stem) in sites {
            text.push_str("\n[[site]]\nroot = \"/\"\n");
            if !hosts.is_empty() {
                let quoted: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
                text.push_str(&format!("hosts = [{}]\n", quoted.join(", ")));
            }
            if let Some(stem) = stem {
                text.push_str(&format!("certificate = \"{stem}.pem\"\nkey = \"{stem}.key\"\n"));
            }
        }
        Config::from_toml_with(Source::File(self.path("graced.toml")), &text, Checks::WithoutFilesystem)
            .unwrap()
    }
}

fn load(state: &TlsState, config: &Config) -> Arc<rustls::ServerConfig> {
    state
        .load(config, &sources(&Credentials::default(), &Handed::default()), SystemTime::now())
        .unwrap()
        .unwrap()
        .server_config
}

fn error(setup: &Setup, sites: &[(&[&str], Option<&str>)]) -> TlsError {
    let config = setup.config(sites);
    let mut errors = TlsState::new()
        .unwrap()
        .load(&config, &sources(&Credentials::default(), &Handed::default()), SystemTime::now())
        .unwrap_err()
        .0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.pop().unwrap()
}

/// The sources of a load with nothing running yet.
fn sources<'a>(credentials: &'a Credentials, handed: &'a Handed) -> Sources<'a> {
    static NOTHING: std::sync::LazyLock<Serving> = std::sync::LazyLock::new(Serving::default);
    Sources { credentials, handed, serving: &NOTHING }
}

/// Accepts any certificate: these tests look at which one the server chose.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One round trip in memory: the client's pending records to the server, then back.
fn pump(c: &mut ClientConnection, s: &mut ServerConnection) {
    let mut buf = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        s.read_tls(&mut rd).unwrap();
        s.process_new_packets().unwrap();
    }
    let mut buf = Vec::new();
    while s.wants_write() {
        s.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
        c.process_new_packets().unwrap();
    }
}

fn pair(
    client: &Arc<ClientConfig>,
    server: &Arc<rustls::ServerConfig>,
    name: &str,
) -> (ClientConnection, ServerConnection) {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    (ClientConnection::new(client.clone(), name).unwrap(), ServerConnection::new(server.clone()).unwrap())
}

/// Runs one handshake in memory; `name` an IP address sends no SNI. Returns the server side.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<rustls::ServerConfig>, name: &str) -> ServerConnection {
    let (mut c, mut s) = pair(client, server, name);
    for _ in 0..20 {
        pump(&mut c, &mut s);
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]));
            return s;
        }
    }
    panic!("the handshake did not finish");
}

/// The leaf the server presented to a client asking for `name`.
fn served(
    client: &Arc<ClientConfig>,
    server: &Arc<rustls::ServerConfig>,
    name: &str,
) -> CertificateDer<'static> {
    let (mut c, mut s) = pair(client, server, name);
    for _ in 0..20 {
        pump(&mut c, &mut s);
        if let Some(chain) = c.peer_certificates() {
            return chain[0].clone().into_owned();
        }
    }
    panic!("no certificate served");
}

#[test]
fn sni_chooses_exact_then_wildcard_else_the_default_site() {
    let ca = Ca::new();
    let setup = Setup::new();
    let (d, a, w) = (ca.leaf(&["default.test"]), ca.leaf(&["a.test"]), ca.leaf(&["*.w.test"]));
    setup.put("d", &d);
    setup.put("a", &a);
    setup.put("w", &w);
    let state = TlsState::new().unwrap();
    let config = setup.config(&[(&["a.test"], Some("a")), (&[], Some("d")), (&["*.w.test"], Some("w"))]);
    let server = load(&state, &config);
    let client = client(&[&rustls::version::TLS13]);
    assert_eq!(served(&client, &server, "a.test"), a.der, "exact");
    assert_eq!(served(&client, &server, "A.Test"), a.der, "exact, any case");
    assert_eq!(served(&client, &server, "x.w.test"), w.der, "wildcard");
    assert_eq!(served(&client, &server, "127.0.0.1"), d.der, "no SNI: the default site");
    assert_eq!(served(&client, &server, "unknown.test"), d.der, "unknown SNI: the default site");
    assert_eq!(served(&client, &server, "a.b.w.test"), d.der, "a wildcard covers one label");

    // The default site has no certificate: the first site with one answers.
    let config = setup.config(&[(&[], None), (&["a.test"], Some("a")), (&["*.w.test"], Some("w"))]);
    let server = load(&state, &config);
    assert_eq!(served(&client, &server, "127.0.0.1"), a.der, "no SNI: the first certificate");
    assert_eq!(served(&client, &server, "unknown.test"), a.der, "unknown SNI: the first certificate");
    assert_eq!(served(&client, &server, "x.w.test"), w.der);
}

fn assert_names(error: &TlsError, file: &Path, words: &str) {
    let text = error.to_string();
    assert!(text.contains(&file.display().to_string()), "does not name {}: {text}", file.display());
    assert!(text.contains(words), "does not say {words:?}: {text}");
}

#[test]
fn each_broken_certificate_is_an_error_naming_its_file() {
    let ca = Ca::new();
    let setup = Setup::new();
    let now = SystemTime::now();
    setup.put("good", &ca.leaf(&["a.test"]));
    let other = ca.leaf(&["a.test"]);
    std::fs::write(setup.path("other.key"), &other.key).unwrap();
    std::fs::copy(setup.path("good.pem"), setup.path("mismatch.pem")).unwrap();
    std::fs::copy(setup.path("other.key"), setup.path("mismatch.key")).unwrap();
    let e = error(&setup, &[(&["a.test"], Some("mismatch"))]);
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    assert_names(&e, &setup.path("mismatch.key"), "does not belong to the certificate");

    setup.put("expired", &ca.leaf_valid(&["a.test"], now - 30 * DAY, now - DAY));
    let e = error(&setup, &[(&["a.test"], Some("expired"))]);
    assert!(matches!(e, TlsError::Expired { .. }), "{e:?}");
    assert_names(&e, &setup.path("expired.pem"), "expired");

    setup.put("future", &ca.leaf_valid(&["a.test"], now + DAY, now + 30 * DAY));
    let e = error(&setup, &[(&["a.test"], Some("future"))]);
    assert!(matches!(e, TlsError::NotYetValid { .. }), "{e:?}");
    assert_names(&e, &setup.path("future.pem"), "not valid before");

    let e = error(&setup, &[(&["a.test", "b.test"], Some("good"))]);
    assert!(matches!(e, TlsError::NotCovering { .. }), "{e:?}");
    assert_names(&e, &setup.path("good.pem"), "does not cover host \"b.test\" (it names: a.test)");

    std::fs::write(setup.path("garbage.pem"), "hello\n-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
    std::fs::copy(setup.path("good.key"), setup.path("garbage.key")).unwrap();
    let e = error(&setup, &[(&["a.test"], Some("garbage"))]);
    assert!(matches!(e, TlsError::CertificatePem { .. }), "{e:?}");
    assert_names(&e, &setup.path("garbage.pem"), "PEM");

    std::fs::write(setup.path("empty.pem"), "just text\n").unwrap();
    std::fs::copy(setup.path("good.key"), setup.path("empty.key")).unwrap();
    let e = error(&setup, &[(&["a.test"], Some("empty"))]);
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");

    std::fs::copy(setup.path("good.pem"), setup.path("nokey.pem")).unwrap();
    std::fs::write(setup.path("nokey.key"), &other.chain).unwrap();
    let e = error(&setup, &[(&["a.test"], Some("nokey"))]);
    assert!(matches!(e, TlsError::NoKey { .. }), "{e:?}");
    assert_names(&e, &setup.path("nokey.key"), "no private key");

    std::fs::copy(setup.path("good.key"), setup.path("missing.key")).unwrap();
    let e = error(&setup, &[(&["a.test"], Some("missing"))]);
    assert!(matches!(e, TlsError::Read { .. }), "{e:?}");
    assert_names(&e, &setup.path("missing.pem"), "cannot read it");

    // A default site without hosts has no coverage check; every broken site is reported.
    let config =
        setup.config(&[(&[], Some("good")), (&["x.test"], Some("expired")), (&["y.test"], Some("future"))]);
    let errors = TlsState::new()
        .unwrap()
        .load(&config, &sources(&Credentials::default(), &Handed::default()), now)
        .unwrap_err();
    assert_eq!(errors.0.len(), 2, "{errors}");
}

#[test]
fn sessions_resume_across_rebuilt_configs_sharing_a_state() {
    let ca = Ca::new();
    let setup = Setup::new();
    setup.put("a", &ca.leaf(&["a.test"]));
    let config = setup.config(&[(&["a.test"], Some("a"))]);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = client(&[version]);
        let state = TlsState::new().unwrap();
        let first = load(&state, &config);
        assert_eq!(handshake(&client, &first, "a.test").handshake_kind(), Some(HandshakeKind::Full));
        // A reload: a new ServerConfig from the same state (the certificate even renewed).
        setup.put("a", &ca.leaf(&["a.test"]));
        let second = load(&state, &config);
        let resumed = handshake(&client, &second, "a.test");
        assert_eq!(resumed.handshake_kind(), Some(HandshakeKind::Resumed), "{version:?}");
        // And again, many generations later.
        let third = load(&state, &config);
        assert_eq!(handshake(&client, &third, "a.test").handshake_kind(), Some(HandshakeKind::Resumed));
        // The control: a new state (nginx's reload without ssl_session_ticket_key) cannot resume.
        let fresh = load(&TlsState::new().unwrap(), &config);
        assert_eq!(
            handshake(&client, &fresh, "a.test").handshake_kind(),
            Some(HandshakeKind::Full),
            "{version:?}"
        );
    }
}

#[test]
fn credentials_are_read_from_the_directory_given() {
    let ca = Ca::new();
    let setup = Setup::new();
    let creds = setup.path("creds");
    std::fs::create_dir(&creds).unwrap();
    let leaf = ca.leaf(&["a.test"]);
    std::fs::write(creds.join("site.pem"), &leaf.chain).unwrap();
    std::fs::write(creds.join("site.key"), &leaf.key).unwrap();
    let text = "[[listen]]\nname = \"https\"\naddress = \"127.0.0.1:1\"\ntls = true\n\n[[site]]\nroot = \"/\"\n\
                hosts = [\"a.test\"]\ncertificate = \"credential:site.pem\"\nkey = \"credential:site.key\"\n";
    let config =
        Config::from_toml_with(Source::File(setup.path("g.toml")), text, Checks::WithoutFilesystem).unwrap();
    let state = TlsState::new().unwrap();
    let prepared = state
        .load(
            &config,
            &sources(&Credentials::new(Some(creds.clone())), &Handed::default()),
            SystemTime::now(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        prepared.certificates.0[0].name,
        format!("credential site.pem ({})", creds.join("site.pem").display())
    );
    let errors = state
        .load(&config, &sources(&Credentials::new(None), &Handed::default()), SystemTime::now())
        .unwrap_err();
    assert!(matches!(errors.0[0], TlsError::NoCredentialsDirectory { .. }), "{errors}");
    assert!(errors.to_string().contains("LoadCredential=site.pem:"), "{errors}");
    let errors = state
        .load(
            &config,
            &sources(&Credentials::new(Some(setup.path("nowhere"))), &Handed::default()),
            SystemTime::now(),
        )
        .unwrap_err();
    assert!(errors.to_string().contains("credential site.key ("), "{errors}");
}

#[test]
fn expiry_reports_the_nearest_and_those_within_the_window() {
    let ca = Ca::new();
    let setup = Setup::new();
    let now = SystemTime::now();
    setup.put("soon", &ca.leaf_valid(&["soon.test"], now - DAY, now + 5 * DAY));
    setup.put("later", &ca.leaf_valid(&["later.test"], now - DAY, now + 60 * DAY));
    let config = setup.config(&[(&["later.test"], Some("later")), (&["soon.test"], Some("soon"))]);
    let prepared = TlsState::new()
        .unwrap()
        .load(&config, &sources(&Credentials::default(), &Handed::default()), now)
        .unwrap()
        .unwrap();
    let nearest = prepared.certificates.nearest().unwrap();
    assert_eq!(nearest.site, "soon.test");
    assert!(
        nearest.describe(now).contains("(in 4d)") || nearest.describe(now).contains("(in 5d)"),
        "{}",
        nearest.describe(now)
    );
    let warned: Vec<_> = prepared.certificates.within(21 * DAY, now).iter().map(|c| c.site.clone()).collect();
    assert_eq!(warned, ["soon.test"]);
}

#[test]
fn no_tls_listener_needs_no_certificates() {
    let config = Config::from_toml(Source::Embedded, graced_config::EMBEDDED_DEFAULT).unwrap();
    assert!(
        TlsState::new()
            .unwrap()
            .load(&config, &sources(&Credentials::default(), &Handed::default()), SystemTime::now())
            .unwrap()
            .is_none()
    );
}

#[test]
fn handed_over_files_win_over_the_path_and_serve_every_site_naming_them() {
    let ca = Ca::new();
    let setup = Setup::new();
    let on_disk = ca.leaf(&["a.test", "b.test"]);
    let handed = ca.leaf(&["a.test", "b.test"]);
    setup.put("site", &on_disk);
    let config = setup.config(&[(&["a.test"], Some("site")), (&["b.test"], Some("site"))]);
    // The caller opened other files at those paths (as root may where graced may not).
    let other = Setup::new();
    other.put("site", &handed);
    let open = |name: &str| std::fs::File::open(other.path(name)).unwrap();
    let pem = setup.path("site.pem").display().to_string();
    let key = setup.path("site.key").display().to_string();
    let files = Handed::new([(pem.clone(), open("site.pem")), (key, open("site.key"))]).unwrap();
    assert_eq!(files.len(), 2);
    let prepared = TlsState::new()
        .unwrap()
        .load(&config, &sources(&Credentials::default(), &files), SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(prepared.certificates.0.len(), 2, "both sites read the one handed-over pair");
    for info in &prepared.certificates.0 {
        assert_eq!(info.name, format!("{pem} (opened by the reload's caller)"));
    }
    let client = client(&[&rustls::version::TLS13]);
    for host in ["a.test", "b.test"] {
        assert_eq!(served(&client, &prepared.server_config, host), handed.der, "{host}");
    }
}

#[test]
fn handed_over_files_must_be_regular_and_absolute() {
    let setup = Setup::new();
    std::fs::write(setup.path("k"), "x").unwrap();
    let dir = std::fs::File::open(setup.dir.path()).unwrap();
    let errors = Handed::new([("/etc/ssl/k".to_owned(), dir)]).unwrap_err();
    assert!(matches!(errors.0[0], TlsError::Handed { .. }), "{errors}");
    let file = std::fs::File::open(setup.path("k")).unwrap();
    let errors = Handed::new([("relative/k".to_owned(), file)]).unwrap_err();
    assert!(errors.to_string().contains("relative/k: a file handed over"), "{errors}");
}

#[test]
fn an_acme_site_without_its_files_waits_and_a_half_written_pair_is_an_error() {
    let setup = Setup::new();
    let text = format!(
        "[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:1\"\n\n[[listen]]\nname = \"https\"\n\
         address = \"127.0.0.1:2\"\ntls = true\n\n[acme]\nstate_directory = \"{}\"\n\n[[site]]\nroot = \"/\"\n\
         hosts = [\"a.test\"]\nacme = {{ directory = \"https://ca.test/dir\" }}\n",
        setup.path("state").display()
    );
    let config =
        Config::from_toml_with(Source::File(setup.path("g.toml")), &text, Checks::WithoutFilesystem).unwrap();
    let load = || {
        TlsState::new().unwrap().load(
            &config,
            &sources(&Credentials::default(), &Handed::default()),
            SystemTime::now(),
        )
    };
    assert_eq!(load().unwrap().unwrap().material.waiting, ["a.test"]);
    // The unit's SetCredential= fallback, as systemd's copy would hold it.
    std::fs::create_dir_all(setup.path("state/a.test")).unwrap();
    for file in ["fullchain.pem", "key.pem"] {
        std::fs::write(setup.path("state/a.test").join(file), graced_config::ACME_NOT_ISSUED).unwrap();
    }
    assert_eq!(load().unwrap().unwrap().material.waiting, ["a.test"]);
    std::fs::remove_file(setup.path("state/a.test/key.pem")).unwrap();
    std::fs::write(setup.path("state/a.test/fullchain.pem"), Ca::new().leaf(&["a.test"]).chain).unwrap();
    assert!(load().is_err(), "a certificate without its key is not 'waiting'");
}
