//! HTTP/2 through the real binary, seen by clients nobody here wrote: `curl` (ALPN `h2` over
//! TLS with the test CA, `--http2-prior-knowledge` on an h2c listener, HTTP/1.1 on that same
//! listener), `nghttp -v` (the SETTINGS the server sends), `graced -k status` (the h2 gauges),
//! and Python's `h2`/`hyperframe` for frame-level attacks (CONTINUATION flood, Rapid Reset:
//! `attack.py`). Certificates are made at test time (rcgen), signed by a test CA.

mod attack;
mod compression;
mod serving;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graced_testsupport::site::{Site, free_port};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// The big file's length and pattern seed.
const BIG: usize = 3 * 1024 * 1024 + 12_345;
const SEED: u64 = 0x4832;

/// `SETTINGS_MAX_CONCURRENT_STREAMS` in the test config (not the default 128, so it is seen
/// to come from `[http2]`).
const MAX_STREAMS: u32 = 77;

/// A site `a.test` with a certificate from a test CA (`ca.pem`), on the plain listener
/// ("http", HTTP/1.1 only), a TLS one ("https") and a plain one with `h2c = true` ("h2c").
struct H2Site {
    site: Site,
    ca: PathBuf,
    tls_port: u16,
    h2c_port: u16,
    big: Vec<u8>,
}

/// Writes a test CA (`ca.pem`) and a leaf for `a.test` signed by it (`a.pem`, `a.key`).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "graced test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["a.test".to_owned()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
    let paths = (dir.join("ca.pem"), dir.join("a.pem"), dir.join("a.key"));
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

impl H2Site {
    /// The site with `extra` appended to its config (more tables).
    fn new(extra: &str) -> H2Site {
        let site = Site::new(crate::GRACED);
        let (ca, cert, key) = certificates(site.dir.path());
        let big = site.write_big_file("www/big.bin", BIG, SEED);
        let (tls_port, h2c_port) = (free_port(), free_port());
        site.write_config(&format!(
            "hosts = [\"a.test\"]\ncertificate = \"{}\"\nkey = \"{}\"\n\n\
             [[listen]]\nname = \"https\"\naddress = \"127.0.0.1:{tls_port}\"\ntls = true\n\n\
             [[listen]]\nname = \"h2c\"\naddress = \"127.0.0.1:{h2c_port}\"\nh2c = true\n\n\
             [http2]\nmax_concurrent_streams = {MAX_STREAMS}\n{extra}",
            cert.display(),
            key.display(),
        ));
        H2Site { site, ca, tls_port, h2c_port, big }
    }

    /// `curl -sS ARGS` trusting the test CA, with a.test resolving to 127.0.0.1.
    fn curl(&self, args: &[&str]) -> Output {
        let mut command = Command::new("curl");
        command.args(["-sS", "--max-time", "20", "--cacert"]).arg(&self.ca);
        command.arg("--resolve").arg(format!("a.test:{}:127.0.0.1", self.tls_port));
        command.args(args).output().expect("curl runs (apt-get install curl)")
    }

    fn https(&self, path: &str) -> String {
        format!("https://a.test:{}{path}", self.tls_port)
    }

    fn h2c(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.h2c_port)
    }

    /// `graced -k status`: the line with the counters.
    fn status(&self) -> String {
        let (code, out) = self.site.run(&["-k", "status"]);
        assert_eq!(code, 0, "{out}");
        out
    }
}

/// The value of `key=` in a `graced -k status` line.
fn field(status: &str, key: &str) -> Option<u64> {
    status
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.trim_end_matches(';').parse().ok())
}
