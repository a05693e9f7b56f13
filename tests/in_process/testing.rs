//! Issue 42: the crate's own test support (feature `test-util`), used the way
//! an application would: a guard behind the mock issuer, every kind of token
//! a test needs, the issuer's endpoints over real HTTP, its outages, and
//! claims without tokens.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::testing::{MockIssuer, RolesIn, test_claims, with_claims};
use tower_authx::{
    AuthX, AuthXConfig, Claims, ClientAuth, DpopSigner, Idp, Introspection, RequireAuthLayer,
    Requirement,
};

const API: &str = "https://api.test";

async fn status(guard: &RequireAuthLayer, token: Option<&str>) -> StatusCode {
    let handler = service_fn(|req: Request<Full<Bytes>>| async move {
        let claims = req.extensions().get::<Claims>().cloned();
        let sub = claims.map(|c| c.sub).unwrap_or_default();
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(sub))))
    });
    let mut request = Request::get("/").body(Full::default()).unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    guard
        .layer(handler)
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn every_kind_of_token_gets_the_verdict_its_name_says() {
    let idp = MockIssuer::start(API).await.unwrap();
    let authx = AuthX::new(
        AuthXConfig::from_issuers([idp.issuer().unwrap()]).permissions(Idp::keycloak("app")),
    )
    .unwrap();
    let guard = RequireAuthLayer::new(authx.clone());
    assert_eq!(
        status(&guard, Some(&idp.token().issue())).await,
        StatusCode::OK
    );
    for (case, token) in [
        ("expired", idp.token().expired().issue()),
        ("not yet valid", idp.token().not_yet_valid().issue()),
        (
            "another issuer",
            idp.token().issuer("https://other.test").issue(),
        ),
        (
            "another audience",
            idp.token().audience("https://billing.test").issue(),
        ),
        ("no exp", idp.token().without("exp").issue()),
        ("no sub", idp.token().without("sub").issue()),
        ("an ID token", idp.token().id_token().issue()),
        ("a refresh token", idp.token().refresh().issue()),
    ] {
        assert_eq!(
            status(&guard, Some(&token)).await,
            StatusCode::UNAUTHORIZED,
            "{case}"
        );
    }
    // A key nobody publishes: once the JWKS may be fetched again (a second
    // after the last fetch) and answers without it, 401.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stranger = idp.token().unknown_key().issue();
    assert_eq!(
        status(&guard, Some(&stranger)).await,
        StatusCode::UNAUTHORIZED
    );
    // Roles where Keycloak puts them; a token bound to a key needs its proof.
    let admins = authx
        .guard(Requirement::access().any_role(["admin"]))
        .unwrap();
    let admin = idp
        .token()
        .roles(RolesIn::KeycloakRealm, &["admin"])
        .issue();
    let staff = idp
        .token()
        .roles(RolesIn::KeycloakRealm, &["staff"])
        .issue();
    assert_eq!(status(&admins, Some(&admin)).await, StatusCode::OK);
    assert_eq!(status(&admins, Some(&staff)).await, StatusCode::FORBIDDEN);
    let bound = idp
        .token()
        .dpop_bound("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        .issue();
    assert_eq!(status(&guard, Some(&bound)).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_mock_issuer_rotates_goes_down_and_comes_back() {
    let idp = MockIssuer::start(API).await.unwrap();
    let authx = AuthX::new(AuthXConfig::from_issuers([idp.issuer().unwrap()])).unwrap();
    let guard = RequireAuthLayer::new(authx);
    let before = idp.token().issue();
    assert_eq!(status(&guard, Some(&before)).await, StatusCode::OK);
    assert_eq!(idp.requests("/jwks"), 1);
    // A rotated key is fetched when a token names it; the old one still works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.rotate_keys();
    let after = idp.token().issue();
    assert_eq!(status(&guard, Some(&after)).await, StatusCode::OK);
    assert_eq!(status(&guard, Some(&before)).await, StatusCode::OK);
    assert_eq!(idp.requests("/jwks"), 2);
    // Down: tokens of the keys held still pass; a key rotated in meanwhile
    // cannot be fetched (503), until the issuer is back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.go_down();
    idp.rotate_keys();
    let during = idp.token().issue();
    assert_eq!(status(&guard, Some(&after)).await, StatusCode::OK);
    assert_eq!(
        status(&guard, Some(&during)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    idp.come_back();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&guard, Some(&during)).await, StatusCode::OK);
}

/// `POST url` with `form` (and a DPoP proof) as the test client by HTTP
/// Basic: the status, the JSON, and the DPoP-Nonce header.
async fn post(
    url: &str,
    form: &str,
    proof: Option<String>,
) -> (StatusCode, serde_json::Value, Option<String>) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("test-client:test-secret");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = Request::post(url)
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let answer = client
        .request(
            request
                .body(Full::new(Bytes::from(form.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = answer.status();
    let nonce = answer
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap(), nonce)
}

#[tokio::test]
async fn the_mock_issuers_token_endpoint_and_introspection_answer_as_a_provider_does() {
    let idp = MockIssuer::start(API).await.unwrap();
    let authx = AuthX::new(AuthXConfig::from_issuers([idp
        .issuer()
        .unwrap()
        .introspection(
            Introspection::at(
                &format!("{}/introspect", idp.url()),
                ClientAuth::secret_basic("test-client", "test-secret"),
            )
            .unwrap(),
        )]))
    .unwrap();
    let guard = RequireAuthLayer::new(authx.clone());
    let token_url = format!("{}/token", idp.url());
    let (code, answer, _) =
        post(&token_url, "grant_type=client_credentials&scope=read", None).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(
        status(&guard, answer["access_token"].as_str()).await,
        StatusCode::OK
    );
    let (code, answer, _) = post(
        &token_url,
        "grant_type=password&username=alice&password=password",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    let claims: Claims = authx
        .verify(
            answer["access_token"].as_str().unwrap(),
            &Requirement::access(),
        )
        .await
        .unwrap();
    assert_eq!(claims.sub, "alice");
    let (code, answer, _) = post(
        &token_url,
        "grant_type=password&username=alice&password=guess",
        None,
    )
    .await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // DPoP: a nonce asked for, then a token bound to the proof's key.
    idp.require_dpop_nonce("n-42");
    let pem = std::fs::read(crate::support::key_fixture("ec256_private.pem")).unwrap();
    let signer = DpopSigner::new(
        tower_authx::Key::signing_pem(tower_authx::Algorithm::ES256, &pem).unwrap(),
    )
    .unwrap();
    let uri: http::Uri = token_url.parse().unwrap();
    let proof = |nonce: Option<&str>| {
        Some(
            signer
                .proof(&http::Method::POST, &uri, None, nonce)
                .unwrap(),
        )
    };
    let (code, answer, nonce) =
        post(&token_url, "grant_type=client_credentials", proof(None)).await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("use_dpop_nonce"))
    );
    assert_eq!(nonce.as_deref(), Some("n-42"));
    let (code, answer, _) = post(
        &token_url,
        "grant_type=client_credentials",
        proof(Some("n-42")),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(answer["token_type"], "DPoP");
    let bound = answer["access_token"].as_str().unwrap();
    assert_eq!(
        crate::support::payload_of(bound)["cnf"]["jkt"],
        signer.thumbprint()
    );

    // Opaque tokens, through introspection.
    let opaque = idp.opaque_token("bob", "read");
    assert_eq!(status(&guard, Some(&opaque)).await, StatusCode::OK);
    assert_eq!(
        status(&guard, Some("opaque-made-up")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(idp.requests("/introspect"), 2);
    // Slow: a call past the introspection timeout is a 503.
    idp.answer_slowly(Duration::from_secs(4));
    let slow = idp.opaque_token("carol", "read");
    assert_eq!(
        status(&guard, Some(&slow)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn claims_without_a_token_reach_a_handler_but_never_pass_a_guard() {
    let idp = MockIssuer::start(API).await.unwrap();
    let authx = AuthX::new(AuthXConfig::from_issuers([idp.issuer().unwrap()])).unwrap();
    let handler = service_fn(|req: Request<Full<Bytes>>| async move {
        let sub = req.extensions().get::<Claims>().map(|c| c.sub.clone());
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
            sub.unwrap_or_default(),
        ))))
    });
    let request = || {
        with_claims(
            Request::get("/").body(Full::<Bytes>::default()).unwrap(),
            test_claims("alice"),
        )
    };
    // The handler alone, as a unit test runs it.
    let answer = handler.oneshot(request()).await.unwrap();
    assert_eq!(
        answer.into_body().collect().await.unwrap().to_bytes(),
        "alice"
    );
    // Behind a guard, the claims are no credential.
    let guarded = RequireAuthLayer::new(authx).layer(handler);
    assert_eq!(
        guarded.oneshot(request()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

/// The test clock: in a paused runtime, `tokio::time::advance` ages tokens
/// and freshness windows for the guards and the mock issuer alike, without
/// sleeping.
#[tokio::test(start_paused = true)]
async fn a_paused_clock_ages_tokens_and_freshness_without_sleeping() {
    let idp = MockIssuer::start(API).await.unwrap();
    let remote = AuthX::new(AuthXConfig::from_issuers([idp.issuer().unwrap()])).unwrap();
    let guard = RequireAuthLayer::new(remote);
    let token = idp.token().lifetime(Duration::from_secs(60)).issue();
    assert_eq!(status(&guard, Some(&token)).await, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(tower_authx::testing::skew() >= Duration::from_secs(60));
    assert_eq!(status(&guard, Some(&token)).await, StatusCode::UNAUTHORIZED);
    // The mock issuer's new tokens are made at the moved time, and pass.
    assert_eq!(
        status(&guard, Some(&idp.token().issue())).await,
        StatusCode::OK
    );

    // A login (`auth_time`) proves freshness for the configured window,
    // then does not.
    let fresh_within = AuthX::new(
        AuthXConfig::from_issuers([idp.issuer().unwrap()]).fresh_max_age(Duration::from_secs(300)),
    )
    .unwrap();
    let fresh_guard = tower_authx::RequireFreshLayer::new(fresh_within);
    let now = tower_authx::NumericDate::now().as_secs_f64() as u64;
    let login = idp
        .token()
        .lifetime(Duration::from_secs(900))
        .claim("auth_time", now)
        .issue();
    let fresh_status = |token: String| {
        let guard = fresh_guard.clone();
        async move {
            let request = Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::<Bytes>::default())
                .unwrap();
            let ok = service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
            });
            guard.layer(ok).oneshot(request).await.unwrap().status()
        }
    };
    assert_eq!(fresh_status(login.clone()).await, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(301)).await;
    assert_eq!(fresh_status(login).await, StatusCode::UNAUTHORIZED);
}

/// Implicit refresh on the paused clock: an hour-long session cookie is left
/// alone at first, and renewed once `tokio::time::advance` brings it within
/// the layer's ten minutes of its end.
#[tokio::test(start_paused = true)]
async fn a_paused_clock_brings_a_cookie_into_its_renewal_window() {
    use tower_authx::layer::ImplicitRefreshLayer;
    let authx = AuthX::new(
        AuthXConfig::from_secret(b"implicit-refresh-secret-32-bytes")
            .unwrap()
            .token_location([
                tower_authx::TokenLocation::Headers,
                tower_authx::TokenLocation::Cookies,
            ]),
    )
    .unwrap();
    let token = authx
        .access_token("alice")
        .fam("session-1")
        .auth_time(tower_authx::NumericDate::now())
        .lifetime(Duration::from_secs(3600))
        .issue()
        .unwrap();
    let renews = || {
        let service = RequireAuthLayer::new(authx.clone()).layer(
            ImplicitRefreshLayer::new(authx.clone()).layer(service_fn(
                |_req: Request<Full<Bytes>>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
                },
            )),
        );
        let request = Request::get("/")
            .header("cookie", format!("access_token_cookie={token}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        async move {
            let answer = service.oneshot(request).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
            answer
                .headers()
                .get_all("set-cookie")
                .iter()
                .any(|line| line.to_str().unwrap().starts_with("access_token_cookie="))
        }
    };
    assert!(!renews().await, "an hour left: not renewed");
    tokio::time::advance(Duration::from_secs(3600 - 300)).await;
    assert!(renews().await, "five minutes left: renewed");
}
