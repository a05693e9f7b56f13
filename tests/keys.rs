//! Keys across services: every asymmetric algorithm end to end (issuer and
//! resource server as real processes), the published JWKS, rotation by `kid`,
//! an unknown-kid flood against a counting JWKS server, the issuer down, and
//! algorithm confusion.
#![cfg(feature = "remote-keys")]

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::{Server, forge, now};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{
    Algorithm, AuthX, AuthXConfig, Claims, Key, KeySet, RemoteJwks, RequireAuthLayer, Requirement,
};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A signing key from a PEM fixture.
fn private_key(alg: Algorithm, file: &str) -> Key {
    Key::signing_pem(alg, &std::fs::read(fixture(file)).unwrap()).unwrap()
}

/// A verifying key from a PEM fixture.
fn public_key(alg: Algorithm, file: &str) -> Key {
    Key::verifying_pem(alg, &std::fs::read(fixture(file)).unwrap()).unwrap()
}

fn private_key_for(alg: &str) -> &'static str {
    match alg {
        "ES256" => "ec256_private.pem",
        "ES384" => "ec384_private.pem",
        "EdDSA" => "ed25519_private.pem",
        _ => "rsa_private.pem",
    }
}

async fn issuer(alg: &str, key: &str, previous: Option<&str>) -> Server {
    let key = fixture(key);
    let previous = previous.map(fixture);
    let mut env = vec![
        ("JWT_ALGORITHM", alg),
        ("JWT_PRIVATE_KEY_FILE", key.as_str()),
    ];
    if let Some(previous) = &previous {
        env.push(("JWT_PREVIOUS_KEY_FILE", previous.as_str()));
    }
    Server::start("fresh_token", &env).await
}

/// The status `/protected` answers for `token`.
async fn status(server: &Server, token: &str) -> StatusCode {
    server.get("/protected").bearer(token).send().await.status
}

/// The ES256 issuer on `port` (once the previous process has let it go), with
/// more environment.
async fn es256_issuer_on(port: &str, extra: &[(&str, &str)]) -> Server {
    for _ in 0..100 {
        if std::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = fixture("ec256_private.pem");
    let mut env = vec![
        ("PORT", port),
        ("JWT_ALGORITHM", "ES256"),
        ("JWT_PRIVATE_KEY_FILE", key.as_str()),
    ];
    env.extend_from_slice(extra);
    Server::start("fresh_token", &env).await
}

async fn resource_server(issuer: &Server, extra: &[(&str, &str)]) -> Server {
    let url = format!("http://{}/.well-known/jwks.json", issuer.addr);
    let mut env = vec![("JWKS_URL", url.as_str())];
    env.extend_from_slice(extra);
    Server::start("resource_server", &env).await
}

fn header_of(token: &str) -> Value {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    serde_json::from_slice(&b64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn every_asymmetric_algorithm_end_to_end() {
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ] {
        let issuer = issuer(alg, private_key_for(alg), None).await;
        let jwks = issuer.get("/.well-known/jwks.json").send().await;
        assert_eq!(jwks.status, StatusCode::OK, "{alg}");
        let keys = jwks.json()["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 1, "{alg}");
        let published = &keys[0];
        assert_eq!(published["alg"], alg);
        assert_eq!(published["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                published.get(private).is_none(),
                "{alg} publishes {private}"
            );
        }

        let (fresh, refresh) = issuer.login().await;
        let header = header_of(&fresh);
        assert_eq!(header["alg"], alg);
        assert_eq!(
            header["kid"], published["kid"],
            "{alg}: kid = RFC 7638 thumbprint"
        );

        let resource = resource_server(&issuer, &[]).await;
        let res = resource.get("/protected").bearer(&fresh).send().await;
        assert_eq!(res.status, StatusCode::OK, "{alg}: {}", res.text());
        assert_eq!(res.json()["username"], "user1");
        assert_eq!(res.json()["fresh"], true);
        assert_eq!(
            resource
                .get("/fresh-required")
                .bearer(&fresh)
                .send()
                .await
                .status,
            StatusCode::OK
        );
        // Non-fresh from the issuer's refresh: fine for /protected, not for /fresh-required.
        let stale = issuer.post("/refresh").bearer(&refresh).send().await.json()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = resource.get("/fresh-required").bearer(&stale).send().await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{alg}");
        assert_eq!(res.detail(), "Fresh token required");
        // A refresh token is not an access token here either.
        let res = resource.get("/protected").bearer(&refresh).send().await;
        assert_eq!(
            res.detail(),
            "'access' token required, 'refresh' token received"
        );
    }
}

#[tokio::test]
async fn rotation_keeps_old_tokens_while_the_previous_key_is_published() {
    let old_issuer = issuer("RS256", "rsa_private.pem", None).await;
    let old_token = old_issuer.login_fresh().await;
    let resource = resource_server(
        &old_issuer,
        &[("JWKS_REFRESH_SECS", "0.2"), ("JWKS_MIN_REFETCH_SECS", "0")],
    )
    .await;
    assert_eq!(status(&resource, &old_token).await, StatusCode::OK);
    let addr = old_issuer.addr.clone();
    drop(old_issuer);

    // The issuer restarts on the same address with a new key, publishing the old one too.
    let port = addr.rsplit(':').next().unwrap();
    let old_public = fixture("rsa_public.pem");
    let previous = [
        ("JWT_PREVIOUS_ALGORITHM", "RS256"),
        ("JWT_PREVIOUS_KEY_FILE", old_public.as_str()),
    ];
    let new_issuer = es256_issuer_on(port, &previous).await;
    assert_eq!(new_issuer.addr, addr);
    let keys = new_issuer.get("/.well-known/jwks.json").send().await.json();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
    let new_token = new_issuer.login_fresh().await;
    assert_ne!(header_of(&new_token)["kid"], header_of(&old_token)["kid"]);
    // The new kid is unknown to the resource server: one refetch, then accepted.
    let res = resource.get("/protected").bearer(&new_token).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(status(&resource, &old_token).await, StatusCode::OK);
    drop(new_issuer);

    // Once the old key is no longer published, old tokens stop verifying.
    let _issuer = es256_issuer_on(port, &[]).await;
    let mut refused = false;
    for _ in 0..50 {
        let res = resource.get("/protected").bearer(&old_token).send().await;
        if res.status == StatusCode::UNAUTHORIZED {
            assert_eq!(res.detail(), "Invalid token: unknown signing key (kid)");
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the unpublished key kept verifying");
    assert_eq!(
        resource
            .get("/protected")
            .bearer(&new_token)
            .send()
            .await
            .status,
        StatusCode::OK
    );
}

/// A JWKS server in process that counts the fetches it answers.
async fn counting_jwks(jwks: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (counter, jwks) = (counter.clone(), jwks.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = jwks.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/jwks.json"), hits)
}

fn bearer(token: &str) -> Request<Full<Bytes>> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_flood_causes_one_refetch_not_thousands() {
    let issuer = AuthX::new(AuthXConfig::new(private_key(
        Algorithm::ES256,
        "ec256_private.pem",
    )))
    .unwrap();
    let (url, hits) = counting_jwks(issuer.jwks().to_owned()).await;
    let resource = AuthX::new(AuthXConfig::from_jwks(RemoteJwks::new(&url).unwrap())).unwrap();
    let service =
        RequireAuthLayer::new(resource).layer(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));

    let good = issuer.create_access_token("u", true).unwrap();
    assert_eq!(
        service
            .clone()
            .oneshot(bearer(&good))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "first use fetches once");

    // 500 tokens, each naming a different made-up kid, 50 at a time.
    let attacker = b"attacker-secret-of-32-bytes-long";
    let mut tasks = Vec::new();
    for i in 0..500 {
        let header = format!(r#"{{"alg":"ES256","kid":"made-up-{i}"}}"#);
        let token = forge(
            &header,
            &format!(r#"{{"sub":"u","exp":{}}}"#, now() + 60),
            attacker,
        );
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            service.oneshot(bearer(&token)).await.unwrap().status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    let fetches = hits.load(Ordering::SeqCst);
    assert!(fetches <= 2, "{fetches} fetches for 500 unknown kids");
    // Known keys never waited on any of that.
    assert_eq!(
        service
            .clone()
            .oneshot(bearer(&good))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn with_the_issuer_down_cached_keys_serve_and_unknown_kids_are_503() {
    let issuer = issuer("ES256", "ec256_private.pem", None).await;
    let token = issuer.login_fresh().await;
    let resource = resource_server(&issuer, &[("JWKS_MIN_REFETCH_SECS", "0")]).await;
    assert_eq!(
        resource
            .get("/protected")
            .bearer(&token)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    drop(issuer);

    assert_eq!(
        resource
            .get("/protected")
            .bearer(&token)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    let other = AuthX::new(AuthXConfig::new(
        private_key(Algorithm::ES256, "ec256_private.pem").with_kid("rotated-in-later"),
    ))
    .unwrap()
    .create_access_token("user1", true)
    .unwrap();
    let res = resource.get("/protected").bearer(&other).send().await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
    assert_eq!(res.detail(), "Signing keys unavailable, try again later");
    assert_eq!(res.headers["retry-after"], "1");
    // A malformed token is still a plain 401: no key needed to refuse it.
    assert_eq!(
        resource
            .get("/protected")
            .bearer("a.b.c")
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn algorithm_confusion_is_refused_by_kid_too() {
    let rsa = private_key(Algorithm::RS256, "rsa_private.pem");
    let authx = AuthX::new(AuthXConfig::new(KeySet::new(rsa))).unwrap();
    let kid = header_of(&authx.create_access_token("u", true).unwrap())["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let public_pem = std::fs::read(fixture("rsa_public.pem")).unwrap();
    let claims = format!(r#"{{"sub":"u","exp":{}}}"#, now() + 60);
    for alg in ["HS256", "ES256", "PS256", "none"] {
        let token = forge(
            &format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#),
            &claims,
            &public_pem,
        );
        let err = authx
            .verify::<tower_authx::NoExtra>(&token, &Requirement::access())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid token: The specified alg value is not allowed",
            "{alg}"
        );
    }
    // A kid we do not hold is refused; a token without kid uses the signing key.
    let token = forge(r#"{"alg":"RS256","kid":"nope"}"#, &claims, &public_pem);
    let err = authx
        .verify::<tower_authx::NoExtra>(&token, &Requirement::access())
        .unwrap_err();
    assert_eq!(err.to_string(), "Invalid token: unknown signing key (kid)");
}

#[test]
fn key_sets_select_by_kid_and_publish_public_keys_only() {
    let es = private_key(Algorithm::ES256, "ec256_private.pem");
    let rsa_old = public_key(Algorithm::RS256, "rsa_public.pem");
    let old_issuer = AuthX::new(AuthXConfig::new(private_key(
        Algorithm::RS256,
        "rsa_private.pem",
    )))
    .unwrap();
    let old_token = old_issuer.create_access_token("u", true).unwrap();
    let authx = AuthX::new(AuthXConfig::new(KeySet::new(es).with_previous(rsa_old))).unwrap();
    let claims: Claims = authx.verify(&old_token, &Requirement::access()).unwrap();
    assert_eq!(claims.sub, "u");
    let new: Claims = authx
        .verify(
            &authx.create_access_token("v", true).unwrap(),
            &Requirement::access(),
        )
        .unwrap();
    assert_eq!(new.sub, "v");
    let jwks: Value = serde_json::from_str(authx.jwks()).unwrap();
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert_eq!(algs, ["ES256", "RS256"]);
    // HMAC secrets are never published.
    let hmac = AuthX::new(AuthXConfig::from_secret([5u8; 32]).unwrap()).unwrap();
    assert_eq!(hmac.jwks(), r#"{"keys":[]}"#);
    // Two keys with one kid is a configuration error.
    let a = Key::hs256([1u8; 32]).unwrap().with_kid("k");
    let b = Key::hs256([2u8; 32]).unwrap().with_kid("k");
    assert!(AuthX::new(AuthXConfig::new(KeySet::new(a).with_verifying(b))).is_err());
}

#[test]
fn keys_from_der_files_match_their_pem_twins() {
    for (alg, name) in [
        (Algorithm::RS256, "rsa"),
        (Algorithm::PS512, "rsa"),
        (Algorithm::ES256, "ec256"),
        (Algorithm::EdDSA, "ed25519"),
    ] {
        let read = |file: String| std::fs::read(fixture(&file)).unwrap();
        let signer = AuthX::new(AuthXConfig::new(
            Key::signing_der(alg, &read(format!("{name}_private.der"))).unwrap(),
        ))
        .unwrap();
        let token = signer.create_access_token("der", true).unwrap();
        let verifier = AuthX::new(AuthXConfig::new(KeySet::verify_only([Key::verifying_der(
            alg,
            &read(format!("{name}_public.der")),
        )
        .unwrap()])))
        .unwrap();
        let claims: Claims = verifier.verify(&token, &Requirement::fresh()).unwrap();
        assert_eq!(claims.sub, "der", "{alg}");
        // The same key from PEM has the same thumbprint kid.
        let pem = AuthX::new(AuthXConfig::new(
            Key::signing_pem(alg, &read(format!("{name}_private.pem"))).unwrap(),
        ))
        .unwrap();
        assert_eq!(pem.jwks(), signer.jwks(), "{alg}");
        assert!(Key::verifying_der(alg, b"not der").is_err());
    }
}

/// Ed25519 public keys that must never be held: too short, too long, of small
/// order (identity, order 2, 4 and 8 points, either sign), non-canonical.
fn hostile_ed25519_keys() -> Vec<(&'static str, String)> {
    let hex = |h: &str| -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut keys = vec![("3 bytes", b64(&[1, 2, 3])), ("33 bytes", b64(&[7u8; 33]))];
    for (what, h) in [
        (
            "identity",
            "0100000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "identity, x negative",
            "0100000000000000000000000000000000000000000000000000000000000080",
        ),
        (
            "order 2",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ),
        (
            "order 4",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "order 4, x negative",
            "0000000000000000000000000000000000000000000000000000000000000080",
        ),
        (
            "order 8",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        ),
        (
            "order 8, x negative",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        ),
        (
            "order 8 (other)",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        ),
        (
            "y = p",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ),
        (
            "y = p + 1",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ),
    ] {
        keys.push((what, b64(&hex(h))));
    }
    keys
}

#[test]
fn hostile_ed25519_keys_are_refused_as_jwk_and_as_pem() {
    for (what, x) in hostile_ed25519_keys() {
        let jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#);
        assert!(
            Key::verifying_jwk(Algorithm::EdDSA, &jwk).is_err(),
            "JWK: {what}"
        );
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&x)
            .unwrap();
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&raw);
        assert!(
            Key::verifying_der(Algorithm::EdDSA, &der).is_err(),
            "PEM: {what}"
        );
    }
    // Short EC coordinates and RSA moduli too.
    let short_ec = r#"{"kty":"EC","crv":"P-256","x":"AQID","y":"AQID"}"#;
    assert!(Key::verifying_jwk(Algorithm::ES256, short_ec).is_err());
    let short_rsa = r#"{"kty":"RSA","n":"AQID","e":"AQAB"}"#;
    assert!(Key::verifying_jwk(Algorithm::RS256, short_rsa).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_jwks_with_hostile_ed25519_keys_never_panics_and_refuses_their_tokens() {
    let keys: Vec<Value> = hostile_ed25519_keys()
        .into_iter()
        .enumerate()
        .map(|(i, (_, x))| {
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": format!("k{i}"), "x": x})
        })
        .collect();
    let count = keys.len();
    let (url, _) = counting_jwks(serde_json::json!({ "keys": keys }).to_string()).await;
    let resource = AuthX::new(AuthXConfig::from_jwks(RemoteJwks::new(&url).unwrap())).unwrap();
    let service =
        RequireAuthLayer::new(resource).layer(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let payload = format!(r#"{{"sub":"u","type":"access","exp":{}}}"#, now() + 60);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    for i in 0..count {
        let header = format!(r#"{{"alg":"EdDSA","kid":"k{i}"}}"#);
        // R = identity, S = 0: what verifies under a small-order key.
        let mut signature = vec![0u8; 64];
        signature[0] = 1;
        let token = format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(payload.as_bytes()),
            b64(&signature)
        );
        let status = service
            .clone()
            .oneshot(bearer(&token))
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "kid k{i}");
    }
}
