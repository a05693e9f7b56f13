//! DPoP (RFC 9449) through the layers, in process: what an honest client
//! gets, and every way a proof, a binding or a nonce can be wrong.

use crate::support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use support::dpop::{ProofKey, ath, claims};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{
    AuthError, AuthX, AuthXConfig, Claims, Dpop, DpopError, DpopKey, RequestHead, RequireAuthLayer,
    Requirement, TokenPair,
};

const BASE: &str = "https://api.example.com";
const URL: &str = "https://api.example.com/protected";

fn authx_with(dpop: Dpop) -> AuthX {
    AuthX::new(
        AuthXConfig::from_secret(support::SECRET)
            .unwrap()
            .dpop(dpop),
    )
    .unwrap()
}

fn authx() -> AuthX {
    authx_with(Dpop::new(BASE))
}

struct Answer {
    status: StatusCode,
    challenges: Vec<String>,
    nonce: Option<String>,
    error: Option<AuthError>,
    sub: Option<String>,
}

/// Sends `GET /protected` (or `method` on `path`) with `headers` through a guard.
async fn send_to(
    layer: RequireAuthLayer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let service = layer.layer(service_fn(|req: Request<Full<Bytes>>| async move {
        let sub = req.extensions().get::<Claims>().map(|c| c.sub.clone());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
            sub.unwrap_or_default(),
        ))))
    }));
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let res = service
        .oneshot(request.body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let challenges = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let nonce = res
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let error = res.extensions().get::<AuthError>().cloned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        challenges,
        nonce,
        error,
        sub: (status == StatusCode::OK).then(|| String::from_utf8_lossy(&body).into_owned()),
    }
}

async fn send(authx: &AuthX, headers: &[(&str, &str)]) -> Answer {
    send_to(
        RequireAuthLayer::new(authx.clone()),
        "GET",
        "/protected",
        headers,
    )
    .await
}

/// A login with a proof of `key`: the pair is bound to it.
async fn login(authx: &AuthX, key: &ProofKey) -> (DpopKey, TokenPair) {
    let proof = key.proof("POST", "https://api.example.com/login", None);
    let request = Request::post("/login")
        .header("dpop", proof)
        .body(())
        .unwrap();
    let bound = authx
        .dpop_key(RequestHead::of(&request))
        .await
        .unwrap()
        .expect("a proof was sent");
    let pair = authx.token_pair("user1").bound_to(&bound).issue().unwrap();
    assert_eq!(pair.token_type, "DPoP");
    (bound, pair)
}

fn dpop_auth(token: &str) -> String {
    format!("DPoP {token}")
}

fn assert_refused(answer: &Answer, code: &str, why: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{why}");
    assert!(
        answer.challenges[0].starts_with(&format!("DPoP error=\"{code}\"")),
        "{why}: {:?}",
        answer.challenges
    );
    assert!(
        answer.challenges[0].contains("algs=\"ES256 "),
        "{why}: {:?}",
        answer.challenges
    );
}

#[tokio::test]
async fn an_honest_client_gets_in_and_its_proof_works_once() {
    let authx = authx();
    let key = ProofKey::es256();
    let (bound, pair) = login(&authx, &key).await;
    // The bound token names the key's thumbprint.
    let claims = authx_claims(&pair.access_token);
    assert_eq!(claims.cnf.unwrap().jkt.as_deref(), Some(bound.thumbprint()));

    let proof = key.proof("GET", URL, Some(&pair.access_token));
    let auth = dpop_auth(&pair.access_token);
    let ok = send(&authx, &[("authorization", &auth), ("dpop", &proof)]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.sub.as_deref(), Some("user1"));

    let again = send(&authx, &[("authorization", &auth), ("dpop", &proof)]).await;
    assert_refused(&again, "invalid_dpop_proof", "replayed proof");
    assert_eq!(again.error, Some(AuthError::Dpop(DpopError::Replayed)));

    // Every key type we verify makes proofs.
    for key in [ProofKey::ed25519(), ProofKey::rs256()] {
        let (_, pair) = login(&authx, &key).await;
        let proof = key.proof("GET", URL, Some(&pair.access_token));
        let ok = send(
            &authx,
            &[
                ("authorization", &dpop_auth(&pair.access_token)),
                ("dpop", &proof),
            ],
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{:?}", key.alg);
    }
}

#[tokio::test]
async fn a_bound_token_is_never_a_bearer_token() {
    let key = ProofKey::es256();
    let authx = authx();
    let (_, pair) = login(&authx, &key).await;
    let bearer = format!("Bearer {}", pair.access_token);
    let answer = send(&authx, &[("authorization", &bearer)]).await;
    assert_refused(&answer, "invalid_token", "bound token as Bearer");
    // Not even with a good proof beside it.
    let proof = key.proof("GET", URL, Some(&pair.access_token));
    let answer = send(&authx, &[("authorization", &bearer), ("dpop", &proof)]).await;
    assert_refused(
        &answer,
        "invalid_token",
        "bound token as Bearer with a proof",
    );
    // Nor by an AuthX without DPoP, nor through AuthX::verify.
    let plain = AuthX::new(AuthXConfig::from_secret(support::SECRET).unwrap()).unwrap();
    let answer = send(&plain, &[("authorization", &bearer)]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(matches!(
        answer.error,
        Some(AuthError::Dpop(DpopError::Binding(_)))
    ));
    assert!(
        plain
            .verify_offline::<tower_authx::NoExtra>(&pair.access_token, &Requirement::access())
            .is_err()
    );
    // And the DPoP scheme means nothing to it.
    let answer = send(
        &plain,
        &[
            ("authorization", &dpop_auth(&pair.access_token)),
            ("dpop", &proof),
        ],
    )
    .await;
    assert_eq!(answer.error, Some(AuthError::MissingToken));
}

#[tokio::test]
async fn proofs_that_do_not_fit_the_request_are_refused() {
    let key = ProofKey::es256();
    let other = ProofKey::ed25519();
    let authx = authx();
    let (_, pair) = login(&authx, &key).await;
    let token = pair.access_token.as_str();
    let auth = dpop_auth(token);
    let now = support::now();
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims("GET", URL, Some(token));
        change(&mut c);
        key.sign(&key.header(), &c)
    };
    let with_jwk = |member: &str, value: serde_json::Value| {
        let mut header = key.header();
        header["jwk"][member] = value;
        key.sign(&header, &claims("GET", URL, Some(token)))
    };
    // An honest proof first: the server now remembers the key, and every case
    // below must be refused all the same.
    let warm = key.proof("GET", URL, Some(token));
    assert_eq!(
        send(&authx, &[("authorization", &auth), ("dpop", &warm)])
            .await
            .status,
        StatusCode::OK
    );
    let cases: Vec<(&str, String)> = vec![
        ("jwk for encryption", with_jwk("use", "enc".into())),
        ("jwk only for signing", with_jwk("key_ops", json!(["sign"]))),
        (
            "jwk declared for another alg",
            with_jwk("alg", "ES384".into()),
        ),
        ("wrong method", with(&|c| c["htm"] = "POST".into())),
        ("lower-case method", with(&|c| c["htm"] = "get".into())),
        (
            "other path",
            with(&|c| c["htu"] = "https://api.example.com/admin".into()),
        ),
        (
            "other host",
            with(&|c| c["htu"] = "https://evil.example.com/protected".into()),
        ),
        (
            "http for https",
            with(&|c| c["htu"] = "http://api.example.com/protected".into()),
        ),
        (
            "other port",
            with(&|c| c["htu"] = "https://api.example.com:8443/protected".into()),
        ),
        ("relative htu", with(&|c| c["htu"] = "/protected".into())),
        (
            "userinfo",
            with(&|c| c["htu"] = "https://a@api.example.com/protected".into()),
        ),
        ("too old", with(&|c| c["iat"] = (now - 120).into())),
        ("from the future", with(&|c| c["iat"] = (now + 60).into())),
        (
            "iat as a string",
            with(&|c| c["iat"] = now.to_string().into()),
        ),
        (
            "no ath",
            with(&|c| {
                c.as_object_mut().unwrap().remove("ath");
            }),
        ),
        (
            "ath of another token",
            with(&|c| c["ath"] = ath("another.token.here").into()),
        ),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("empty jti", with(&|c| c["jti"] = "".into())),
        ("huge jti", with(&|c| c["jti"] = "j".repeat(300).into())),
        (
            "typ JWT",
            key.sign(
                &json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk}),
                &claims("GET", URL, Some(token)),
            ),
        ),
        (
            "no typ",
            key.sign(
                &json!({"alg": "ES256", "jwk": key.jwk}),
                &claims("GET", URL, Some(token)),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.",
                key.sign(
                    &json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}),
                    &claims("GET", URL, Some(token))
                )
                .rsplit_once('.')
                .unwrap()
                .0
            ),
        ),
        (
            "alg of another key type",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES384", "jwk": key.jwk}),
                &claims("GET", URL, Some(token)),
            ),
        ),
        (
            "no jwk",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256"}),
                &claims("GET", URL, Some(token)),
            ),
        ),
        (
            "crit",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk, "crit": ["exp"]}),
                &claims("GET", URL, Some(token)),
            ),
        ),
        (
            "duplicate htm",
            key.sign_raw(
                &key.header().to_string(),
                &claims("GET", URL, Some(token))
                    .to_string()
                    .replacen('{', r#"{"htm":"POST","#, 1),
            ),
        ),
        (
            "duplicate unknown member",
            key.sign_raw(
                &key.header().to_string(),
                &claims("GET", URL, Some(token))
                    .to_string()
                    .replacen('{', r#"{"x":1,"x":2,"#, 1),
            ),
        ),
        (
            "duplicate member in the jwk",
            key.sign_raw(
                &key.header()
                    .to_string()
                    .replacen(r#""jwk":{"#, r#""jwk":{"q2":1,"q2":1,"#, 1),
                &claims("GET", URL, Some(token)).to_string(),
            ),
        ),
        (
            "empty port",
            with(&|c| c["htu"] = "https://api.example.com:/protected".into()),
        ),
        (
            "port 0",
            with(&|c| c["htu"] = "https://api.example.com:0/protected".into()),
        ),
        ("not a JWS", "a.b".to_owned()),
        ("oversized", format!("{}.{}", "a".repeat(9000), "b.c")),
        ("bad signature", {
            let p = key.proof("GET", URL, Some(token));
            format!("{}AAAA", &p[..p.len() - 4])
        }),
    ];
    for (why, proof) in cases {
        let answer = send(&authx, &[("authorization", &auth), ("dpop", &proof)]).await;
        assert_refused(&answer, "invalid_dpop_proof", why);
    }
    // A request path with dot segments is compared with no proof: routers
    // disagree on what it names.
    let proof = key.proof("GET", URL, Some(token));
    for path in ["/x/%2e%2e/protected", "/x/../protected", "/./protected"] {
        let answer = send_to(
            RequireAuthLayer::new(authx.clone()),
            "GET",
            path,
            &[("authorization", &auth), ("dpop", &proof)],
        )
        .await;
        assert_refused(&answer, "invalid_dpop_proof", path);
    }
    // A jwk that is not the key the token is bound to: the binding refuses it
    // before its signature is looked at.
    let foreign = key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": ProofKey::new(tower_authx::Algorithm::ES256, "ec256_private.pem").jwk.as_object().map(|j| { let mut j = j.clone(); j["x"] = other.jwk["x"].clone(); j }).unwrap()}), &claims("GET", URL, Some(token)));
    assert_refused(
        &send(&authx, &[("authorization", &auth), ("dpop", &foreign)]).await,
        "invalid_token",
        "another key's jwk",
    );
    // Private key material in the jwk: refused, whatever it is.
    let mut leaked = key.jwk.clone();
    leaked["d"] = "AAAA".into();
    let proof = key.sign(
        &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": leaked}),
        &claims("GET", URL, Some(token)),
    );
    assert_refused(
        &send(&authx, &[("authorization", &auth), ("dpop", &proof)]).await,
        "invalid_dpop_proof",
        "private jwk",
    );
    // Two DPoP headers, or none.
    let (a, b) = (
        key.proof("GET", URL, Some(token)),
        key.proof("GET", URL, Some(token)),
    );
    let answer = send(
        &authx,
        &[("authorization", &auth), ("dpop", &a), ("dpop", &b)],
    )
    .await;
    assert_refused(&answer, "invalid_dpop_proof", "two proofs");
    assert_refused(
        &send(&authx, &[("authorization", &auth)]).await,
        "invalid_dpop_proof",
        "no proof",
    );
    // A proof of another key, honest in every other way.
    let proof = other.proof("GET", URL, Some(token));
    assert_refused(
        &send(&authx, &[("authorization", &auth), ("dpop", &proof)]).await,
        "invalid_token",
        "another key",
    );
    // An HMAC proof, even with the server's own secret.
    let hmac = support::forge(
        &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "dG93ZXItYXV0aHgtdGVzdC1zZWNyZXQtMzItYnl0ZXM"}}).to_string(),
        &claims("GET", URL, Some(token)).to_string(),
        support::SECRET.as_bytes(),
    );
    assert_refused(
        &send(&authx, &[("authorization", &auth), ("dpop", &hmac)]).await,
        "invalid_dpop_proof",
        "HMAC proof",
    );
    // The honest proof still works after all of that.
    let proof = key.proof("GET", URL, Some(token));
    assert_eq!(
        send(&authx, &[("authorization", &auth), ("dpop", &proof)])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn equivalent_uris_match_and_the_query_and_fragment_are_ignored() {
    let key = ProofKey::es256();
    let authx = authx();
    let (_, pair) = login(&authx, &key).await;
    let auth = dpop_auth(&pair.access_token);
    for (htu, path) in [
        ("HTTPS://API.example.com:443/protected", "/protected"),
        (
            "https://api.example.com/protected?x=1#top",
            "/protected?y=2",
        ),
        ("https://api.example.com/a/../protected", "/protected"),
        ("https://api.example.com/%7Euser", "/~user"),
    ] {
        let proof = key.proof("GET", htu, Some(&pair.access_token));
        let answer = send_to(
            RequireAuthLayer::new(authx.clone()),
            "GET",
            path,
            &[("authorization", &auth), ("dpop", &proof)],
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{htu} for {path}: {:?}",
            answer.error
        );
    }
}

#[tokio::test]
async fn an_unbound_token_is_not_a_dpop_token_and_required_refuses_bearer() {
    let key = ProofKey::es256();
    let authx = authx();
    let unbound = authx.access_token("user1").fresh(true).issue().unwrap();
    let proof = key.proof("GET", URL, Some(&unbound));
    let answer = send(
        &authx,
        &[("authorization", &dpop_auth(&unbound)), ("dpop", &proof)],
    )
    .await;
    assert_refused(&answer, "invalid_token", "unbound token as DPoP");
    // Unbound Bearer tokens work unless DPoP is required.
    let bearer = format!("Bearer {unbound}");
    assert_eq!(
        send(&authx, &[("authorization", &bearer)]).await.status,
        StatusCode::OK
    );
    let strict = authx_with(Dpop::new(BASE).required(true));
    let answer = send(&strict, &[("authorization", &bearer)]).await;
    assert_refused(&answer, "invalid_token", "Bearer where DPoP is required");
    assert_eq!(
        answer.challenges.len(),
        1,
        "no Bearer challenge: {:?}",
        answer.challenges
    );
}

#[tokio::test]
async fn a_route_taking_both_schemes_answers_both_challenges() {
    let authx = authx_with(
        Dpop::new(BASE).algorithms([tower_authx::Algorithm::ES256, tower_authx::Algorithm::EdDSA]),
    );
    let answer = send(&authx, &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenges, ["Bearer", "DPoP algs=\"ES256 EdDSA\""]);
    // A bad Bearer token: the error goes to Bearer's challenge.
    let answer = send(&authx, &[("authorization", "Bearer a.b.c")]).await;
    assert!(
        answer.challenges[0].starts_with("Bearer error=\"invalid_token\""),
        "{:?}",
        answer.challenges
    );
    assert_eq!(answer.challenges[1], "DPoP algs=\"ES256 EdDSA\"");
    // A bad DPoP token: to DPoP's.
    let key = ProofKey::es256();
    let proof = key.proof("GET", URL, Some("a.b.c"));
    let answer = send(&authx, &[("authorization", "DPoP a.b.c"), ("dpop", &proof)]).await;
    assert!(
        answer.challenges[0].starts_with("DPoP error=\"invalid_token\""),
        "{:?}",
        answer.challenges
    );
    assert_eq!(answer.challenges[1], "Bearer");
}

#[tokio::test]
async fn server_nonces_are_asked_for_then_accepted_on_every_instance() {
    let secret = [9u8; 32];
    let dpop = || Dpop::new(BASE).nonces(secret, Duration::from_secs(300));
    let (a, b) = (authx_with(dpop()), authx_with(dpop()));
    let key = ProofKey::es256();
    // The login proof needs the nonce too.
    let proof = key.proof("POST", "https://api.example.com/login", None);
    let request = Request::post("/login")
        .header("dpop", &proof)
        .body(())
        .unwrap();
    let refused = a.dpop_key(RequestHead::of(&request)).await.unwrap_err();
    assert_eq!(refused, AuthError::Dpop(DpopError::UseNonce));
    let nonce = a.reject(&refused, RequestHead::of(&request)).headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut c = claims("POST", "https://api.example.com/login", None);
    c["nonce"] = nonce.clone().into();
    let request = Request::post("/login")
        .header("dpop", key.sign(&key.header(), &c))
        .body(())
        .unwrap();
    let bound = a
        .dpop_key(RequestHead::of(&request))
        .await
        .unwrap()
        .unwrap();
    let pair = a.token_pair("user1").bound_to(&bound).issue().unwrap();

    let auth = dpop_auth(&pair.access_token);
    let answer = send(
        &b,
        &[
            ("authorization", &auth),
            ("dpop", &key.proof("GET", URL, Some(&pair.access_token))),
        ],
    )
    .await;
    assert_refused(&answer, "use_dpop_nonce", "no nonce");
    let fresh = answer.nonce.expect("DPoP-Nonce in the answer");
    for bad in ["", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not a nonce"] {
        let mut c = claims("GET", URL, Some(&pair.access_token));
        c["nonce"] = bad.into();
        let answer = send(
            &b,
            &[
                ("authorization", &auth),
                ("dpop", &key.sign(&key.header(), &c)),
            ],
        )
        .await;
        assert_refused(&answer, "use_dpop_nonce", bad);
    }
    // The nonce instance A handed out works on B, as does B's own.
    for nonce in [nonce, fresh] {
        let mut c = claims("GET", URL, Some(&pair.access_token));
        c["nonce"] = nonce.into();
        let answer = send(
            &b,
            &[
                ("authorization", &auth),
                ("dpop", &key.sign(&key.header(), &c)),
            ],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    }
}

#[tokio::test]
async fn a_bound_session_rotates_bound_and_only_with_its_key() {
    let authx = authx();
    let key = ProofKey::es256();
    let (bound, pair) = login(&authx, &key).await;
    let refresh = RequireAuthLayer::refresh(authx.clone());
    let service = |authx: AuthX| {
        refresh
            .clone()
            .layer(service_fn(move |req: Request<Full<Bytes>>| {
                let authx = authx.clone();
                async move {
                    let claims = req.extensions().get::<Claims>().unwrap().clone();
                    let pair = authx.rotate(&claims).await.unwrap();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                        serde_json::to_vec(&pair).unwrap(),
                    ))))
                }
            }))
    };
    let url = "https://api.example.com/refresh";
    let send_refresh = |proof_key: &ProofKey, token: &str| {
        let proof = proof_key.proof("POST", url, Some(token));
        Request::post("/refresh")
            .header("authorization", dpop_auth(token))
            .header("dpop", proof)
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    // Another key cannot use the refresh token.
    let res = service(authx.clone())
        .oneshot(send_refresh(&ProofKey::ed25519(), &pair.refresh_token))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Its own key can; the new pair is bound to the same key.
    let res = service(authx.clone())
        .oneshot(send_refresh(&key, &pair.refresh_token))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let next: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(next["token_type"], "DPoP");
    let access = next["access_token"].as_str().unwrap();
    let proof = key.proof("GET", URL, Some(access));
    let answer = send(
        &authx,
        &[("authorization", &dpop_auth(access)), ("dpop", &proof)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let claims: Claims = authx_claims(access);
    assert_eq!(
        claims.cnf.and_then(|c| c.jkt).as_deref(),
        Some(bound.thumbprint())
    );
    // Freshness rules still apply: the rotated access token is not fresh.
    let proof = key.proof("GET", URL, Some(access));
    let answer = send_to(
        authx.guard(Requirement::fresh()).unwrap(),
        "GET",
        "/protected",
        &[("authorization", &dpop_auth(access)), ("dpop", &proof)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

/// The payload of a token we issued, unverified (the test just made it).
fn authx_claims(token: &str) -> Claims {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[test]
fn configurations_that_cannot_work_are_refused() {
    for dpop in [
        Dpop::new("/relative"),
        Dpop::new("https://api.example.com/?q"),
        Dpop::new("ftp://api.example.com"),
        Dpop::new(BASE).algorithms([]),
        Dpop::new(BASE).algorithms([tower_authx::Algorithm::HS256]),
        Dpop::new(BASE).nonces([1u8; 16], Duration::from_secs(60)),
        Dpop::new(BASE).proof_lifetime(Duration::ZERO),
    ] {
        let config = AuthXConfig::from_secret(support::SECRET)
            .unwrap()
            .dpop(dpop.clone());
        assert!(AuthX::new(config).is_err(), "{dpop:?}");
    }
}

/// Every public way to verify applies every configured check: where DPoP is
/// required, no entry point verifies an unbound Bearer token; a logged-out
/// token verifies only through the one that says it skips the store; a
/// proof is spent by `authenticate` as by the layers.
#[tokio::test]
async fn every_entry_point_applies_the_binding_the_store_and_the_replay_check() {
    let strict = authx_with(Dpop::new(BASE).required(true));
    let unbound = strict.access_token("user1").fresh(true).issue().unwrap();
    let refused = |answer: Result<Claims, AuthError>| {
        matches!(answer, Err(AuthError::Dpop(DpopError::Binding(_))))
    };
    assert!(refused(
        strict.verify(&unbound, &Requirement::access()).await
    ));
    assert!(refused(
        strict.verify_offline(&unbound, &Requirement::access())
    ));
    let bearer = format!("Bearer {unbound}");
    let request = Request::get(URL)
        .header("authorization", &bearer)
        .body(())
        .unwrap();
    assert!(
        strict
            .authenticate::<tower_authx::NoExtra>(RequestHead::of(&request), &Requirement::access())
            .await
            .is_err()
    );

    // A logout counts for `verify` and `authenticate`.
    let authx = authx();
    let token = authx.access_token("user1").fresh(true).issue().unwrap();
    let claims: Claims = authx.verify(&token, &Requirement::access()).await.unwrap();
    authx.revoke(&claims).await.unwrap();
    assert_eq!(
        authx
            .verify::<tower_authx::NoExtra>(&token, &Requirement::access())
            .await
            .unwrap_err(),
        AuthError::Revoked
    );
    let request = Request::get(URL)
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    assert_eq!(
        authx
            .authenticate::<tower_authx::NoExtra>(RequestHead::of(&request), &Requirement::access())
            .await
            .unwrap_err(),
        AuthError::Revoked
    );
    // The offline check says in its name what it skips.
    assert!(
        authx
            .verify_offline::<tower_authx::NoExtra>(&token, &Requirement::access())
            .is_ok()
    );

    // A proof spent once by `authenticate` is refused the second time.
    let key = ProofKey::es256();
    let (_, pair) = login(&authx, &key).await;
    let proof = key.proof("GET", URL, Some(&pair.access_token));
    let request = Request::get(URL)
        .header("authorization", format!("DPoP {}", pair.access_token))
        .header("dpop", &proof)
        .body(())
        .unwrap();
    let head = RequestHead::of(&request);
    assert!(
        authx
            .authenticate::<tower_authx::NoExtra>(head, &Requirement::access())
            .await
            .is_ok()
    );
    assert!(matches!(
        authx
            .authenticate::<tower_authx::NoExtra>(head, &Requirement::access())
            .await,
        Err(AuthError::Dpop(DpopError::Replayed))
    ));
}

/// A request with a garbage token is refused for its token before its proof's
/// key or signature is looked at: a proof key the client picks (an RSA key of
/// any size) costs nothing then. Proof keys are bounded besides: RSA of 2048 to
/// 4096 bits with the exponent 65537.
#[tokio::test]
async fn a_garbage_token_is_refused_before_the_proofs_signature_and_proof_keys_are_bounded() {
    let authx = authx();
    let garbage = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let auth = dpop_auth(garbage);
    let key = ProofKey::rs256();
    // A proof that fits the request, with a made-up 8192-bit key.
    let mut huge = key.jwk.clone();
    huge["n"] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [0xc5u8; 1024],
    )
    .into();
    let proof = key.sign(
        &json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": huge}),
        &claims("GET", URL, Some(garbage)),
    );
    let answer = send(&authx, &[("authorization", &auth), ("dpop", &proof)]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        matches!(answer.error, Some(AuthError::InvalidToken(_))),
        "the token decides first: {:?}",
        answer.error
    );

    // With a real token bound to it, such a key is refused for its size, and
    // so is an exponent other than 65537.
    let (_, pair) = login(&authx, &key).await;
    for (what, change) in [("n", huge["n"].clone()), ("e", json!("Aw"))] {
        let mut jwk = key.jwk.clone();
        jwk[what] = change;
        let proof = key.sign(
            &json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}),
            &claims("GET", URL, Some(&pair.access_token)),
        );
        let answer = send(
            &authx,
            &[
                ("authorization", &dpop_auth(&pair.access_token)),
                ("dpop", &proof),
            ],
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
        // Another key than the token's: refused by the binding, unverified.
        assert!(
            matches!(answer.error, Some(AuthError::Dpop(DpopError::Binding(_)))),
            "{what}: {:?}",
            answer.error
        );
    }
    // At a token request (no token to check first) the bounds apply themselves.
    for (what, change) in [("n", huge["n"].clone()), ("e", json!("Aw"))] {
        let mut jwk = key.jwk.clone();
        jwk[what] = change;
        let proof = key.sign(
            &json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}),
            &claims("POST", "https://api.example.com/login", None),
        );
        let request = Request::post("/login")
            .header("dpop", proof)
            .body(())
            .unwrap();
        let refused = authx.dpop_key(RequestHead::of(&request)).await.unwrap_err();
        assert!(refused.to_string().contains("65537"), "{what}: {refused}");
    }
}

/// One account flooding with proofs, a new key per login, is refused on its
/// own (429, its own reason, not "store unavailable"); every other account's
/// DPoP requests, logout and rotation keep answering as before.
#[tokio::test]
async fn a_one_account_proof_flood_is_refused_alone() {
    let authx = authx_with(
        Dpop::new(BASE).replay_store(tower_authx::MemoryReplay::new(4000).per_subject(300)),
    );
    let request = |key: &ProofKey, token: &str| {
        let proof = key.proof("GET", URL, Some(token));
        let auth = dpop_auth(token);
        let authx = authx.clone();
        async move { send(&authx, &[("authorization", &auth), ("dpop", &proof)]).await }
    };
    let mut accepted = 0;
    let mut refused = None;
    'flood: for _ in 0..5 {
        let key = ProofKey::es256();
        let (_, pair) = login(&authx, &key).await;
        for _ in 0..200 {
            let answer = request(&key, &pair.access_token).await;
            if answer.status != StatusCode::OK {
                refused = Some(answer);
                break 'flood;
            }
            accepted += 1;
        }
    }
    let refused = refused.expect("the flood was never refused");
    assert_eq!(accepted, 300, "one account's live proofs");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.error,
        Some(AuthError::Dpop(DpopError::TooManyProofs))
    );
    assert_eq!(
        refused.error.as_ref().map(AuthError::kind),
        Some("dpop_too_many_proofs")
    );

    // Another account: its requests, rotation and logout work as before.
    let key = ProofKey::ed25519();
    let proof = key.proof("POST", "https://api.example.com/login", None);
    let login_request = Request::post("/login")
        .header("dpop", proof)
        .body(())
        .unwrap();
    let bound = authx
        .dpop_key(RequestHead::of(&login_request))
        .await
        .unwrap()
        .unwrap();
    let pair = authx.token_pair("user2").bound_to(&bound).issue().unwrap();
    assert_eq!(
        request(&key, &pair.access_token).await.status,
        StatusCode::OK
    );
    // What a guard would verify: the token with its proof.
    let verified = |token: String, requirement: Requirement| {
        let proof = key.proof("GET", URL, Some(&token));
        let authx = authx.clone();
        async move {
            let request = Request::get(URL)
                .header("authorization", dpop_auth(&token))
                .header("dpop", proof)
                .body(())
                .unwrap();
            authx
                .authenticate::<tower_authx::NoExtra>(RequestHead::of(&request), &requirement)
                .await
                .unwrap()
        }
    };
    let refresh = verified(pair.refresh_token.clone(), Requirement::refresh()).await;
    let rotated = authx.rotate(&refresh).await.unwrap();
    assert_eq!(
        request(&key, &rotated.access_token).await.status,
        StatusCode::OK
    );
    let access = verified(rotated.access_token.clone(), Requirement::access()).await;
    authx.revoke(&access).await.unwrap();
    assert_eq!(
        request(&key, &rotated.access_token).await.error,
        Some(AuthError::Revoked)
    );
}

#[tokio::test]
async fn a_dpop_credential_where_dpop_is_off_is_told_so() {
    let plain = AuthX::new(AuthXConfig::from_secret(support::SECRET).unwrap()).unwrap();
    let token = plain.access_token("u").issue().unwrap();
    let service = RequireAuthLayer::new(plain).layer(service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    let missing = "Missing 'Bearer' in 'Authorization' header.";
    for (value, detail) in [
        (
            format!("DPoP {token}"),
            format!("{missing} The 'DPoP' scheme is not taken here."),
        ),
        ("Basic dXNlcjpwYXNz".to_owned(), missing.to_owned()),
    ] {
        let request = Request::get("/protected")
            .header("authorization", value)
            .body(Full::default())
            .unwrap();
        let res = service.clone().oneshot(request).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        // No credential this server takes: a bare Bearer challenge (RFC 6750 3.1).
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["detail"], detail.as_str());
    }
}

/// Issue 38, finding 1: an RSA proof key whose modulus is empty or zero
/// once panicked the key check (a subtraction under zero) at a login that
/// reads proofs; it is a refusal like any unusable key.
#[tokio::test]
async fn an_empty_or_zero_rsa_modulus_in_a_login_proof_is_refused_not_a_panic() {
    let authx = authx();
    let key = ProofKey::rs256();
    for n in ["", "AA", "AAAA", "AAAAAA"] {
        let mut jwk = key.jwk.clone();
        jwk["n"] = json!(n);
        let proof = key.sign(
            &json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}),
            &claims("POST", "https://api.example.com/login", None),
        );
        let request = Request::post("/login")
            .header("dpop", proof)
            .body(())
            .unwrap();
        let refused = authx.dpop_key(RequestHead::of(&request)).await.unwrap_err();
        assert!(
            matches!(refused, AuthError::Dpop(_)),
            "n = {n:?}: {refused}"
        );
    }
}

/// Issue 43, item 2: a login flood with proofs from one client address is
/// refused on its own (429) once that address holds its part of the login
/// proofs; another address still logs in, and resource requests' proofs
/// keep their room.
#[tokio::test]
async fn a_login_proof_flood_from_one_address_is_refused_alone() {
    let authx = authx_with(Dpop::new(BASE).replay_store(tower_authx::MemoryReplay::new(4096)));
    let key = ProofKey::es256();
    let login_from = |addr: &str| {
        let mut request = Request::post("/login")
            .header(
                "dpop",
                key.proof("POST", "https://api.example.com/login", None),
            )
            .body(())
            .unwrap();
        let peer: std::net::SocketAddr = addr.parse().unwrap();
        request.extensions_mut().insert(peer);
        request
    };
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..40 {
        let request = login_from("203.0.113.7:4000");
        match authx.dpop_key(RequestHead::of(&request)).await {
            Ok(_) => accepted += 1,
            Err(error) => refused = Some(error),
        }
    }
    // A 4096-proof store: logins' share 1024, one address's 16.
    assert_eq!(accepted, 16);
    assert_eq!(refused.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    let other = login_from("198.51.100.9:4000");
    assert!(authx.dpop_key(RequestHead::of(&other)).await.is_ok());
}
