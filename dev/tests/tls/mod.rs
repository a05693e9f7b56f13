//! What the HTTPS tests and benches share: TLS made in the test (a
//! certificate authority, a certificate it signed for 127.0.0.1, clients that
//! trust it), a JWKS server over that TLS, and signing keys from the fixtures.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tower_authx::{Algorithm, Key};

/// A CA and a certificate it signed for 127.0.0.1, both made now.
pub struct TestPki {
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    pub ca_pem: String,
    pub server: rustls::ServerConfig,
    /// The server's certificate and key, as PEM (for servers in other languages).
    pub cert_pem: String,
    pub key_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A client certificate the test CA signed, and its key.
pub struct ClientCert {
    pub der: rustls::pki_types::CertificateDer<'static>,
    pub key: rustls::pki_types::PrivatePkcs8KeyDer<'static>,
}

impl TestPki {
    /// A client certificate for `name`, signed by this CA.
    pub fn client(&self, name: &str) -> ClientCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientCert {
            der: cert.der().clone(),
            key: rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// A client that trusts this CA and presents `client`'s certificate.
    pub fn client_config(&self, client: &ClientCert) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![client.der.clone()], client.key.clone_key().into())
        .unwrap()
    }
}

pub fn pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Names of their own: with rcgen's one default name for both, OpenSSL
    // (node) takes the leaf for a self-signed certificate.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tower-authx test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
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
        issuer,
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

/// Serves `jwks` over HTTPS on loopback with `tls`; its URL. `None` accepts
/// connections and never answers.
pub async fn serve_jwks(jwks: Option<String>, tls: rustls::ServerConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, jwks) = (acceptor.clone(), jwks.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return; // the client did not trust us
                };
                let service = hyper::service::service_fn(move |_req| {
                    let body = jwks.clone();
                    async move {
                        let Some(body) = body else {
                            std::future::pending::<()>().await;
                            unreachable!("never answers");
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("https://{addr}/.well-known/jwks.json")
}

/// A signing key from tests/fixtures/keys/.
pub fn fixture_key(alg: Algorithm, file: &str) -> Key {
    let path = format!(
        "{}/../tests/fixtures/keys/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    Key::signing_pem(alg, &std::fs::read(path).unwrap()).unwrap()
}
