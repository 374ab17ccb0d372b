//! What the TLS and HTTP/2 test crates share: a self-signed certificate for `localhost` made at test time, and a rustls `ServerConfig` offering the given ALPN ids.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate for `localhost`, and its key.
pub(crate) struct Cert {
    pub(crate) der: CertificateDer<'static>,
    key: Vec<u8>,
}

pub(crate) fn cert() -> Cert {
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Cert { der: issued.cert.der().clone(), key: issued.signing_key.serialize_der() }
}

/// A minimal `ServerConfig` for `cert`, offering `alpn` (in preference order).
pub(crate) fn server_config(cert: &Cert, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone()));
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|id| id.to_vec()).collect();
    Arc::new(config)
}
