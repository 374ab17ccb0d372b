//! HTTPS serving through the real binary, seen by `curl` and `openssl s_client`: SNI picks
//! each site's certificate, plaintext redirects to HTTPS (sparing ACME challenges), HSTS on
//! HTTPS only, plaintext on the TLS port gets a 400 page, and a reload with a new
//! certificate serves it on new connections while an open TLS connection keeps working.
//! Certificates are made at test time (rcgen), signed by a test CA.

mod expiry;
mod flood;
mod oversized;
mod parking;
mod serving;

use std::path::{Path, PathBuf};
use std::process::Command;

use graced_testsupport::site::{Site, free_port};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SerialNumber,
};

/// A test CA that signs leaves; its certificate is `ca.pem` in the site's directory.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
}

impl Ca {
    fn new(dir: &Path) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "graced test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join("ca.pem");
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca { issuer: Issuer::new(params, key), pem }
    }

    /// Writes `STEM.pem` and `STEM.key` for `name`, with common name `cn` and serial
    /// `serial`; returns the two paths.
    fn leaf(&self, dir: &Path, stem: &str, name: &str, cn: &str, serial: u64) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (pem, key_path) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")));
        std::fs::write(&pem, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (pem, key_path)
    }
}

/// A site `a.test` (redirects to HTTPS, HSTS) and a site `b.test` (neither), each with its
/// certificate (serials 0xA1 and 0xB1), on the plain listener and a TLS one.
struct Https {
    site: Site,
    ca: Ca,
    tls_port: u16,
    a: (PathBuf, PathBuf),
}

impl Https {
    fn new() -> Https {
        let site = Site::new(crate::GRACED);
        let dir = site.dir.path().to_owned();
        let ca = Ca::new(&dir);
        let a = ca.leaf(&dir, "a", "a.test", "a.test one", 0xA1);
        let b = ca.leaf(&dir, "b", "b.test", "b.test one", 0xB1);
        site.put("www/.well-known/acme-challenge/token", b"token-body");
        site.put("www-b/index.html", b"site b\n");
        let tls_port = free_port();
        site.write_config(&format!(
            "hosts = [\"a.test\"]\ncertificate = \"{}\"\nkey = \"{}\"\nhttps_redirect = true\nhsts = true\n\n\
             [[site]]\nroot = \"www-b\"\nhosts = [\"b.test\"]\ncertificate = \"{}\"\nkey = \"{}\"\n\n\
             [[listen]]\nname = \"https\"\naddress = \"127.0.0.1:{tls_port}\"\ntls = true\n",
            a.0.display(),
            a.1.display(),
            b.0.display(),
            b.1.display(),
        ));
        Https { site, ca, tls_port, a }
    }

    /// `curl -sS -i URL` resolving a.test and b.test to 127.0.0.1, trusting the test CA:
    /// the status line, headers and body.
    fn curl(&self, url: &str) -> String {
        let mut command = Command::new("curl");
        command.args(["-sS", "-i", "--max-time", "10", "--cacert"]).arg(&self.ca.pem);
        for host in ["a.test", "b.test"] {
            for port in [self.site.port, self.tls_port] {
                command.arg("--resolve").arg(format!("{host}:{port}:127.0.0.1"));
            }
        }
        let out = command.arg(url).output().expect("curl runs (apt-get install curl)");
        let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        assert!(
            out.status.success() || !text.is_empty(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// The serial and subject of the certificate the TLS port presents for `name`
    /// (`openssl s_client -servername NAME | openssl x509 -serial -subject`).
    fn presented(&self, name: &str) -> String {
        let script = format!(
            "openssl s_client -connect 127.0.0.1:{} -servername {name} -CAfile {} </dev/null 2>/dev/null \
             | openssl x509 -noout -serial -subject",
            self.tls_port,
            self.ca.pem.display()
        );
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The value of header `name` in curl's `-i` output.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().take_while(|l| !l.is_empty()).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
