//! HTTPS configuration through the real binary: `graced -t` checks certificates and keys
//! (`check`), a running server refuses a reload with a broken key and takes a good new
//! certificate, and warns about one that expires soon (`reload`). Certificates are made
//! at test time (rcgen) in the test's temporary directory.

mod check;
mod handover;
mod reload;
mod sslyze;
mod testssl;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use graced_testsupport::site::{Site, free_port};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

const DAY: Duration = Duration::from_secs(86_400);

/// A test CA that signs leaves.
struct Ca(Issuer<'static, KeyPair>);

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca(Issuer::new(params, KeyPair::generate().unwrap()))
    }

    /// Writes `STEM.pem` (leaf + CA) and `STEM.key` into `dir` for `names`, valid in
    /// [now + from, now + to); returns the two paths.
    fn write(
        &self,
        dir: &std::path::Path,
        stem: &str,
        names: &[&str],
        from: i64,
        to: i64,
    ) -> (PathBuf, PathBuf) {
        let now = SystemTime::now();
        let at = |days: i64| {
            if days >= 0 { now + DAY * days as u32 } else { now - DAY * days.unsigned_abs() as u32 }
        };
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = at(from).into();
        params.not_after = at(to).into();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        let (pem, key_path) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")));
        std::fs::write(&pem, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (pem, key_path)
    }
}

/// The site's config with an HTTPS listener on a free port and the site (hosts
/// `a.test`) served with `certificate` and `key` (paths or `credential:NAME`).
fn write_tls_config(site: &Site, certificate: &str, key: &str) {
    site.write_config(&format!(
        "hosts = [\"a.test\"]\ncertificate = \"{certificate}\"\nkey = \"{key}\"\n\n\
         [[listen]]\nname = \"https\"\naddress = \"127.0.0.1:{}\"\ntls = true\n",
        free_port()
    ));
}
