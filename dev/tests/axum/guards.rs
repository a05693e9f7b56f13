//! Every public way to build each guard refuses what the guard's name promises
//! to refuse: `::new` (or `::all` / `::any`), the layer, `ServiceBuilder`, and
//! axum's `route_layer` and per-route `layer`.

use std::convert::Infallible;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_authx::{
    AuthX, AuthXConfig, RequireAuth, RequireAuthLayer, RequireFresh, RequireFreshLayer,
    RequireScopes, RequireScopesLayer,
};

fn authx() -> AuthX {
    AuthX::new(AuthXConfig::from_secret(b"guards-tests-secret-of-32-bytes!").unwrap()).unwrap()
}

fn ok()
-> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    service_fn(|_req| async { Ok::<_, Infallible>(Response::new(Full::from("in"))) })
}

fn request(token: &str) -> Request<Full<Bytes>> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

async fn status<S, B>(svc: S, token: &str) -> StatusCode
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    svc.oneshot(request(token)).await.unwrap().status()
}

async fn axum_status(router: Router, token: &str) -> StatusCode {
    let req = Request::get("/r")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    router.oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn every_way_to_build_require_fresh_refuses_a_non_fresh_token() {
    let authx = authx();
    let stale = authx.access_token("u").issue().unwrap();
    let fresh = authx.access_token("u").fresh(true).issue().unwrap();
    let refused = StatusCode::UNAUTHORIZED;

    let built = RequireFresh::new(ok(), authx.clone());
    assert_eq!(
        status(built.clone(), &stale).await,
        refused,
        "RequireFresh::new"
    );
    assert_eq!(
        status(built, &fresh).await,
        StatusCode::OK,
        "RequireFresh::new"
    );

    let layered = RequireFreshLayer::new(authx.clone()).layer(ok());
    assert_eq!(status(layered, &stale).await, refused, "RequireFreshLayer");

    let stacked = ServiceBuilder::new()
        .layer(RequireFreshLayer::new(authx.clone()))
        .service(ok());
    assert_eq!(status(stacked, &stale).await, refused, "ServiceBuilder");

    let below_auth = ServiceBuilder::new()
        .layer(RequireAuthLayer::new(authx.clone()))
        .layer(RequireFreshLayer::new(authx.clone()))
        .service(ok());
    assert_eq!(
        status(below_auth, &stale).await,
        refused,
        "inside RequireAuth"
    );

    let route_layer = Router::new()
        .route("/r", get(|| async { "in" }))
        .route_layer(RequireFreshLayer::new(authx.clone()));
    assert_eq!(
        axum_status(route_layer.clone(), &stale).await,
        refused,
        "route_layer"
    );
    assert_eq!(
        axum_status(route_layer, &fresh).await,
        StatusCode::OK,
        "route_layer"
    );

    let per_route = Router::new().route(
        "/r",
        get(|| async { "in" }).layer(RequireFreshLayer::new(authx.clone())),
    );
    assert_eq!(
        axum_status(per_route, &stale).await,
        refused,
        "per-route layer"
    );
}

#[tokio::test]
async fn every_way_to_build_require_scopes_refuses_a_token_without_the_scopes() {
    let authx = authx();
    let reader = authx.access_token("u").scopes(["read"]).issue().unwrap();
    let writer = authx.access_token("u").scopes(["write"]).issue().unwrap();
    let forbidden = StatusCode::FORBIDDEN;

    let all = RequireScopes::all(ok(), authx.clone(), ["write"]);
    assert_eq!(
        status(all.clone(), &reader).await,
        forbidden,
        "RequireScopes::all"
    );
    assert_eq!(
        status(all, &writer).await,
        StatusCode::OK,
        "RequireScopes::all"
    );
    let any = RequireScopes::any(ok(), authx.clone(), ["write", "admin"]);
    assert_eq!(status(any, &reader).await, forbidden, "RequireScopes::any");

    let layered = RequireScopesLayer::all(authx.clone(), ["write"]).layer(ok());
    assert_eq!(
        status(layered, &reader).await,
        forbidden,
        "RequireScopesLayer"
    );

    let stacked = ServiceBuilder::new()
        .layer(RequireAuthLayer::new(authx.clone()))
        .layer(RequireScopesLayer::any(authx.clone(), ["write"]))
        .service(ok());
    assert_eq!(status(stacked, &reader).await, forbidden, "ServiceBuilder");

    let route_layer = Router::new()
        .route("/r", get(|| async { "in" }))
        .route_layer(RequireScopesLayer::all(authx.clone(), ["write"]));
    assert_eq!(
        axum_status(route_layer, &reader).await,
        forbidden,
        "route_layer"
    );
}

/// A scope guard that names no scope could only let every token through or
/// none: it is refused when built (a panic at start, naming the slip).
#[test]
fn a_scope_guard_that_names_no_scope_is_refused_when_built() {
    let authx = authx();
    let none: [&str; 0] = [];
    let all = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        RequireScopes::all(ok(), authx.clone(), none)
    }));
    assert!(all.is_err(), "RequireScopes::all with no scope was built");
    let any = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        RequireScopes::any(ok(), authx, none)
    }));
    assert!(any.is_err(), "RequireScopes::any with no scope was built");
}

#[tokio::test]
async fn require_auth_new_refuses_a_refresh_token() {
    let authx = authx();
    let refresh = authx.refresh_token("u").issue().unwrap();
    let built = RequireAuth::new(ok(), authx);
    assert_eq!(status(built, &refresh).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn claims_verified_by_another_authx_are_verified_again() {
    // The outer guard trusts another issuer's key; the inner one must not
    // take its word for it.
    let outer = AuthX::new(AuthXConfig::from_secret([1u8; 32]).unwrap()).unwrap();
    let inner = authx();
    let foreign = outer.access_token("u").fresh(true).issue().unwrap();
    let svc = ServiceBuilder::new()
        .layer(RequireAuthLayer::new(outer))
        .layer(RequireFreshLayer::new(inner.clone()))
        .service(ok());
    assert_eq!(status(svc, &foreign).await, StatusCode::UNAUTHORIZED);
}

/// A composed rule is one line per route, and the handler takes the token's
/// permission set as an extractor.
#[tokio::test]
async fn a_composed_rule_guards_an_axum_route_and_hands_over_the_permissions() {
    use tower_authx::{Idp, Permissions, Requirement, Rule};
    let authx = AuthX::new(
        AuthXConfig::from_secret(b"guards-tests-secret-of-32-bytes!")
            .unwrap()
            .permissions(Idp::authx()),
    )
    .unwrap();
    let orders = Requirement::access().rule(Rule::any_of([
        Rule::all_scopes(["orders:write"]),
        Rule::any_role(["admin"]),
    ]));
    let router =
        Router::new().route(
            "/r",
            get(|permissions: Permissions| async move {
                permissions.iter().collect::<Vec<_>>().join(",")
            })
            .route_layer(authx.guard(orders).unwrap()),
        );
    let admin = authx
        .access_token("a")
        .extra(&serde_json::json!({"roles": ["admin", "staff"]}))
        .issue()
        .unwrap();
    let writer = authx
        .access_token("w")
        .scopes(["orders:write"])
        .issue()
        .unwrap();
    let neither = authx.access_token("n").issue().unwrap();
    let req = Request::get("/r")
        .header("authorization", format!("Bearer {admin}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, "admin,staff");
    assert_eq!(axum_status(router.clone(), &writer).await, StatusCode::OK);
    assert_eq!(axum_status(router, &neither).await, StatusCode::FORBIDDEN);
}

/// The loaded user as an axum extractor, and the 500 that names the fix
/// where no loader ran.
#[tokio::test]
async fn the_loaded_user_is_an_axum_extractor() {
    use tower_authx::layer::{LoadUserLayer, User};
    #[derive(Clone)]
    struct Account(String);
    let authx = authx();
    let loader = |claims: &tower_authx::Claims| {
        let sub = claims.sub.clone();
        async move { Ok(Some(Account(format!("account of {sub}")))) }
    };
    let router = Router::new()
        .route(
            "/r",
            get(|User(account): User<Account>| async move { account.0 })
                .route_layer(LoadUserLayer::new(authx.clone(), loader))
                .route_layer(RequireAuthLayer::new(authx.clone())),
        )
        .route(
            "/unloaded",
            get(|User(account): User<Account>| async move { account.0 })
                .route_layer(RequireAuthLayer::new(authx.clone())),
        );
    let token = authx.access_token("ada").issue().unwrap();
    let get_path = |path: &str| {
        Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let res = router.clone().oneshot(get_path("/r")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, "account of ada");
    let res = router.oneshot(get_path("/unloaded")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("LoadUserLayer"));
}

/// A handler that verifies by itself returns `authx.verify(..).await?`: the
/// refusal is the guards' default answer (status, challenge, JSON detail).
#[tokio::test]
async fn a_handler_returns_an_auth_error_as_the_guards_would_answer() {
    use axum::extract::State;
    use http_body_util::BodyExt;
    async fn handler(
        State(authx): State<AuthX>,
        headers: http::HeaderMap,
    ) -> Result<String, tower_authx::AuthError> {
        let token = headers
            .get("x-token")
            .and_then(|v| v.to_str().ok())
            .ok_or(tower_authx::AuthError::MissingToken)?;
        let claims: tower_authx::Claims = authx
            .verify(token, &tower_authx::Requirement::fresh())
            .await?;
        Ok(claims.sub)
    }
    let authx = authx();
    let router = Router::new()
        .route("/r", get(handler))
        .with_state(authx.clone());
    let call = |token: Option<String>| {
        let router = router.clone();
        async move {
            let mut req = Request::get("/r");
            if let Some(token) = token {
                req = req.header("x-token", token);
            }
            let res = router
                .oneshot(req.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap();
            let (parts, body) = res.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let fresh = authx.access_token("u").fresh(true).issue().unwrap();
    let (parts, body) = call(Some(fresh)).await;
    assert_eq!((parts.status, body.as_str()), (StatusCode::OK, "u"));
    let stale = authx.access_token("u").issue().unwrap();
    let (parts, body) = call(Some(stale)).await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, r#"{"detail":"Fresh token required"}"#);
    assert!(
        parts.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"insufficient_user_authentication\"")
    );
    assert!(parts.extensions.get::<tower_authx::AuthError>().is_some());
    let (parts, _) = call(Some("garbage".into())).await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    let (parts, _) = call(None).await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
}
