//! A resource server fetching its issuer's JWKS over real HTTPS on loopback,
//! with a certificate authority made in the test: trusted through
//! `RemoteJwks::tls_config`, or through `SSL_CERT_FILE` (in a child process,
//! since the environment is the process's), it verifies; with the platform's
//! roots only (the test CA unknown), the keys cannot be had and the answer is
//! 503, never 200.
#![cfg(feature = "remote-keys")]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{Algorithm, AuthX, AuthXConfig, Key, RemoteJwks, RequireAuthLayer};

/// A CA and a certificate it signed for 127.0.0.1, both made now.
struct TestPki {
    ca_der: rustls::pki_types::CertificateDer<'static>,
    ca_pem: String,
    server: rustls::ServerConfig,
}

fn pki() -> TestPki {
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
    }
}

/// Serves `jwks` over HTTPS on loopback; its URL.
async fn https_jwks(jwks: String, tls: rustls::ServerConfig) -> String {
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
                    let body = Bytes::from(jwks.clone());
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("https://{addr}/.well-known/jwks.json")
}

fn client_trusting(ca: rustls::pki_types::CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

async fn status(resource: AuthX, token: &str) -> StatusCode {
    let service =
        RequireAuthLayer::new(resource).layer(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    service.oneshot(request).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_over_https_from_a_trusted_issuer_only() {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/keys/ec256_private.pem"
    ))
    .unwrap();
    let issuer = AuthX::new(AuthXConfig::new(
        Key::signing_pem(Algorithm::ES256, &pem).unwrap(),
    ))
    .unwrap();
    let token = issuer.create_access_token("user1", true).unwrap();
    let pki = pki();
    let url = https_jwks(issuer.jwks().to_owned(), pki.server.clone()).await;

    let trusted = RemoteJwks::new(&url)
        .unwrap()
        .tls_config(client_trusting(pki.ca_der.clone()));
    let resource = AuthX::new(AuthXConfig::from_jwks(trusted)).unwrap();
    assert_eq!(status(resource, &token).await, StatusCode::OK);

    // The platform's roots do not know the test CA: no keys, and a 503 (the
    // issuer's fault, not the token's), never a pass.
    let untrusted = RemoteJwks::new(&url).unwrap();
    let resource = AuthX::new(AuthXConfig::from_jwks(untrusted)).unwrap();
    assert_eq!(
        status(resource.clone(), &token).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[test]
fn plain_http_is_for_loopback_and_other_schemes_are_refused() {
    assert!(RemoteJwks::new("http://127.0.0.1:8000/jwks.json").is_ok());
    assert!(RemoteJwks::new("http://[::1]:8000/jwks.json").is_ok());
    assert!(RemoteJwks::new("http://localhost/jwks.json").is_ok());
    // Works, with a warning in the log.
    assert!(RemoteJwks::new("http://issuer.example/jwks.json").is_ok());
    assert!(RemoteJwks::new("https://issuer.example/jwks.json").is_ok());
    for refused in [
        "ftp://issuer.example/jwks.json",
        "/jwks.json",
        "file:///etc/passwd",
    ] {
        assert!(RemoteJwks::new(refused).is_err(), "{refused}");
    }
}

/// The child's half of `ssl_cert_file_adds_a_trusted_root`: runs only when the
/// parent gives it a URL and a token (and `SSL_CERT_FILE`).
#[tokio::test]
async fn ssl_cert_file_child() {
    let (Ok(url), Ok(token)) = (
        std::env::var("AUTHX_TEST_JWKS_URL"),
        std::env::var("AUTHX_TEST_TOKEN"),
    ) else {
        return;
    };
    let resource = AuthX::new(AuthXConfig::from_jwks(RemoteJwks::new(&url).unwrap())).unwrap();
    assert_eq!(status(resource, &token).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_cert_file_adds_a_trusted_root() {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/keys/ec256_private.pem"
    ))
    .unwrap();
    let issuer = AuthX::new(AuthXConfig::new(
        Key::signing_pem(Algorithm::ES256, &pem).unwrap(),
    ))
    .unwrap();
    let token = issuer.create_access_token("user1", true).unwrap();
    let pki = pki();
    let url = https_jwks(issuer.jwks().to_owned(), pki.server.clone()).await;
    let ca_file = std::env::temp_dir().join(format!("authx-test-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ssl_cert_file_child", "--nocapture"])
        .env("SSL_CERT_FILE", &ca_file)
        .env("AUTHX_TEST_JWKS_URL", &url)
        .env("AUTHX_TEST_TOKEN", &token)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&ca_file);
    let output = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "{output}");
    assert!(output.contains("1 passed"), "{output}");
}
