//! DPoP through every guard builder, axum's `route_layer` included.

use crate::support;

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use support::dpop::ProofKey;
use tower::ServiceExt;
use tower_authx::{AuthX, AuthXConfig, Dpop, RequestHead, RequireAuthLayer};

const BASE: &str = "https://api.example.com";

fn authx() -> AuthX {
    AuthX::new(
        AuthXConfig::from_secret(support::SECRET)
            .unwrap()
            .dpop(Dpop::new(BASE)),
    )
    .unwrap()
}

/// Every public way to build a guard checks DPoP the same: RequireFresh and
/// RequireScopes layers, `::new`, ServiceBuilder, and axum's `route_layer`,
/// each against a bound token as Bearer and a replayed proof.
#[tokio::test]
async fn every_guard_builder_refuses_a_bound_bearer_and_a_replayed_proof() {
    use axum::Router;
    use axum::routing::get;
    use tower_authx::{RequireFresh, RequireFreshLayer, RequireScopesLayer};

    let authx = authx();
    let key = ProofKey::es256();
    let proof = key.proof("POST", "https://api.example.com/login", None);
    let login = Request::post("/login")
        .header("dpop", proof)
        .body(())
        .unwrap();
    let bound = authx
        .dpop_key(RequestHead::of(&login))
        .await
        .unwrap()
        .unwrap();
    let token = authx
        .token_pair("user1")
        .scopes(["read"])
        .bound_to(&bound)
        .issue()
        .unwrap()
        .access_token;
    let ok = || async { "ok" };
    let app = Router::new()
        .route(
            "/fresh",
            get(ok).route_layer(RequireFreshLayer::new(authx.clone())),
        )
        .route(
            "/scoped",
            get(ok).route_layer(RequireScopesLayer::all(authx.clone(), ["read"])),
        )
        .route(
            "/built",
            get(ok).route_layer(
                tower::ServiceBuilder::new().layer(RequireAuthLayer::new(authx.clone())),
            ),
        )
        .route_service(
            "/new",
            RequireFresh::new(
                tower::service_fn(|_req: Request<axum::body::Body>| async {
                    Ok::<_, Infallible>(Response::new(axum::body::Body::from("ok")))
                }),
                authx.clone(),
            ),
        );
    for path in ["/fresh", "/scoped", "/built", "/new"] {
        let url = format!("{BASE}{path}");
        let call = |auth: String, proof: Option<String>| {
            let mut request = Request::get(path).header("authorization", auth);
            if let Some(proof) = proof {
                request = request.header("dpop", proof);
            }
            app.clone()
                .oneshot(request.body(axum::body::Body::empty()).unwrap())
        };
        let proof = key.proof("GET", &url, Some(&token));
        let res = call(format!("DPoP {token}"), Some(proof.clone()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let res = call(format!("DPoP {token}"), Some(proof)).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "{path}: replayed proof"
        );
        let res = call(format!("Bearer {token}"), None).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "{path}: bound token as Bearer"
        );
    }
}
