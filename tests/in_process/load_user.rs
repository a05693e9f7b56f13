//! Loading the user (AuthX's `set_subject_getter`): after every check, once
//! per request; unknown users and failing loaders refused, never let through.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_authx::layer::{LoadError, LoadUserLayer, UnknownUser, User};
use tower_authx::{AuthX, AuthXConfig, Claims, RequireAuthLayer};

#[derive(Clone, Debug, PartialEq)]
struct Account {
    name: String,
}

fn authx() -> AuthX {
    AuthX::new(AuthXConfig::from_secret(support::SECRET).unwrap()).unwrap()
}

/// A loader over a little directory: `alice` exists, `db-down` fails,
/// anyone else is unknown; it counts its calls and awaits like a database.
type Loading = std::pin::Pin<Box<dyn Future<Output = Result<Option<Account>, LoadError>> + Send>>;

fn loader(calls: Arc<AtomicUsize>) -> impl Fn(&Claims) -> Loading + Clone {
    move |claims: &Claims| {
        calls.fetch_add(1, Ordering::SeqCst);
        let sub = claims.sub.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            match sub.as_str() {
                "alice" => Ok(Some(Account {
                    name: "Alice".into(),
                })),
                "db-down" => Err(LoadError::from("connection refused (10.0.0.7:5432)")),
                _ => Ok(None),
            }
        })
    }
}

fn inner() -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = std::convert::Infallible,
> + Clone {
    service_fn(|req: Request<Full<Bytes>>| async move {
        let name = req
            .extensions()
            .get::<User<Account>>()
            .map(|User(account)| account.name.clone())
            .unwrap_or_else(|| "NO USER".into());
        Ok::<_, std::convert::Infallible>(Response::new(Full::from(name)))
    })
}

fn request(token: &str, grpc: bool) -> Request<Full<Bytes>> {
    let mut request = Request::post("/me").header("authorization", format!("Bearer {token}"));
    if grpc {
        request = request.header("content-type", "application/grpc");
    }
    request.body(Full::default()).unwrap()
}

#[tokio::test]
async fn the_user_is_loaded_after_every_check_and_refusals_never_reach_the_service() {
    let authx = authx();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = ServiceBuilder::new()
        .layer(RequireAuthLayer::new(authx.clone()))
        .layer(LoadUserLayer::new(authx.clone(), loader(calls.clone())))
        .service(inner());
    let token = |sub: &str| authx.access_token(sub).issue().unwrap();

    let res = service
        .clone()
        .oneshot(request(&token("alice"), false))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "Alice");

    let res = service
        .clone()
        .oneshot(request(&token("bob"), false))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    let res = service
        .clone()
        .oneshot(request(&token("db-down"), false))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(
        !String::from_utf8_lossy(&body).contains("10.0.0.7"),
        "the cause leaked"
    );

    // gRPC keeps its shape: UNAUTHENTICATED, UNAVAILABLE.
    for (sub, status) in [("bob", "16"), ("db-down", "14")] {
        let res = service
            .clone()
            .oneshot(request(&token(sub), true))
            .await
            .unwrap();
        assert_eq!(res.headers()["grpc-status"], status, "{sub}");
    }

    // A bad token is the guard's: the loader never runs for it.
    let before = calls.load(Ordering::SeqCst);
    let res = service
        .clone()
        .oneshot(request("not.a.token", false))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn an_unknown_user_can_be_forbidden_instead() {
    let authx = authx();
    let service = ServiceBuilder::new()
        .layer(RequireAuthLayer::new(authx.clone()))
        .layer(
            LoadUserLayer::new(authx.clone(), loader(Arc::default()))
                .unknown_user(UnknownUser::Forbidden),
        )
        .service(inner());
    let bob = authx.access_token("bob").issue().unwrap();
    let res = service.oneshot(request(&bob, false)).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn stacked_guards_load_the_user_once() {
    let authx = authx();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = ServiceBuilder::new()
        .layer(RequireAuthLayer::new(authx.clone()))
        .layer(LoadUserLayer::new(authx.clone(), loader(calls.clone())))
        .layer(RequireAuthLayer::new(authx.clone()))
        .layer(LoadUserLayer::new(authx.clone(), loader(calls.clone())))
        .service(inner());
    let alice = authx.access_token("alice").issue().unwrap();
    let res = service.oneshot(request(&alice, false)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_a_guard_nothing_is_loaded_and_nothing_gets_through() {
    let authx = authx();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = ServiceBuilder::new()
        .layer(LoadUserLayer::new(authx.clone(), loader(calls.clone())))
        .service(inner());
    let alice = authx.access_token("alice").issue().unwrap();
    let res = service.oneshot(request(&alice, false)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Issue 38, finding 3: a client's own token whose `sub` (its client id)
/// equals a user's name does not load that user, nor list or end that
/// user's sessions; a route that says it accepts clients hands it on.
#[tokio::test]
async fn a_clients_token_named_like_a_user_is_not_that_user() {
    let authx = authx();
    let calls = Arc::new(AtomicUsize::new(0));
    let now = support::now();
    let forged = |payload: serde_json::Value| {
        let mut payload = payload;
        payload["exp"] = (now + 600).into();
        support::forge(
            support::HS256,
            &payload.to_string(),
            support::SECRET.as_bytes(),
        )
    };
    let service = |layer: LoadUserLayer<_>| {
        ServiceBuilder::new()
            .layer(RequireAuthLayer::new(authx.clone()))
            .layer(layer)
            .service(inner())
    };
    for (why, payload) in [
        (
            "RFC 9068: sub is the client_id",
            serde_json::json!({"sub": "alice", "client_id": "alice"}),
        ),
        (
            "Okta: sub is the cid",
            serde_json::json!({"sub": "alice", "cid": "alice"}),
        ),
        (
            "Auth0: gty client-credentials",
            serde_json::json!({"sub": "alice", "gty": "client-credentials"}),
        ),
        (
            "Entra: idtyp app",
            serde_json::json!({"sub": "alice", "idtyp": "app"}),
        ),
    ] {
        let token = forged(payload);
        let claims: Claims = authx
            .verify(&token, &tower_authx::Requirement::access())
            .await
            .unwrap();
        assert!(claims.is_client(), "{why}");
        let before = calls.load(Ordering::SeqCst);
        let res = service(LoadUserLayer::new(authx.clone(), loader(calls.clone())))
            .oneshot(request(&token, false))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            before,
            "{why}: the loader ran"
        );
        let sessions = authx.sessions(&claims).await.unwrap_err();
        assert_eq!(sessions.status(), StatusCode::FORBIDDEN, "{why}");
        assert!(authx.end_other_sessions(&claims).await.is_err(), "{why}");
        // A route that takes clients loads whatever its loader says.
        let res =
            service(LoadUserLayer::new(authx.clone(), loader(calls.clone())).accept_clients())
                .oneshot(request(&token, false))
                .await
                .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{why}");
    }
    // A user's token issued to another client is the user's.
    let token = forged(serde_json::json!({"sub": "alice", "client_id": "web", "azp": "web"}));
    let res = service(LoadUserLayer::new(authx.clone(), loader(calls.clone())))
        .oneshot(request(&token, false))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Alice");
}
