//! `install` refuses what a load would refuse: a key that is not the certificate's, a
//! certificate for other names, or garbage — and then leaves the serving files as they are.

use std::time::SystemTime;

use graced_config::{Config, Source};
use rcgen::{CertificateParams, KeyPair};

use crate::run::install;
use crate::{AcmeError, Outcome};

fn config(dir: &std::path::Path) -> Config {
    let text = format!(
        "[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:1\"\n\n[[listen]]\nname = \"https\"\n\
         address = \"127.0.0.1:2\"\ntls = true\n\n[acme]\nstate_directory = \"{}\"\n\n\
         [[site]]\nhosts = [\"a.test\"]\nroot = \"/\"\nacme = {{ directory = \"https://ca.test/dir\" }}\n",
        dir.display()
    );
    Config::from_toml(Source::File(dir.join("graced.toml")), &text).unwrap()
}

fn pair(name: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn a_mismatched_or_foreign_result_is_never_installed() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (site, acme) = (&config.sites[0], config.sites[0].acme.as_ref().unwrap());
    let now = SystemTime::now();
    let (good_chain, good_key) = pair("a.test");
    let installed = install(&config, site, acme, good_chain.as_bytes(), good_key.as_bytes(), now, false);
    assert!(matches!(installed, Ok(Outcome::Installed { renewed: false, .. })), "{installed:?}");
    std::fs::remove_file(crate::reload_marker(&config)).unwrap();

    let (other_chain, other_key) = pair("a.test");
    let (foreign_chain, foreign_key) = pair("b.test");
    let cases = [
        ("a key that is not the certificate's", other_chain.as_bytes(), good_key.as_bytes()),
        ("a certificate for other names", foreign_chain.as_bytes(), foreign_key.as_bytes()),
        ("no certificate at all", b"garbage".as_slice(), other_key.as_bytes()),
    ];
    for (what, chain, key) in cases {
        let refused = install(&config, site, acme, chain, key, now, true);
        assert!(matches!(refused, Err(AcmeError::Check { .. })), "{what}: {refused:?}");
        assert_eq!(
            std::fs::read_to_string(acme.certificate_path(&config.acme)).unwrap(),
            good_chain,
            "{what}"
        );
        assert_eq!(std::fs::read_to_string(acme.key_path(&config.acme)).unwrap(), good_key, "{what}");
        assert!(!crate::reload_pending(&config), "{what}: no reload is asked for");
    }
}
