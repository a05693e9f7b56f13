//! A resource server: serves the seed's `/protected` and `/fresh-required` with
//! the same JSON, verifying tokens only through the issuer's JWKS. It holds no
//! secret and cannot issue tokens.
//!
//! ```sh
//! openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out issuer.pem
//! JWT_ALGORITHM=ES256 JWT_PRIVATE_KEY_FILE=issuer.pem cargo run --example fresh_token &
//! JWKS_URL=http://127.0.0.1:8000/.well-known/jwks.json PORT=8001 \
//!     cargo run --example resource_server --features jwks
//! ```
//!
//! `HOST` (127.0.0.1), `PORT` (8001), `JWKS_URL` (required); `JWKS_REFRESH_SECS` (300) and
//! `JWKS_MIN_REFETCH_SECS` (10) tune the key cache.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{AuthX, AuthXConfig, RemoteJwks, RequireAuthLayer, RequireFreshLayer};

#[path = "shared/mod.rs"]
mod shared;
use shared::Users;
use shared::responses::{Body, boxed, json_response, method_not_allowed, not_found, verified};

struct App {
    authx: AuthX,
    users: Users,
    access: RequireAuthLayer,
    fresh: RequireFreshLayer,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (host, port) = shared::address(8001)?;
    let url = std::env::var("JWKS_URL")
        .map_err(|_| "JWKS_URL is required (the issuer's /.well-known/jwks.json)")?;
    let mut jwks = RemoteJwks::new(&url)?;
    if let Some(secs) = env_secs("JWKS_REFRESH_SECS")? {
        jwks = jwks.refresh_interval(secs);
    }
    if let Some(secs) = env_secs("JWKS_MIN_REFETCH_SECS")? {
        jwks = jwks.min_refetch_interval(secs);
    }
    let authx = AuthX::new(shared::shared_settings(AuthXConfig::from_jwks(jwks)).await?)?;
    let app = Arc::new(App {
        access: RequireAuthLayer::new(authx.clone()),
        fresh: RequireFreshLayer::new(authx.clone()),
        users: Users::seed(),
        authx,
    });

    let listener = TcpListener::bind((host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let service = hyper::service::service_fn(move |req| route(req, app.clone()));
    shared::server::serve(listener, service).await;
    Ok(())
}

fn env_secs(name: &str) -> Result<Option<std::time::Duration>, Box<dyn std::error::Error>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(std::time::Duration::from_secs_f64(v.parse()?))),
        Err(_) => Ok(None),
    }
}

async fn route(req: Request<Incoming>, app: Arc<App>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path != "/protected" && path != "/fresh-required" {
        return Ok(not_found());
    }
    if req.method() != Method::GET {
        return Ok(method_not_allowed(&Method::GET));
    }
    let app2 = app.clone();
    let res = if path == "/protected" {
        boxed(
            app.access
                .layer(service_fn(move |r: Request<Incoming>| {
                    let app = app2.clone();
                    async move {
                        let claims = verified(&r);
                        let fresh = app.authx.is_fresh(claims);
                        Ok::<_, Infallible>(json_response(
                            StatusCode::OK,
                            shared::protected(claims, &app.users, fresh),
                        ))
                    }
                }))
                .oneshot(req)
                .await?,
        )
    } else {
        boxed(
            app.fresh
                .layer(service_fn(move |r: Request<Incoming>| {
                    let app = app2.clone();
                    async move {
                        Ok::<_, Infallible>(json_response(
                            StatusCode::OK,
                            shared::fresh_required(verified(&r), &app.users),
                        ))
                    }
                }))
                .oneshot(req)
                .await?,
        )
    };
    Ok(res)
}
