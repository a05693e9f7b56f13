//! Keys in process: an unknown-kid flood against a counting JWKS server,
//! algorithm confusion, key sets and their JWKS, DER and PEM twins, hostile
//! Ed25519 keys configured and fetched. The examples' side (every asymmetric
//! algorithm, rotation, the issuer down) is in e2e_keys.rs.
#![cfg(feature = "remote-keys")]

use crate::support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use support::{forge, header_of, key_fixture, now, private_key};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{
    Algorithm, AuthX, AuthXConfig, Claims, Key, KeySet, RemoteJwks, RequireAuthLayer, Requirement,
};

/// A verifying key from a PEM fixture.
fn public_key(alg: Algorithm, file: &str) -> Key {
    Key::verifying_pem(alg, &std::fs::read(key_fixture(file)).unwrap()).unwrap()
}

/// An issuer signing with the ES256 fixture key, no `kid`.
fn es256_signer() -> AuthX {
    AuthX::new(AuthXConfig::new(private_key(
        Algorithm::ES256,
        "ec256_private.pem",
    )))
    .unwrap()
}

/// A JWKS server in process: the document it serves (replace it to rotate)
/// and the fetches it answered.
struct JwksServer {
    url: String,
    document: Arc<std::sync::RwLock<String>>,
    hits: Arc<AtomicUsize>,
}

async fn jwks_server(jwks: String) -> JwksServer {
    let (document, hits) = (
        Arc::new(std::sync::RwLock::new(jwks)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (served, counter) = (document.clone(), hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (served, counter) = (served.clone(), counter.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = served.read().unwrap().clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    JwksServer {
        url: format!("http://{addr}/jwks.json"),
        document,
        hits,
    }
}

/// `resource` guarding a service that answers 200.
fn guarded(
    resource: AuthX,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<tower_authx::layer::EitherBody<Full<Bytes>>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    RequireAuthLayer::new(resource).layer(service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }))
}

fn bearer(token: &str) -> Request<Full<Bytes>> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_flood_causes_one_refetch_not_thousands() {
    let issuer = es256_signer();
    let server = jwks_server(issuer.jwks().to_owned()).await;
    let (url, hits) = (server.url, server.hits);
    let resource = AuthX::new(
        AuthXConfig::from_jwks(RemoteJwks::new(&url).unwrap()).danger_accept_any_issuer(),
    )
    .unwrap();
    let service = guarded(resource);

    let good = issuer.access_token("u").fresh(true).issue().unwrap();
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

#[test]
fn algorithm_confusion_is_refused_by_kid_too() {
    let rsa = private_key(Algorithm::RS256, "rsa_private.pem");
    let authx = AuthX::new(AuthXConfig::new(KeySet::new(rsa))).unwrap();
    let kid = header_of(&authx.access_token("u").fresh(true).issue().unwrap())["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let public_pem = std::fs::read(key_fixture("rsa_public.pem")).unwrap();
    let claims = format!(r#"{{"sub":"u","exp":{}}}"#, now() + 60);
    for alg in ["HS256", "ES256", "PS256", "none"] {
        let token = forge(
            &format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#),
            &claims,
            &public_pem,
        );
        let err = authx
            .verify_offline::<tower_authx::NoExtra>(&token, &Requirement::access())
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
        .verify_offline::<tower_authx::NoExtra>(&token, &Requirement::access())
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
    let old_token = old_issuer.access_token("u").fresh(true).issue().unwrap();
    let authx = AuthX::new(AuthXConfig::new(KeySet::new(es).with_previous(rsa_old))).unwrap();
    let claims: Claims = authx
        .verify_offline(&old_token, &Requirement::access())
        .unwrap();
    assert_eq!(claims.sub, "u");
    let new: Claims = authx
        .verify_offline(
            &authx.access_token("v").fresh(true).issue().unwrap(),
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
        let read = |file: String| std::fs::read(key_fixture(&file)).unwrap();
        let signer = AuthX::new(AuthXConfig::new(
            Key::signing_der(alg, &read(format!("{name}_private.der"))).unwrap(),
        ))
        .unwrap();
        let token = signer.access_token("der").fresh(true).issue().unwrap();
        let verifier = AuthX::new(AuthXConfig::new(KeySet::verify_only([Key::verifying_der(
            alg,
            &read(format!("{name}_public.der")),
        )
        .unwrap()])))
        .unwrap();
        let claims: Claims = verifier
            .verify_offline(&token, &Requirement::fresh())
            .unwrap();
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

#[test]
fn pem_shapes_openssl_writes_load_and_the_others_are_refused_saying_why() {
    let read = |file: &str| std::fs::read(key_fixture(file)).unwrap();
    let published = |key: Key| {
        AuthX::new(AuthXConfig::new(KeySet::verify_only([key])))
            .unwrap()
            .jwks()
            .to_owned()
    };
    // PKCS#1 `RSA PUBLIC KEY` and an X.509 `CERTIFICATE` carry the same keys
    // as their SubjectPublicKeyInfo twins.
    for (alg, twin, other) in [
        (Algorithm::RS256, "rsa_public.pem", "rsa_public_pkcs1.pem"),
        (Algorithm::ES256, "ec256_public.pem", "ec256_cert.pem"),
    ] {
        let twin = published(Key::verifying_pem(alg, &read(twin)).unwrap());
        assert_eq!(
            published(Key::verifying_pem(alg, &read(other)).unwrap()),
            twin,
            "{other}"
        );
    }
    let refusal = |result: Result<Key, tower_authx::ConfigError>| result.unwrap_err().to_string();
    // A secret's algorithm, whichever asymmetric constructor is given it.
    let hs = Algorithm::HS256;
    for refused in [
        Key::verifying_pem(hs, &read("rsa_public.pem")),
        Key::verifying_der(hs, &read("rsa_public.der")),
        Key::signing_pem(hs, &read("rsa_private.pem")),
        Key::signing_der(hs, &read("rsa_private.der")),
    ] {
        let why = refusal(refused);
        assert!(why.contains("takes a secret"), "{why}");
    }
    // SEC1 and encrypted PEM: refused with what to do.
    let sec1 = refusal(Key::signing_pem(
        Algorithm::ES256,
        &read("ec256_private_sec1.pem"),
    ));
    assert!(sec1.contains("openssl pkcs8 -topk8"), "{sec1}");
    let encrypted = refusal(Key::signing_pem(
        Algorithm::RS256,
        &read("rsa_private_encrypted.pem"),
    ));
    assert!(encrypted.contains("encrypted PEM"), "{encrypted}");
    // A key of one type under another's algorithm, and a pair whose halves differ.
    assert!(Key::verifying_pem(Algorithm::ES384, &read("ec256_public.pem")).is_err());
    assert!(Key::verifying_pem(Algorithm::EdDSA, &read("rsa_public.pem")).is_err());
    assert!(Key::signing_pem(Algorithm::ES256, &read("ec384_private.pem")).is_err());
    let mismatched = refusal(Key::signing_pem_pair(
        Algorithm::RS256,
        &read("rsa_private.pem"),
        &read("rsa2_public.pem"),
    ));
    assert!(mismatched.contains("not the private key's"), "{mismatched}");
    assert!(
        Key::signing_pem_pair(
            Algorithm::RS256,
            &read("rsa_private.pem"),
            &read("rsa_public.pem")
        )
        .is_ok()
    );
}

#[test]
fn the_thumbprint_kid_is_rfc_7638s() {
    // RFC 7638 3.1's example key and thumbprint.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let jwk = format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB"}}"#);
    let authx = AuthX::new(AuthXConfig::new(KeySet::verify_only([Key::verifying_jwk(
        Algorithm::RS256,
        &jwk,
    )
    .unwrap()])))
    .unwrap();
    let jwks: serde_json::Value = serde_json::from_str(authx.jwks()).unwrap();
    assert_eq!(
        jwks["keys"][0]["kid"],
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    assert_eq!(jwks["keys"][0]["n"], n);
}

#[test]
fn rsa_exponents_no_backend_verifies_with_are_refused_at_configuration() {
    let jwks: serde_json::Value = serde_json::from_str(
        AuthX::new(AuthXConfig::new(public_key(
            Algorithm::RS256,
            "rsa_public.pem",
        )))
        .unwrap()
        .jwks(),
    )
    .unwrap();
    let n = jwks["keys"][0]["n"].as_str().unwrap();
    let jwk = |e: &str| format!(r#"{{"kty":"RSA","n":"{n}","e":"{e}"}}"#);
    assert!(Key::verifying_jwk(Algorithm::RS256, &jwk("AQAB")).is_ok());
    // 2^33 + 1 (odd, fits 64 bits, but past what ring and aws-lc-rs take), 2, 1.
    for e in ["AgAAAAE", "Ag", "AQ"] {
        assert!(
            Key::verifying_jwk(Algorithm::RS256, &jwk(e)).is_err(),
            "{e}"
        );
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
    let url = jwks_server(serde_json::json!({ "keys": keys }).to_string())
        .await
        .url;
    let resource = AuthX::new(
        AuthXConfig::from_jwks(RemoteJwks::new(&url).unwrap()).danger_accept_any_issuer(),
    )
    .unwrap();
    let service = guarded(resource);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_in_is_503_until_the_refetch_may_run_never_401() {
    let old = es256_signer();
    let server = jwks_server(old.jwks().to_owned()).await;
    let (url, document) = (server.url, server.document);
    let remote = RemoteJwks::new(&url)
        .unwrap()
        .min_refetch_interval(Duration::from_secs(3));
    let resource =
        AuthX::new(AuthXConfig::from_jwks(remote.clone()).danger_accept_any_issuer()).unwrap();
    let service = guarded(resource);
    let status = |token: String| {
        let service = service.clone();
        async move { service.oneshot(bearer(&token)).await.unwrap() }
    };
    // The first token fetches the keys.
    let first = old.access_token("u").fresh(true).issue().unwrap();
    assert_eq!(status(first.clone()).await.status(), StatusCode::OK);
    let health = remote.health();
    assert!(health.last_success.is_some() && health.last_failure.is_none());
    assert_eq!(health.keys, 1);

    // A made-up kid on a token issued before that fetch: unknown, 401.
    let forged = forge(
        r#"{"alg":"ES256","kid":"made-up"}"#,
        &format!(r#"{{"sub":"u","iat":{},"exp":{}}}"#, now() - 30, now() + 60),
        b"attacker-secret-of-32-bytes-long",
    );
    assert_eq!(status(forged).await.status(), StatusCode::UNAUTHORIZED);

    // The issuer rotates to a new key; its first token comes while the last
    // fetch is too recent for another: not the token's fault, so 503.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = AuthX::new(AuthXConfig::new(
        private_key(Algorithm::ES256, "ec256_private.pem").with_kid("rotated-in"),
    ))
    .unwrap();
    *document.write().unwrap() = new.jwks().to_owned();
    let rotated = new.access_token("u").fresh(true).issue().unwrap();
    let res = status(rotated.clone()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Retry-After is the time until the refetch that decides (about 2 s of
    // the 3 s interval are left), not a second that would only bring
    // another 503.
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 2, "Retry-After");
    // A client that honours it gets its answer on its first retry: the
    // refetch ran on its own when the limit allowed it.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(status(rotated).await.status(), StatusCode::OK);
    assert_eq!(remote.health().keys, 1);
}

/// Tokens that no key can ever verify are 401 at once while keys are at
/// hand, never a 503 that looks like an outage, and fetch nothing: `alg:
/// none`, an algorithm none of the issuer's keys serves, and no `kid` where
/// several keys serve its algorithm. A token without `kid` is decided against
/// the one key that serves its algorithm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_no_key_can_verify_are_401_at_once_and_fetch_nothing() {
    let es = es256_signer();
    let rs = AuthX::new(AuthXConfig::new(private_key(
        Algorithm::RS256,
        "rsa_private.pem",
    )))
    .unwrap();
    let keys = |authx: &AuthX| -> Vec<Value> {
        serde_json::from_str::<Value>(authx.jwks()).unwrap()["keys"]
            .as_array()
            .unwrap()
            .clone()
    };
    let mut both = keys(&es);
    both.extend(keys(&rs));
    let server = jwks_server(serde_json::json!({ "keys": both }).to_string()).await;
    let hits = server.hits.clone();
    let remote = RemoteJwks::new(&server.url).unwrap();
    let service =
        guarded(AuthX::new(AuthXConfig::from_jwks(remote).danger_accept_any_issuer()).unwrap());
    let send = |token: String| {
        let service = service.clone();
        async move { service.oneshot(bearer(&token)).await.unwrap() }
    };
    // The keys are fetched once.
    let with_kid = es.access_token("u").fresh(true).issue().unwrap();
    assert_eq!(send(with_kid).await.status(), StatusCode::OK);
    let fetched = hits.load(Ordering::SeqCst);

    let payload = format!(r#"{{"sub":"u","iat":{},"exp":{}}}"#, now(), now() + 60);
    let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&payload));
    let hs = forge(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &payload,
        b"any-secret-of-32-bytes-or-more!!",
    );
    let ps = forge(
        r#"{"alg":"PS256"}"#,
        &payload,
        b"any-secret-of-32-bytes-or-more!!",
    );
    let weird = forge(
        r#"{"alg":"XYZ999","kid":"k"}"#,
        &payload,
        b"any-secret-of-32-bytes-or-more!!",
    );
    for _ in 0..3 {
        for (what, token) in [
            ("none", &none),
            ("HS256", &hs),
            ("PS256", &ps),
            ("unknown alg", &weird),
        ] {
            let res = send(token.clone()).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
            assert!(!res.headers().contains_key("retry-after"), "{what}");
        }
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        fetched,
        "a refusal fetched keys"
    );

    // No kid, decided against the one key that serves the token's alg.
    let claims = serde_json::json!({"sub": "u", "iat": now(), "exp": now() + 60});
    let kidless = support::dpop::ProofKey::es256()
        .sign(&serde_json::json!({"alg": "ES256", "typ": "JWT"}), &claims);
    assert_eq!(send(kidless).await.status(), StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), fetched);
}

/// Two tenants of one identity provider: the same keys, different `iss`.
fn tenant(name: &str) -> AuthX {
    AuthX::new(
        AuthXConfig::new(private_key(Algorithm::ES256, "ec256_private.pem"))
            .issuer(format!("https://login.example/{name}")),
    )
    .unwrap()
}

#[tokio::test]
async fn a_jwks_configuration_names_its_issuer_and_other_tenants_of_the_keys_are_refused() {
    let (mine, theirs) = (tenant("mine"), tenant("theirs"));
    let server = jwks_server(mine.jwks().to_owned()).await;
    let remote = || RemoteJwks::new(&server.url).unwrap();

    let unnamed = AuthX::new(AuthXConfig::from_jwks(remote())).unwrap_err();
    assert!(
        unnamed.to_string().contains("danger_accept_any_issuer"),
        "{unnamed}"
    );
    let service = guarded(
        AuthX::new(AuthXConfig::from_jwks(remote()).issuer("https://login.example/mine")).unwrap(),
    );
    for (token, status) in [
        (
            mine.access_token("u").fresh(true).issue().unwrap(),
            StatusCode::OK,
        ),
        (
            theirs.access_token("u").fresh(true).issue().unwrap(),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let res = service.clone().oneshot(bearer(&token)).await.unwrap();
        assert_eq!(res.status(), status);
    }
    // The opt-out says what it does: any tenant gets in.
    let any =
        guarded(AuthX::new(AuthXConfig::from_jwks(remote()).danger_accept_any_issuer()).unwrap());
    let theirs_token = theirs.access_token("u").fresh(true).issue().unwrap();
    assert_eq!(
        any.oneshot(bearer(&theirs_token)).await.unwrap().status(),
        StatusCode::OK
    );
    // ...and contradicts a named issuer, and means nothing without a JWKS.
    assert!(
        AuthX::new(
            AuthXConfig::from_jwks(remote())
                .issuer("https://login.example/mine")
                .danger_accept_any_issuer()
        )
        .is_err()
    );
}

#[tokio::test]
async fn from_issuers_refuses_settings_it_would_drop_and_issuers_that_shadow_each_other() {
    let issuer = |iss: &str| {
        tower_authx::Issuer::new(iss, RemoteJwks::new("https://login.example/jwks").unwrap())
    };
    let cases = [
        (
            "issuer",
            AuthXConfig::from_issuers([issuer("https://a")]).issuer("https://a"),
        ),
        (
            "audience",
            AuthXConfig::from_issuers([issuer("https://a")]).audience("api"),
        ),
        (
            "shadow",
            AuthXConfig::from_issuers([
                issuer("https://a"),
                issuer("https://b"),
                issuer("https://a"),
            ]),
        ),
        ("none", AuthXConfig::from_issuers([])),
        (
            "any",
            AuthXConfig::from_issuers([issuer("https://a")]).danger_accept_any_issuer(),
        ),
    ];
    for (case, config) in cases {
        assert!(AuthX::new(config).is_err(), "{case}");
    }
    assert!(
        AuthX::new(AuthXConfig::from_issuers([
            issuer("https://a"),
            issuer("https://b")
        ]))
        .is_ok()
    );
}

/// A garbage token on a guard of several issuers is told it is malformed,
/// as on a guard of one; a readable token of no configured issuer is told
/// its issuer is not trusted. Both before any key is fetched.
#[tokio::test]
async fn garbage_on_several_issuers_is_malformed_and_a_stranger_is_an_invalid_issuer() {
    let issuer = |iss: &str| {
        tower_authx::Issuer::new(iss, RemoteJwks::new("https://login.example/jwks").unwrap())
    };
    let authx = AuthX::new(AuthXConfig::from_issuers([
        issuer("https://a"),
        issuer("https://b"),
    ]))
    .unwrap();
    let stranger = forge(
        r#"{"alg":"RS256","typ":"JWT"}"#,
        r#"{"iss":"https://c","sub":"u"}"#,
        b"any secret",
    );
    for (token, detail) in [
        (
            "abc.def.ghi",
            "Invalid token: the payload is not base64url-encoded JSON",
        ),
        (stranger.as_str(), "Invalid issuer"),
    ] {
        let err = authx
            .verify::<tower_authx::NoExtra>(token, &Requirement::access())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), detail, "{token}");
    }
}

/// Issue 38, finding 1: an RSA modulus that is empty or zero (as a JWK, or
/// as the DER INTEGER 0 of an `RSA PUBLIC KEY`) is refused, never a panic;
/// a DER `NULL` with content is not DER.
#[test]
fn empty_and_zero_rsa_moduli_and_a_null_with_content_are_refused() {
    for n in ["", "AA", "AAAA"] {
        let jwk = format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB"}}"#);
        assert!(Key::verifying_jwk(Algorithm::RS256, &jwk).is_err(), "{n:?}");
    }
    let zero_modulus = [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03];
    let pem = format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(zero_modulus)
    );
    assert!(Key::verifying_pem(Algorithm::RS256, pem.as_bytes()).is_err());
    // A sound SubjectPublicKeyInfo loads; the same with `05 01 00` for its
    // parameters' NULL does not.
    let good = std::fs::read(key_fixture("rsa_public.pem")).unwrap();
    let good = String::from_utf8(good).unwrap();
    let body: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    assert!(Key::verifying_der(Algorithm::RS256, &der).is_ok());
    let null_at = der
        .windows(2)
        .position(|w| w == [0x05, 0x00])
        .expect("the rsaEncryption NULL");
    let mut bad = der[..null_at].to_vec();
    bad.extend_from_slice(&[0x05, 0x01, 0x00]);
    bad.extend_from_slice(&der[null_at + 2..]);
    // The lengths of the SEQUENCEs around it grow by one.
    bad[3] += 1; // SEQUENCE (82 01 22 -> 82 01 23): the outer length's low byte
    bad[5] += 1; // the AlgorithmIdentifier's short length
    assert!(Key::verifying_der(Algorithm::RS256, &bad).is_err());
}

/// Issue 38, finding 11: a forged token naming a made-up `kid` (its `iat`
/// now, as a forger writes it) is 503 only until a fetch has answered
/// without that `kid`; from then on it is 401 until the next fetch, so
/// forged tokens do not look like an outage. A JWKS that cannot be fetched
/// stays 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_kid_is_401_once_a_fetch_answered_without_it() {
    let signer = es256_signer();
    let server = jwks_server(signer.jwks().to_owned()).await;
    let remote = RemoteJwks::new(&server.url)
        .unwrap()
        .min_refetch_interval(Duration::from_millis(1500));
    let resource =
        AuthX::new(AuthXConfig::from_jwks(remote.clone()).danger_accept_any_issuer()).unwrap();
    let service = guarded(resource);
    let status = |token: String| {
        let service = service.clone();
        async move { service.oneshot(bearer(&token)).await.unwrap().status() }
    };
    let good = signer.access_token("u").issue().unwrap();
    assert_eq!(status(good.clone()).await, StatusCode::OK);
    let forged = |kid: &str| {
        forge(
            &format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#),
            &format!(r#"{{"sub":"u","iat":{},"exp":{}}}"#, now(), now() + 60),
            b"attacker-secret-of-32-bytes-long",
        )
    };
    // Within the refetch interval a new kid may be a rotation: 503.
    let before = remote.health().last_success;
    assert_eq!(
        status(forged("made-up")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The refetch that decides runs on its own; it answers without the kid
    // (waited for by the keys' state, not by the clock).
    for _ in 0..200 {
        if remote.health().last_success > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        remote.health().last_success > before,
        "the deferred refetch never ran"
    );
    let fetches = server.hits.load(Ordering::SeqCst);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(status(forged("made-up")).await);
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        server.hits.load(Ordering::SeqCst) <= fetches + 1,
        "a fetch per token"
    );
    assert_eq!(status(good).await, StatusCode::OK);

    // The JWKS down: a kid never seen is 503 again, as an outage is.
    *server.document.write().unwrap() = "not json".into();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let first = status(forged("another")).await;
    assert_eq!(first, StatusCode::SERVICE_UNAVAILABLE);
}

/// Issue 43, item 7: a resource server starts while an issuer is down
/// (`Issuer::discover_on_first_use`): that issuer's tokens get 503 with a
/// `Retry-After` that holds, another issuer's are served, the keys' health
/// says which is not known yet; once the issuer answers, its tokens get in
/// without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_while_an_issuer_is_down_and_serves_it_once_reachable() {
    let signer = |iss: &str| {
        AuthX::new(AuthXConfig::new(private_key(Algorithm::ES256, "ec256_private.pem")).issuer(iss))
            .unwrap()
    };
    // Issuer A answers badly at first (its document is no JSON), as one
    // coming up does; issuer B is up.
    let a_server = jwks_server("starting up".into()).await;
    let a_iss = a_server.url.trim_end_matches("/jwks.json").to_owned();
    let a = signer(&a_iss);
    let b_signer = signer("https://b.example");
    let b_server = jwks_server(b_signer.jwks().to_owned()).await;
    let issuer_a = tower_authx::Issuer::discover_on_first_use(&a_iss).unwrap();
    let issuer_a = issuer_a.clone().with_keys(
        issuer_a
            .keys()
            .clone()
            .min_refetch_interval(Duration::from_secs(2)),
    );
    let issuer_b =
        tower_authx::Issuer::new("https://b.example", RemoteJwks::new(&b_server.url).unwrap());
    let resource = AuthX::new(AuthXConfig::from_issuers([issuer_a, issuer_b])).unwrap();
    let service = guarded(resource.clone());
    let send = |token: String| {
        let service = service.clone();
        async move { service.oneshot(bearer(&token)).await.unwrap() }
    };
    let a_token = a.access_token("u").issue().unwrap();
    let res = send(a_token.clone()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    // B's tokens are served meanwhile.
    let b_token = b_signer.access_token("u").issue().unwrap();
    assert_eq!(send(b_token).await.status(), StatusCode::OK);
    let health = resource.keys_health();
    let a_health = &health.iter().find(|(iss, _)| *iss == a_iss).unwrap().1;
    assert!(a_health.failing && a_health.last_success.is_none());
    // A comes up: one document for both reads (its configuration names
    // itself and its keys; the keys are in it too).
    let mut document: Value = serde_json::from_str(a.jwks()).unwrap();
    document["issuer"] = a_iss.clone().into();
    document["jwks_uri"] = a_server.url.clone().into();
    *a_server.document.write().unwrap() = document.to_string();
    // A client that honours Retry-After gets in on its retries, no restart.
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
        status = send(a_token.clone()).await.status();
        if status == StatusCode::OK {
            break;
        }
    }
    assert_eq!(status, StatusCode::OK);
    let health = resource.keys_health();
    let a_health = &health.iter().find(|(iss, _)| *iss == a_iss).unwrap().1;
    assert!(!a_health.failing && a_health.last_success.is_some());
}

/// A token without `kid` takes the issuer's one key that serves its `alg`,
/// whether the issuer's set holds that key alone or beside keys of other
/// algorithms; among several keys of its `alg` it is refused at once (401,
/// no key tried); before any key is held, the keys are fetched first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_kid_takes_the_one_key_that_serves_its_alg() {
    let signer = AuthX::new(AuthXConfig::new(
        private_key(Algorithm::ES256, "ec256_private.pem").with_kid("k1"),
    ))
    .unwrap();
    let published: serde_json::Value = serde_json::from_str(signer.jwks()).unwrap();
    let key = published["keys"][0].clone();
    // Signed by hand: tokens this crate issues always name their key.
    let kidless = support::dpop::ProofKey::es256().sign(
        &serde_json::json!({"alg": "ES256", "typ": "JWT"}),
        &serde_json::json!({"sub": "u", "exp": now() + 60}),
    );
    let mut twin = key.clone();
    twin["kid"] = "k2".into();
    for (keys, expected) in [
        (vec![key.clone()], StatusCode::OK),
        (vec![key.clone(), twin], StatusCode::UNAUTHORIZED),
    ] {
        let server = jwks_server(serde_json::json!({ "keys": keys }).to_string()).await;
        let resource = AuthX::new(
            AuthXConfig::from_jwks(RemoteJwks::new(&server.url).unwrap())
                .danger_accept_any_issuer(),
        )
        .unwrap();
        let res = guarded(resource).oneshot(bearer(&kidless)).await.unwrap();
        let why = res.extensions().get::<tower_authx::AuthError>().cloned();
        assert_eq!(res.status(), expected, "{} keys: {why:?}", keys.len());
        assert_eq!(server.hits.load(Ordering::SeqCst), 1, "fetched once, first");
    }
}

/// Each issuer's rules, as `AuthX::rules` shows and prints them: one value
/// per issuer, every setting that changes a check in it.
#[test]
fn each_issuers_rules_are_one_value_that_prints() {
    let a = tower_authx::Issuer::new(
        "https://a.example",
        RemoteJwks::new("http://127.0.0.1:9/a.json").unwrap(),
    )
    .audience("api")
    .leeway(std::time::Duration::from_secs(30))
    .require_at_jwt();
    let b = tower_authx::Issuer::new(
        "https://b.example",
        RemoteJwks::new("http://127.0.0.1:9/b.json").unwrap(),
    )
    .scope_wildcards();
    let authx = AuthX::new(
        AuthXConfig::from_issuers([a, b])
            .max_token_lifetime(std::time::Duration::from_secs(30 * 24 * 3600))
            .verified_token_cache(100),
    )
    .unwrap();
    let rules = authx.rules();
    assert_eq!(rules.len(), 2);
    let (a, b) = (&rules[0], &rules[1]);
    assert_eq!(a.issuer.as_deref(), Some("https://a.example"));
    assert_eq!(a.audiences, ["api"]);
    assert_eq!(a.required_claims, ["exp", "sub", "iss", "aud"]);
    assert_eq!(a.leeway, std::time::Duration::from_secs(30));
    assert!(a.at_jwt_only && !a.scope_wildcards);
    assert_eq!(
        a.max_lifetime,
        Some(std::time::Duration::from_secs(30 * 24 * 3600))
    );
    assert_eq!(a.verified_cache, Some(100));
    assert!(a.algorithms.is_empty(), "no keys fetched yet");
    assert_eq!(b.required_claims, ["exp", "sub", "iss"]);
    assert!(b.scope_wildcards && !b.at_jwt_only && b.audiences.is_empty());
    let printed = a.to_string();
    for said in [
        "issuer https://a.example",
        "audiences: api",
        "required claims: exp, sub, iss, aud",
        "typ at+jwt only",
        "leeway: 30 s; max lifetime: 2592000 s",
        "verified-token cache: 100 tokens",
    ] {
        assert!(printed.contains(said), "{said:?} in\n{printed}");
    }
    assert!(
        b.to_string()
            .contains("audiences: none (a token naming one is refused)")
    );
    assert!(!a.dpop && !a.dpop_required);
    assert!(a.to_string().contains("DPoP: off"));
    // Our own keys: no issuer, AuthX's wildcards, the key's algorithm; DPoP
    // as configured.
    let own = AuthX::new(
        AuthXConfig::from_secret(support::SECRET)
            .unwrap()
            .dpop(tower_authx::Dpop::new("https://api.example").required(true)),
    )
    .unwrap();
    let own = &own.rules()[0];
    assert_eq!(own.issuer, None);
    assert_eq!(own.algorithms, [Algorithm::HS256]);
    assert!(own.scope_wildcards);
    assert!(own.dpop && own.dpop_required);
    assert!(own.to_string().contains("DPoP: required"));
}
