//! A resource server fetching its issuer's JWKS over real HTTPS on loopback,
//! with a certificate authority made in the test: trusted through
//! `RemoteJwks::tls_config`, or through `SSL_CERT_FILE` (in a child process,
//! since the environment is the process's), it verifies; with the platform's
//! roots only (the test CA unknown), the keys cannot be had and the answer is
//! 503, never 200.
#![cfg(feature = "remote-keys")]

#[path = "../../tests/support/mod.rs"]
mod support;
mod tls;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tls::{client_trusting, fixture_key, pki, serve_jwks};
use tower_authx::{Algorithm, AuthX, AuthXConfig, Key, RemoteJwks};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_over_https_from_a_trusted_issuer_only() {
    let issuer = AuthX::new(AuthXConfig::new(fixture_key(
        Algorithm::ES256,
        "ec256_private.pem",
    )))
    .unwrap();
    let token = issuer.access_token("user1").fresh(true).issue().unwrap();
    let pki = pki();
    let url = serve_jwks(Some(issuer.jwks().to_owned()), pki.server.clone()).await;

    let trusted = RemoteJwks::new(&url)
        .unwrap()
        .tls_config(client_trusting(pki.ca_der.clone()));
    let resource = AuthX::new(AuthXConfig::from_jwks(trusted).danger_accept_any_issuer()).unwrap();
    assert_eq!(
        support::guarded_status(&resource, &token).await,
        StatusCode::OK
    );

    // The platform's roots do not know the test CA: no keys, and a 503 (the
    // issuer's fault, not the token's), never a pass.
    let untrusted = RemoteJwks::new(&url).unwrap();
    let resource =
        AuthX::new(AuthXConfig::from_jwks(untrusted.clone()).danger_accept_any_issuer()).unwrap();
    assert_eq!(
        support::guarded_status(&resource, &token).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The error says why (the certificate's issuer is unknown), not only
    // "client error (Connect)".
    let error = untrusted.refresh().await.unwrap_err().to_string();
    assert!(
        error.contains("UnknownIssuer") || error.contains("unknown issuer"),
        "{error}"
    );
}

#[test]
fn plain_http_is_for_loopback_and_other_schemes_are_refused() {
    assert!(RemoteJwks::new("http://127.0.0.1:8000/jwks.json").is_ok());
    assert!(RemoteJwks::new("http://[::1]:8000/jwks.json").is_ok());
    assert!(RemoteJwks::new("http://localhost/jwks.json").is_ok());
    // Beyond loopback, anyone on the way could swap the keys: refused, unless
    // asked for by a name that says so (then with a warning in the log).
    let error = RemoteJwks::new("http://idp.internal/jwks.json").unwrap_err();
    assert!(error.to_string().contains("plain http"), "{error}");
    assert!(RemoteJwks::danger_plain_http("http://idp.internal/jwks.json").is_ok());
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
    let resource = AuthX::new(
        AuthXConfig::from_jwks(RemoteJwks::new(&url).unwrap()).danger_accept_any_issuer(),
    )
    .unwrap();
    assert_eq!(
        support::guarded_status(&resource, &token).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_cert_file_adds_a_trusted_root() {
    let issuer = AuthX::new(AuthXConfig::new(fixture_key(
        Algorithm::ES256,
        "ec256_private.pem",
    )))
    .unwrap();
    let token = issuer.access_token("user1").fresh(true).issue().unwrap();
    let pki = pki();
    let url = serve_jwks(Some(issuer.jwks().to_owned()), pki.server.clone()).await;
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

/// An OpenID Provider's two documents over HTTPS on loopback: its
/// configuration (naming `issuer_claim` as its issuer) and its JWKS. Its URL
/// (the issuer) and a counter of the JWKS fetches.
async fn provider(
    jwks: String,
    issuer_claim: Option<&str>,
    tls: rustls::ServerConfig,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    provider_naming(jwks, issuer_claim, None, tls).await
}

/// [`provider`] whose configuration names `jwks_uri` (default its own `/jwks`).
async fn provider_naming(
    jwks: String,
    issuer_claim: Option<&str>,
    jwks_uri: Option<&str>,
    tls: rustls::ServerConfig,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let iss = format!("https://{}", listener.local_addr().unwrap());
    let configuration = serde_json::json!({
        "issuer": issuer_claim.unwrap_or(&iss),
        "jwks_uri": jwks_uri.map_or_else(|| format!("{iss}/jwks"), str::to_owned),
    })
    .to_string();
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, jwks, configuration, counter) = (
                acceptor.clone(),
                jwks.clone(),
                configuration.clone(),
                counter.clone(),
            );
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| {
                        let body = if req.uri().path() == "/jwks" {
                            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            jwks.clone()
                        } else {
                            configuration.clone()
                        };
                        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (iss, fetches)
}

/// Tokens of `iss` for the API `audience`, signed with a fixture key.
fn signer(alg: Algorithm, file: &str, iss: &str, audience: &str) -> AuthX {
    AuthX::new(
        AuthXConfig::new(fixture_key(alg, file))
            .issuer(iss)
            .audience(audience),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_discovered_issuers_each_verify_only_their_own_tokens() {
    let pki = pki();
    // Keys first, to know the JWKS each provider serves; `iss` comes after.
    let es_keys = signer(Algorithm::ES256, "ec256_private.pem", "x", "api")
        .jwks()
        .to_owned();
    let rs_keys = signer(Algorithm::RS256, "rsa_private.pem", "x", "api")
        .jwks()
        .to_owned();
    let (es_iss, es_fetches) = provider(es_keys, None, pki.server.clone()).await;
    let (rs_iss, _) = provider(rs_keys, None, pki.server.clone()).await;
    let es = signer(Algorithm::ES256, "ec256_private.pem", &es_iss, "api");
    let rs = signer(Algorithm::RS256, "rsa_private.pem", &rs_iss, "api");

    let tls = client_trusting(pki.ca_der.clone());
    let issuers = [
        tower_authx::Issuer::discover_with(&es_iss, tls.clone())
            .await
            .unwrap()
            .audience("api"),
        tower_authx::Issuer::discover_with(&rs_iss, tls.clone())
            .await
            .unwrap()
            .audience("api"),
    ];
    let resource = AuthX::new(AuthXConfig::from_issuers(issuers)).unwrap();

    assert_eq!(
        support::guarded_status(
            &resource,
            &es.access_token("u").fresh(true).issue().unwrap()
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        support::guarded_status(
            &resource,
            &rs.access_token("u").fresh(true).issue().unwrap()
        )
        .await,
        StatusCode::OK
    );
    let fetches = es_fetches.load(std::sync::atomic::Ordering::SeqCst);

    // Signed with the ES256 issuer's key, but claiming the RS256 issuer.
    let impostor = signer(Algorithm::ES256, "ec256_private.pem", &rs_iss, "api");
    let token = impostor.access_token("u").fresh(true).issue().unwrap();
    // Its kid is not among the RS256 issuer's keys: refused (401, or 503 while
    // no fetch has happened since the token was issued), never a pass.
    let refused = support::guarded_status(&resource, &token).await;
    assert!(
        refused == StatusCode::UNAUTHORIZED || refused == StatusCode::SERVICE_UNAVAILABLE,
        "{refused}"
    );
    // An issuer nobody configured: 401, and no fetch from anyone.
    let stranger = signer(
        Algorithm::ES256,
        "ec256_private.pem",
        "https://evil.example",
        "api",
    );
    let token = stranger.access_token("u").fresh(true).issue().unwrap();
    assert_eq!(
        support::guarded_status(&resource, &token).await,
        StatusCode::UNAUTHORIZED
    );
    // Its own audience rules: a token for another API is refused.
    let other_api = signer(Algorithm::ES256, "ec256_private.pem", &es_iss, "billing");
    let token = other_api.access_token("u").fresh(true).issue().unwrap();
    assert_eq!(
        support::guarded_status(&resource, &token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        es_fetches.load(std::sync::atomic::Ordering::SeqCst),
        fetches,
        "no fetch for a stranger's or another API's token"
    );
}

/// Discovery refuses a configuration that names another issuer, or that
/// sends the keys of an https issuer to plain http.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_refuses_another_issuer_and_keys_over_plain_http() {
    let pki = pki();
    let cases = [
        (Some("https://someone-else.example"), None, "someone-else"),
        (None, Some("http://idp.internal/jwks"), "not https"),
        (None, Some("http://127.0.0.1:1/jwks"), "not https"),
    ];
    for (issuer_claim, jwks_uri, said) in cases {
        let (iss, _) = provider_naming(
            "{\"keys\":[]}".into(),
            issuer_claim,
            jwks_uri,
            pki.server.clone(),
        )
        .await;
        let tls = client_trusting(pki.ca_der.clone());
        let error = tower_authx::Issuer::discover_with(&iss, tls)
            .await
            .unwrap_err();
        assert!(error.to_string().contains(said), "{said}: {error}");
        // And without trusting its certificate, nothing is read at all.
        assert!(tower_authx::Issuer::discover(&iss).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_jwks_never_lets_a_token_through() {
    use base64::Engine as _;
    let issuer = AuthX::new(AuthXConfig::new(
        fixture_key(Algorithm::ES256, "ec256_private.pem").with_kid("k"),
    ))
    .unwrap();
    let token = issuer.access_token("user1").fresh(true).issue().unwrap();
    let real: serde_json::Value = serde_json::from_str(issuer.jwks()).unwrap();
    let real_key = real["keys"][0].clone();
    let mut other_key = real_key.clone();
    other_key["x"] = serde_json::json!("04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY");
    other_key["y"] = serde_json::json!("UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw");
    let mut misfit = real_key.clone();
    misfit["alg"] = serde_json::json!("RS256");
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    let hs_token = AuthX::new(AuthXConfig::new(
        Key::hmac(Algorithm::HS256, [7u8; 32])
            .unwrap()
            .with_kid("k"),
    ))
    .unwrap()
    .access_token("user1")
    .fresh(true)
    .issue()
    .unwrap();
    let padding = "x".repeat(2 << 20);
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        (
            "huge (2 MiB)",
            Some(serde_json::json!({"keys": [real_key], "padding": padding}).to_string()),
            &token,
        ),
        ("slow (never answers)", None, &token),
        (
            "two keys with one kid",
            Some(serde_json::json!({"keys": [real_key, other_key]}).to_string()),
            &token,
        ),
        (
            "a published secret",
            Some(serde_json::json!({"keys": [{"kty": "oct", "kid": "k", "alg": "HS256", "k": secret}]}).to_string()),
            &hs_token,
        ),
        (
            "a key that does not fit its alg",
            Some(serde_json::json!({"keys": [misfit]}).to_string()),
            &token,
        ),
    ];
    let pki = pki();
    for (what, jwks, token) in cases {
        let url = serve_jwks(jwks, pki.server.clone()).await;
        let remote = RemoteJwks::new(&url)
            .unwrap()
            .timeout(std::time::Duration::from_secs(1))
            .tls_config(client_trusting(pki.ca_der.clone()));
        let resource =
            AuthX::new(AuthXConfig::from_jwks(remote).danger_accept_any_issuer()).unwrap();
        let answered = support::guarded_status(&resource, token).await;
        assert!(
            answered == StatusCode::UNAUTHORIZED || answered == StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {answered}"
        );
    }
}
