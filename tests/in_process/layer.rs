//! The layers in process: what reaches the inner service, what it sees in the
//! extensions, and how the Tower contract is kept.

use crate::support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_authx::{
    AuthError, AuthX, AuthXConfig, Claims, NumericDate, Refusal, RequireAuthLayer,
    RequireFreshLayer,
};

const SECRET: &[u8] = b"layer-tests-secret-of-32-bytes!!";

fn authx() -> AuthX {
    AuthX::new(AuthXConfig::from_secret(SECRET).unwrap()).unwrap()
}

fn request(token: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::get("/").body(Full::default()).unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

/// An inner service that counts its calls and answers 200 with the subject.
fn counting(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    service_fn(move |req: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let sub = req
            .extensions()
            .get::<Claims>()
            .map(|c| c.sub.clone())
            .unwrap_or_default();
        async move { Ok::<_, Infallible>(Response::new(Full::from(sub))) }
    })
}

async fn body_text<B: Body<Data = Bytes>>(body: B) -> String
where
    B::Error: std::fmt::Debug,
{
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn the_inner_service_is_never_called_on_a_rejection() {
    let calls = Arc::new(AtomicUsize::new(0));
    let authx = authx();
    let auth = RequireAuthLayer::new(authx.clone()).layer(counting(calls.clone()));
    let fresh = RequireFreshLayer::new(authx.clone()).layer(counting(calls.clone()));
    let stale = authx.access_token("u").issue().unwrap();
    let refresh = authx.refresh_token("u").issue().unwrap();
    let foreign = AuthX::new(AuthXConfig::from_secret([9u8; 32]).unwrap())
        .unwrap()
        .access_token("u")
        .fresh(true)
        .issue()
        .unwrap();
    for token in [
        None,
        Some("garbage"),
        Some(refresh.as_str()),
        Some(foreign.as_str()),
    ] {
        let res = auth.clone().oneshot(request(token)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = fresh.clone().oneshot(request(Some(&stale))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let res = auth.oneshot(request(Some(&stale))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res.into_body()).await, "u");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn your_own_claims_reach_the_handler_typed() {
    #[derive(Clone, Debug, Deserialize)]
    struct Mine {
        role: String,
    }
    let authx = authx();
    let token = authx
        .access_token("u")
        .extra(&serde_json::json!({"role": "admin"}))
        .issue()
        .unwrap();
    let svc = RequireAuthLayer::new(authx)
        .with_claims::<Mine>()
        .layer(service_fn(|req: Request<Full<Bytes>>| async move {
            let claims = req.extensions().get::<Claims<Mine>>().unwrap();
            Ok::<_, Infallible>(Response::new(Full::from(claims.extra.role.clone())))
        }));
    let res = svc.oneshot(request(Some(&token))).await.unwrap();
    assert_eq!(body_text(res.into_body()).await, "admin");
}

#[tokio::test]
async fn an_inner_require_fresh_applies_its_own_policy_to_reused_claims() {
    // One verification and one store question for both guards is checked in
    // tests/in_process/revocation.rs (only_verified_tokens_reach_the_store_and_only_once).
    let outer = authx();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(RequireAuthLayer::new(outer.clone()))
        .layer(RequireFreshLayer::new(outer.clone()))
        .service(counting(calls.clone()));
    let fresh = outer.access_token("u").fresh(true).issue().unwrap();
    let res = svc.clone().oneshot(request(Some(&fresh))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let stale = outer.access_token("u").issue().unwrap();
    let res = svc.oneshot(request(Some(&stale))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_inner_guard_still_checks_the_token_type_of_reused_claims() {
    let authx = authx();
    let svc = ServiceBuilder::new()
        .layer(RequireAuthLayer::any_type(authx.clone()))
        .layer(RequireAuthLayer::new(authx.clone()))
        .service(counting(Arc::default()));
    let refresh = authx.refresh_token("u").issue().unwrap();
    let res = svc.oneshot(request(Some(&refresh))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_routes_take_refresh_tokens_only() {
    let authx = authx();
    let svc = RequireAuthLayer::refresh(authx.clone()).layer(counting(Arc::default()));
    let refresh = authx.refresh_token("u").issue().unwrap();
    let access = authx.access_token("u").fresh(true).issue().unwrap();
    assert_eq!(
        svc.clone()
            .oneshot(request(Some(&refresh)))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = svc.oneshot(request(Some(&access))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        body_text(res.into_body()).await,
        r#"{"detail":"'refresh' token required, 'access' token received"}"#
    );
}

/// A service that is ready only once `open` is set.
#[derive(Clone)]
struct Gate {
    open: Arc<std::sync::atomic::AtomicBool>,
}

impl Service<Request<Full<Bytes>>> for Gate {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.open.load(Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
        std::future::ready(Ok(Response::new(Full::default())))
    }
}

#[test]
fn poll_ready_is_the_inner_services() {
    let gate = Gate {
        open: Arc::default(),
    };
    let mut svc = RequireAuthLayer::new(authx()).layer(gate.clone());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_pending());
    gate.open.store(true, Ordering::SeqCst);
    assert!(svc.poll_ready(&mut cx).is_ready());
}

#[tokio::test]
async fn the_rejection_can_be_replaced() {
    let config = AuthXConfig::from_secret(SECRET)
        .unwrap()
        .on_reject(|refusal: Refusal<'_>| {
            let mut res = Response::new(Bytes::from(format!(
                "no entry to {}: {}",
                refusal.request.uri.path(),
                refusal.error
            )));
            *res.status_mut() = StatusCode::FORBIDDEN;
            res
        });
    let svc = RequireAuthLayer::new(AuthX::new(config).unwrap()).layer(counting(Arc::default()));
    let res = svc.oneshot(request(None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        body_text(res.into_body()).await,
        "no entry to /: Missing bearer token"
    );
}

#[tokio::test]
async fn a_custom_body_keeps_the_status_and_the_challenge() {
    let config = AuthXConfig::from_secret(SECRET)
        .unwrap()
        .on_reject(|refusal: Refusal<'_>| {
            let body = serde_json::json!({"error": {"message": refusal.detail}}).to_string();
            refusal.with_body(http::HeaderValue::from_static("application/json"), body)
        });
    let authx = AuthX::new(config).unwrap();
    let svc = RequireFreshLayer::new(authx.clone()).layer(counting(Arc::default()));
    let stale = authx.access_token("u").issue().unwrap();
    let res = svc.oneshot(request(Some(&stale))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"insufficient_user_authentication\"")
    );
    // The reason travels in the extensions, for logs and metrics outside.
    assert!(matches!(
        res.extensions().get::<AuthError>(),
        Some(AuthError::FreshTokenRequired { .. })
    ));
    let hint = res.body().size_hint().exact();
    let text = body_text(res.into_body()).await;
    assert_eq!(hint, Some(text.len() as u64));
    assert_eq!(text, r#"{"error":{"message":"Fresh token required"}}"#);
}

#[tokio::test]
async fn a_rejection_body_knows_its_exact_size() {
    let svc = RequireAuthLayer::new(authx()).layer(counting(Arc::default()));
    let res = svc.oneshot(request(None)).await.unwrap();
    let hint = res.body().size_hint().exact().unwrap();
    let text = body_text(res.into_body()).await;
    assert_eq!(hint, text.len() as u64);
}

#[tokio::test]
async fn header_name_and_scheme_are_configurable() {
    let config = AuthXConfig::from_secret(SECRET)
        .unwrap()
        .header_name(HeaderName::from_static("x-access-token"))
        .header_type("");
    let authx = AuthX::new(config).unwrap();
    let token = authx.access_token("u").issue().unwrap();
    let svc = RequireAuthLayer::new(authx).layer(counting(Arc::default()));
    let mut req = request(None);
    req.headers_mut()
        .insert("x-access-token", token.parse().unwrap());
    assert_eq!(
        svc.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    let res = svc.oneshot(request(Some(&token))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        body_text(res.into_body()).await,
        r#"{"detail":"Missing 'Bearer' in 'X-Access-Token' header."}"#
    );
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let config = AuthXConfig::from_secret(SECRET)
        .unwrap()
        .issuer("https://auth.example")
        .audience("api");
    let ours = AuthX::new(config).unwrap();
    let svc = RequireAuthLayer::new(ours.clone()).layer(counting(Arc::default()));
    let good = ours.access_token("u").issue().unwrap();
    assert_eq!(
        svc.clone()
            .oneshot(request(Some(&good)))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // Same key, no iss or aud: refused.
    let bare = authx().access_token("u").issue().unwrap();
    let res = svc.clone().oneshot(request(Some(&bare))).await.unwrap();
    assert_eq!(
        body_text(res.into_body()).await,
        r#"{"detail":"Invalid issuer"}"#
    );
    let other = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .issuer("https://auth.example")
            .audience("billing"),
    )
    .unwrap();
    let res = svc
        .oneshot(request(Some(&other.access_token("u").issue().unwrap())))
        .await
        .unwrap();
    assert_eq!(
        body_text(res.into_body()).await,
        r#"{"detail":"Invalid audience"}"#
    );
}

#[tokio::test]
async fn auth_time_within_max_age_is_fresh_and_the_challenge_names_max_age() {
    let config = AuthXConfig::from_secret(SECRET)
        .unwrap()
        .fresh_max_age(Duration::from_secs(300));
    let authx = AuthX::new(config).unwrap();
    let svc = RequireFreshLayer::new(authx.clone()).layer(counting(Arc::default()));
    let now = NumericDate::now().as_secs_f64() as u64;
    let recent = authx
        .access_token("u")
        .auth_time(NumericDate::from_secs(now - 60))
        .issue()
        .unwrap();
    assert_eq!(
        svc.clone()
            .oneshot(request(Some(&recent)))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let old = authx
        .access_token("u")
        .auth_time(NumericDate::from_secs(now - 600))
        .issue()
        .unwrap();
    let res = svc.oneshot(request(Some(&old))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_user_authentication""#),
        "{challenge}"
    );
    assert!(challenge.ends_with("max_age=300"), "{challenge}");
}

#[tokio::test]
async fn leeway_tolerates_small_clock_skew() {
    let strict = authx();
    let lenient = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .leeway(Duration::from_secs(30)),
    )
    .unwrap();
    let now = NumericDate::now().as_secs_f64() as u64;
    let just_expired = strict
        .access_token("u")
        .issued_at(NumericDate::from_secs(now - 100))
        .lifetime(Duration::from_secs(95))
        .issue()
        .unwrap();
    assert!(
        strict
            .verify_offline::<tower_authx::NoExtra>(
                &just_expired,
                &tower_authx::Requirement::access()
            )
            .is_err()
    );
    assert!(
        lenient
            .verify_offline::<tower_authx::NoExtra>(
                &just_expired,
                &tower_authx::Requirement::access()
            )
            .is_ok()
    );
}

#[test]
fn short_hmac_secrets_need_an_explicit_opt_in() {
    let err = AuthX::new(AuthXConfig::from_secret("your-secret-key").unwrap()).unwrap_err();
    assert!(err.to_string().contains("RFC 7518"), "{err}");
    assert!(
        AuthX::new(
            AuthXConfig::from_secret("your-secret-key")
                .unwrap()
                .danger_allow_weak_secret()
        )
        .is_ok()
    );
    let hs512 = tower_authx::Key::hmac(tower_authx::Algorithm::HS512, [1u8; 32]).unwrap();
    assert!(AuthX::new(AuthXConfig::new(hs512)).is_err());
}

#[test]
fn debug_output_never_shows_the_secret() {
    let config = AuthXConfig::from_secret("super-secret-value-that-must-not-leak").unwrap();
    let printed = format!("{config:?} {:?}", AuthX::new(config.clone()).unwrap());
    assert!(!printed.contains("super-secret"), "{printed}");
}

#[tokio::test]
async fn reserved_names_cannot_be_smuggled_in_as_extra_claims() {
    let authx = authx();
    let err = authx
        .access_token("u")
        .extra(&serde_json::json!({"fresh": true}))
        .issue()
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
}

#[tokio::test]
async fn scopes_all_of_and_any_of_with_authx_wildcards() {
    use tower_authx::RequireScopesLayer;
    let authx = authx();
    let token = authx
        .access_token("u")
        .scopes(["posts:read", "admin:*"])
        .issue()
        .unwrap();
    let allowed = [
        RequireScopesLayer::all(authx.clone(), ["posts:read", "admin:users:delete"]),
        RequireScopesLayer::all(authx.clone(), ["admin"]),
        RequireScopesLayer::any(authx.clone(), ["posts:write", "posts:read"]),
    ];
    for layer in allowed {
        let res = layer
            .layer(counting(Arc::default()))
            .oneshot(request(Some(&token)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = RequireScopesLayer::all(authx.clone(), ["posts:read", "posts:write"])
        .layer(counting(calls.clone()));
    let res = svc.clone().oneshot(request(Some(&token))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with(r#"Bearer error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.ends_with(r#"scope="posts:read posts:write""#),
        "{challenge}"
    );
    assert_eq!(
        body_text(res.into_body()).await,
        r#"{"detail":"Missing required scopes: ['posts:read', 'posts:write']. Provided: ['posts:read', 'admin:*']"}"#
    );
    // No scopes at all, and a bad token: still 403 and 401 respectively.
    let bare = authx.access_token("u").fresh(true).issue().unwrap();
    assert_eq!(
        svc.clone()
            .oneshot(request(Some(&bare)))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        svc.oneshot(request(Some("x.y.z"))).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

fn preflight() -> http::request::Builder {
    Request::options("/")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
}

#[tokio::test]
async fn cors_preflights_are_guarded_by_default() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = RequireFreshLayer::new(authx()).layer(counting(calls.clone()));
    let req = preflight().body(Full::<Bytes>::default()).unwrap();
    assert_eq!(
        svc.oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cors_preflight_pass_through_takes_only_what_can_be_nothing_but_a_preflight() {
    let passing = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .danger_pass_cors_preflight(),
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    // What a CORS layer answers a preflight.
    let cors = service_fn(move |_req: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut res = Response::new(Full::<Bytes>::default());
        res.headers_mut().insert(
            "access-control-allow-origin",
            http::HeaderValue::from_static("https://app.example"),
        );
        async move { Ok::<_, Infallible>(res) }
    });
    let svc = RequireFreshLayer::new(passing).layer(cors);
    let req = preflight().body(Full::<Bytes>::default()).unwrap();
    assert_eq!(
        svc.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Each of these could be a real call to a service behind the guard.
    let not_preflights: Vec<(&str, Request<Full<Bytes>>)> = vec![
        (
            "plain OPTIONS",
            Request::options("/").body(Full::default()).unwrap(),
        ),
        (
            "no Origin",
            Request::options("/")
                .header("access-control-request-method", "POST")
                .body(Full::default())
                .unwrap(),
        ),
        (
            "gRPC content type",
            preflight()
                .header("content-type", "application/grpc")
                .body(Full::default())
                .unwrap(),
        ),
        (
            "a body",
            preflight().body(Full::from("\0\0\0\0\0")).unwrap(),
        ),
        (
            "a content length",
            preflight()
                .header("content-length", "5")
                .body(Full::default())
                .unwrap(),
        ),
        (
            "chunked",
            preflight()
                .header("transfer-encoding", "chunked")
                .body(Full::default())
                .unwrap(),
        ),
        (
            "a credential",
            preflight()
                .header("authorization", "Bearer x")
                .body(Full::default())
                .unwrap(),
        ),
        (
            "a DPoP proof",
            preflight()
                .header("dpop", "x.y.z")
                .body(Full::default())
                .unwrap(),
        ),
        (
            "two request methods",
            preflight()
                .header("access-control-request-method", "GET")
                .body(Full::default())
                .unwrap(),
        ),
    ];
    for (what, req) in not_preflights {
        let status = svc.clone().oneshot(req).await.unwrap().status();
        assert!(status.is_client_error(), "{what}: {status}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{what} reached the service"
        );
    }
}

#[tokio::test]
async fn oauth_scope_claims_count_as_scopes() {
    use tower_authx::RequireScopesLayer;
    let authx = authx();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = RequireScopesLayer::all(authx.clone(), ["read", "admin:users"])
        .layer(counting(calls.clone()));
    let forge_with = |scope_claims: &str| {
        support::forge(
            support::HS256,
            &format!(
                r#"{{"sub":"u","exp":{},{scope_claims}}}"#,
                support::now() + 60
            ),
            SECRET,
        )
    };
    // RFC 9068 / Auth0 / Keycloak: one space-separated `scope` string.
    let token = forge_with(r#""scope":"openid read admin:users""#);
    let res = svc.clone().oneshot(request(Some(&token))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Okta: `scp` as a list; Entra: `scp` as a space-separated string.
    for scp in [
        r#""scp":["read","admin:users"]"#,
        r#""scp":"read admin:users""#,
    ] {
        let res = svc
            .clone()
            .oneshot(request(Some(&forge_with(scp))))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{scp}");
    }
    // Missing one: 403 naming what was granted, whatever claim carried it.
    let token = forge_with(r#""scope":"read""#);
    let res = svc.clone().oneshot(request(Some(&token))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        body_text(res.into_body())
            .await
            .contains("Provided: ['read']")
    );
    // Wrong types are not coerced: a list in `scope`, a number in `scp`.
    for bad in [r#""scope":["read","admin:users"]"#, r#""scp":5"#] {
        let res = svc
            .clone()
            .oneshot(request(Some(&forge_with(bad))))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// Issue 38, finding 9: every setting that weakens a check is named
/// `danger_…`, listed by `AuthXConfig::dangers` and shown by its `Debug`.
#[test]
fn every_weakening_setting_is_a_danger_shown_in_debug() {
    let plain = AuthXConfig::from_secret(support::SECRET).unwrap();
    assert!(plain.dangers().is_empty());
    assert!(format!("{plain:?}").contains("danger: []"));
    let weakened = AuthXConfig::from_secret(support::SECRET)
        .unwrap()
        .danger_allow_weak_secret()
        .danger_pass_cors_preflight()
        .danger_revocation_fail_open()
        .danger_client_cert_header_from(["127.0.0.1".parse().unwrap()])
        .cookies(
            tower_authx::CookieConfig::default()
                .danger_insecure()
                .danger_without_csrf_protection(),
        );
    let debug = format!("{weakened:?}");
    for name in [
        "danger_allow_weak_secret",
        "danger_pass_cors_preflight",
        "danger_revocation_fail_open",
        "danger_client_cert_header_from",
        "CookieConfig::danger_insecure",
        "CookieConfig::danger_without_csrf_protection",
    ] {
        assert!(weakened.dangers().contains(&name), "{name}");
        assert!(debug.contains(name), "{name} not in {debug}");
    }
}

/// The async entry points can be awaited in a spawned task (axum handlers,
/// `tokio::spawn`): their futures are `Send`, whatever they wait for.
#[test]
fn the_async_entry_points_are_send() {
    fn send<T: Send>(_: T) {}
    let authx =
        tower_authx::AuthX::new(tower_authx::AuthXConfig::from_secret(support::SECRET).unwrap())
            .unwrap();
    let request = http::Request::get("/").body(()).unwrap();
    let requirement = tower_authx::Requirement::access();
    send(authx.verify::<tower_authx::NoExtra>("t", &requirement));
    send(authx.authenticate::<tower_authx::NoExtra>(
        tower_authx::RequestHead::of(&request),
        &requirement,
    ));
    send(authx.dpop_key(tower_authx::RequestHead::of(&request)));
}

/// `Claims::is_fresh` reads all three lawful forms by the rules of the
/// `AuthX` that verified the claims: an `auth_time` within its
/// `fresh_max_age` is fresh; the same claims read any other way count only
/// what they say.
#[tokio::test]
async fn claims_know_whether_they_are_fresh_by_their_verifiers_rules() {
    let authx = tower_authx::AuthX::new(
        tower_authx::AuthXConfig::from_secret(support::SECRET)
            .unwrap()
            .fresh_max_age(std::time::Duration::from_secs(300)),
    )
    .unwrap();
    let now = tower_authx::NumericDate::now();
    let recent = authx.access_token("u").auth_time(now).issue().unwrap();
    let claims: tower_authx::Claims = authx
        .verify(&recent, &tower_authx::Requirement::access())
        .await
        .unwrap();
    assert!(
        claims.is_fresh(),
        "{:?} {:?}",
        claims.fresh,
        claims.auth_time
    );
    let by_hand: tower_authx::Claims =
        serde_json::from_value(support::payload_of(&recent)).unwrap();
    assert!(
        !by_hand.is_fresh(),
        "no AuthX's rules: auth_time alone says nothing"
    );
    let written = authx.access_token("u").fresh(true).issue().unwrap();
    let claims: tower_authx::Claims = authx
        .verify(&written, &tower_authx::Requirement::access())
        .await
        .unwrap();
    assert!(claims.is_fresh());
}
