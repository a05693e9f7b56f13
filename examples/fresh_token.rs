//! AuthX's fresh-token server (its FastAPI example) on hyper, guarded by
//! tower-authx: same routes, same JSON, same statuses.
//!
//! ```sh
//! cargo run --example fresh_token          # HOST=127.0.0.1 PORT=8000 JWT_SECRET_KEY=your-secret-key
//! curl -X POST localhost:8000/login -H 'Content-Type: application/json' \
//!      -d '{"username":"user1","password":"password1"}'
//! ```
//!
//! Beyond AuthX's example: `/login` also answers a `refresh_token`; `/refresh` takes
//! either the fresh access token (as AuthX's walkthrough does) or a refresh
//! token, which it rotates (a new refresh token comes back; presenting the old one
//! again revokes the whole session); `POST /logout` revokes the presented token and
//! its session; `GET /.well-known/jwks.json` publishes the public keys (with an
//! asymmetric `JWT_ALGORITHM` and `JWT_PRIVATE_KEY_FILE`). Revocations live in memory, or in Redis when `REDIS_URL` is set
//! (build with `--features redis`), shared by every instance. `JWT_VERIFIED_CACHE=<n>`
//! turns on the verified-token cache.
//!
//! A second factor (RFC 9470 step-up): `/login` takes an optional `"otp"`
//! (the demo accepts `"000000"`) and then issues tokens with `amr: ["pwd",
//! "otp"]`; `GET /mfa-required` takes only those, and answers others 401
//! `insufficient_user_authentication`.
//!
//! DPoP (RFC 9449): a `/login` with a `DPoP` proof header answers tokens bound
//! to the proof's key (`"token_type": "DPoP"`); they are then presented as
//! `Authorization: DPoP <token>` with a fresh proof on every request, and
//! `/refresh` keeps them bound. `PUBLIC_URL` is the base URL proofs name in
//! `htu` (default `http://HOST:PORT`); `DPOP_NONCE_SECRET` turns on server nonces.
//!
//! Sessions (AuthX's `list_sessions` / `revoke_session`): each login is
//! listed with its `User-Agent` and client address; `GET /sessions` answers
//! the caller's live sessions (`id`, `created`, `last_refreshed`,
//! `user_agent`, `ip`, `current`), `DELETE /sessions/{id}` ends one of them
//! (404 for any other id) and `DELETE /sessions` all but the caller's.
//!
//! Where tokens are read, as AuthX's `JWT_TOKEN_LOCATION` says:
//! comma-separated, in order, among `headers` (the default), `cookies`,
//! `query` and `json` (a member of an `application/json` body: `JWT_JSON_KEY`,
//! default `access_token`, or `JWT_REFRESH_JSON_KEY`, default `refresh_token`,
//! on `/refresh`).
//!
//! Operating it: `RUST_LOG` filters the logs (stderr; default `warn`). The axum
//! example (`dev/examples/axum.rs`) serves the same API with `GET /metrics`.
//!
//! Outside this repository: copy this file into a new crate as `src/main.rs`,
//! and `examples/shared/` as `src/shared/`, with these lines in its `Cargo.toml`
//! (`dev/copy-out-examples` builds it exactly so; until tower-authx is
//! published, `path` names a checkout of it):
//!
//! ```toml
//! [dependencies]
//! tower-authx = { path = "../tower-authx" }
//! bytes = "1"
//! http = "1"
//! http-body = "1"
//! http-body-util = "0.1"
//! hyper = { version = "1", features = ["server", "http1"] }
//! hyper-util = { version = "0.1", features = ["tokio", "server", "http1"] }
//! pin-project-lite = "0.2"
//! serde = { version = "1", features = ["derive"] }
//! serde_json = { version = "1", features = ["preserve_order"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread", "net", "time", "signal"] }
//! tower = { version = "0.5", features = ["util"] }
//! tracing-subscriber = { version = "0.3", default-features = false, features = ["fmt", "std"] }
//!
//! [features]
//! redis = ["tower-authx/redis"]
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::layer::{EitherBody, JsonTokenLayer};
use tower_authx::{
    AuthError, AuthX, DpopKey, RequestHead, RequireAuthLayer, RequireFreshLayer, Requirement,
    TokenLocation, TokenType,
};

/// A request as the routes get it: its body read whole when it is JSON and
/// `json` a token location, untouched otherwise.
type In = Request<EitherBody<Incoming>>;

#[path = "shared/mod.rs"]
mod shared;
use shared::responses::{
    Body, boxed, detail, json_response, method_not_allowed, not_found, token_response, verified,
};
use shared::{Login, Users};

struct App {
    authx: AuthX,
    users: Users,
    any_token: RequireAuthLayer,
    access: RequireAuthLayer,
    fresh: RequireFreshLayer,
    mfa: RequireAuthLayer,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::observability::init()?;
    let (host, port) = shared::address(8000)?;
    let listener = TcpListener::bind((host.as_str(), port)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    let config = shared::shared_settings(shared::config_from_env()?).await?;
    let config = shared::locations_from_env(config, &[TokenLocation::Headers])?;
    let authx = AuthX::new(shared::with_dpop(config, &shared::public_url(addr)).await?)?;
    // Reads a JSON body once for its token, where `json` is a location, on
    // the routes that take a token (not /login, not a 404).
    let json = JsonTokenLayer::new(authx.clone()).only_paths([
        "/refresh",
        "/logout",
        "/protected",
        "/fresh-required",
        "/mfa-required",
        "/sessions",
        "/sessions/",
    ]);
    let app = Arc::new(App {
        any_token: RequireAuthLayer::any_type(authx.clone()),
        access: RequireAuthLayer::new(authx.clone()),
        fresh: RequireFreshLayer::new(authx.clone()),
        mfa: authx.guard(Requirement::access().amr(["otp"]))?,
        users: Users::seed(),
        authx,
    });

    println!("listening on http://{addr}");
    let service = hyper::service::service_fn(move |req| {
        let app = app.clone();
        let answer = json
            .layer(service_fn(move |req| route(req, app.clone())))
            .oneshot(req);
        shared::server::in_time(answer)
    });
    shared::server::serve(listener, service).await;
    Ok(())
}

async fn route(req: In, app: Arc<App>) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/sessions" || req.uri().path().starts_with("/sessions/") {
        return sessions_route(req, app).await;
    }
    let allowed = match req.uri().path() {
        "/" => Method::GET,
        "/login" | "/refresh" | "/logout" => Method::POST,
        "/protected" | "/fresh-required" | "/mfa-required" | "/.well-known/jwks.json" => {
            Method::GET
        }
        _ => return Ok(not_found()),
    };
    if req.method() != allowed {
        return Ok(method_not_allowed(&allowed));
    }
    let app2 = app.clone();
    let res = match req.uri().path() {
        "/" => boxed(json_response(StatusCode::OK, shared::root())),
        "/login" => boxed(login(req, &app).await),
        "/.well-known/jwks.json" => {
            let mut res = Response::new(Full::new(Bytes::from(app.authx.jwks().to_owned())));
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            boxed(res)
        }
        "/refresh" => boxed(
            app.any_token
                .layer(service_fn(move |r| refresh(r, app2.clone())))
                .oneshot(req)
                .await?,
        ),
        "/logout" => boxed(
            app.any_token
                .layer(service_fn(move |r| logout(r, app2.clone())))
                .oneshot(req)
                .await?,
        ),
        "/protected" => boxed(
            app.access
                .layer(service_fn(move |r| protected(r, app2.clone())))
                .oneshot(req)
                .await?,
        ),
        "/mfa-required" => boxed(
            app.mfa
                .layer(service_fn(move |r| {
                    about_user(r, app2.clone(), shared::mfa_required)
                }))
                .oneshot(req)
                .await?,
        ),
        _ => boxed(
            app.fresh
                .layer(service_fn(move |r| {
                    about_user(r, app2.clone(), shared::fresh_required)
                }))
                .oneshot(req)
                .await?,
        ),
    };
    Ok(res)
}

async fn login(req: In, app: &App) -> Response<Full<Bytes>> {
    let (head, body) = req.into_parts();
    let body = match shared::read_body(body).await {
        Ok(body) => body,
        Err((status, why)) => return detail(status, why),
    };
    let user: Login = match shared::parse_json(&body, shared::LOGIN_FIELDS) {
        Ok(user) => user,
        Err((status, why)) => return detail(status, why),
    };
    if !app.users.check(&user) {
        let mut res = detail(StatusCode::UNAUTHORIZED, shared::BAD_CREDENTIALS);
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    // A DPoP proof binds the tokens to the client's key (its client address,
    // in the extensions, bounds what one client's login proofs may hold).
    let request = RequestHead::from_parts(&head);
    // A second factor: the tokens say how the user authenticated.
    let pair = match shared::second_factor(&user) {
        Ok(Some(amr)) => app.authx.token_pair(user.username).amr(amr),
        Ok(None) => app.authx.token_pair(user.username),
        Err((status, why)) => {
            let mut res = detail(status, why);
            res.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return res;
        }
    };
    let pair = match app.authx.dpop_key(request).await {
        Ok(Some(key)) => pair.bound_to(&key).issue(),
        Ok(None) => pair.issue(),
        Err(error) => return app.authx.reject(&error, request).map(Full::new),
    };
    // The session, listed with where the login came from (GET /sessions).
    if let Ok(pair) = &pair {
        let user_agent = head
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let ip = head.extensions.get::<SocketAddr>().map(SocketAddr::ip);
        if let Err(error) = app
            .authx
            .track_session(&pair.refresh_token, user_agent, ip)
            .await
        {
            return app.authx.reject(&error, request).map(Full::new);
        }
    }
    match pair {
        Ok(pair) => token_response(
            json!({"fresh_token": pair.access_token, "token_type": pair.token_type, "refresh_token": pair.refresh_token}),
        ),
        Err(e) => detail(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn refresh(req: In, app: Arc<App>) -> Result<Response<Full<Bytes>>, Infallible> {
    let claims = verified(&req);
    if claims.token_type == TokenType::Refresh {
        // Rotation: this refresh token is spent, its successor comes back.
        return Ok(match app.authx.rotate(claims).await {
            Ok(pair) => token_response(
                json!({"access_token": pair.access_token, "token_type": pair.token_type, "refresh_token": pair.refresh_token}),
            ),
            Err(error) => refusal(&app, &error, &req),
        });
    }
    // AuthX's way: a fresh access token buys a non-fresh one (same session).
    let mut builder = app.authx.access_token(claims.sub.clone()).fresh(false);
    if let Some(session) = &claims.fam {
        builder = builder.fam(session.clone());
    }
    // How the user authenticated stays true of the session.
    if let Some(amr) = &claims.amr {
        builder = builder.amr(amr.iter().cloned());
    }
    // A DPoP-bound token buys a token bound to the same key.
    let key = DpopKey::of(claims);
    if let Some(key) = &key {
        builder = builder.bound_to(key);
    }
    let token_type = if key.is_some() { "DPoP" } else { "bearer" };
    Ok(match builder.issue() {
        Ok(token) => token_response(json!({"access_token": token, "token_type": token_type})),
        Err(e) => detail(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    })
}

async fn logout(req: In, app: Arc<App>) -> Result<Response<Full<Bytes>>, Infallible> {
    let claims = verified(&req);
    Ok(match app.authx.revoke(claims).await {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({"message": "Successfully logged out"}),
        ),
        Err(error) => refusal(&app, &error, &req),
    })
}

/// `GET /sessions` (the caller's live sessions), `DELETE /sessions/{id}` (one
/// of them ended) and `DELETE /sessions` (all but the caller's), behind an
/// access token.
async fn sessions_route(req: In, app: Arc<App>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let allowed = if path == "/sessions" {
        [Method::GET, Method::DELETE].contains(req.method())
    } else {
        req.method() == Method::DELETE
    };
    if !allowed {
        let allow = if path == "/sessions" {
            Method::GET
        } else {
            Method::DELETE
        };
        return Ok(method_not_allowed(&allow));
    }
    let guard = app.access.clone();
    let handler = service_fn(move |req: In| {
        let (app, path) = (app.clone(), path.clone());
        async move {
            let claims = verified(&req);
            let answer = match (req.method(), path.strip_prefix("/sessions/")) {
                (&Method::GET, _) => app.authx.sessions(claims).await.map(|live| {
                    let listed: Vec<_> = live
                        .iter()
                        .map(|s| {
                            json!({
                                "id": s.id,
                                "created": s.created,
                                "last_refreshed": s.last_refreshed,
                                "user_agent": s.user_agent,
                                "ip": s.ip,
                                "current": Some(&s.id) == claims.fam.as_ref(),
                            })
                        })
                        .collect();
                    json_response(StatusCode::OK, json!(listed))
                }),
                (_, Some(id)) => app.authx.end_session(claims, id).await.map(|ended| {
                    if ended {
                        json_response(StatusCode::OK, json!({"message": "Session ended"}))
                    } else {
                        detail(StatusCode::NOT_FOUND, "Unknown session")
                    }
                }),
                _ => app.authx.end_other_sessions(claims).await.map(|ended| {
                    json_response(
                        StatusCode::OK,
                        json!({"message": "Other sessions ended", "ended": ended}),
                    )
                }),
            };
            Ok::<_, Infallible>(answer.unwrap_or_else(|error| refusal(&app, &error, &req)))
        }
    });
    let res = guard.layer(handler).oneshot(req).await?;
    Ok(boxed(res))
}

/// The crate's own rejection for an error met inside a handler.
fn refusal<B>(app: &App, error: &AuthError, req: &Request<B>) -> Response<Full<Bytes>> {
    let head = RequestHead::of(req);
    app.authx.reject(error, head).map(Full::new)
}

async fn protected(req: In, app: Arc<App>) -> Result<Response<Full<Bytes>>, Infallible> {
    let claims = verified(&req);
    let fresh = claims.is_fresh();
    Ok(json_response(
        StatusCode::OK,
        shared::protected(claims, &app.users, fresh),
    ))
}

/// A guarded route's answer about the verified user (`/fresh-required`,
/// `/mfa-required`).
async fn about_user(
    req: In,
    app: Arc<App>,
    answer: fn(&tower_authx::Claims, &shared::Users) -> serde_json::Value,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let claims = verified(&req);
    Ok(json_response(StatusCode::OK, answer(claims, &app.users)))
}
