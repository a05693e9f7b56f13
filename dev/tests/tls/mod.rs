//! TLS made in the test: a certificate authority, a certificate it signed for
//! 127.0.0.1, and clients that trust it.
#![allow(dead_code)]

use std::sync::Arc;

/// A CA and a certificate it signed for 127.0.0.1, both made now.
pub struct TestPki {
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    pub ca_pem: String,
    pub server: rustls::ServerConfig,
    /// The server's certificate and key, as PEM (for servers in other languages).
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    TestPki {
        ca_der: ca.der().clone(),
        ca_pem: ca.pem(),
        server,
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

pub fn client_trusting(ca: rustls::pki_types::CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}
