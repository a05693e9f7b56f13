//! AuthX's fresh-token server on axum: the same routes, JSON, statuses and
//! environment variables as `examples/fresh_token.rs`, plus cookie login with
//! CSRF double submit and a fresh-required password change.
//!
//! ```sh
//! cargo run --example axum --features axum   # HOST=127.0.0.1 PORT=8000 JWT_SECRET_KEY=your-secret-key
//! ```
//!
//! - `POST /login/cookie`: the `/login` body; the tokens come back as cookies
//!   (`access_token_cookie` and `refresh_token_cookie`, HttpOnly; `csrf_access_token`
//!   and `csrf_refresh_token` for scripts). `JWT_COOKIE_SECURE=false` drops
//!   `Secure` for plain-HTTP development.
//! - Every guarded route takes the token from the `Authorization` header or from
//!   the cookies (on `POST`, with the `X-CSRF-TOKEN` double submit), or from
//!   where `JWT_TOKEN_LOCATION` says (AuthX's names, comma-separated, in order:
//!   `headers`, `cookies`, `query`, `json`; `JWT_JSON_KEY` and
//!   `JWT_REFRESH_JSON_KEY` name a JSON body's members).
//! - `GET /demo`: a page that logs in with cookies, polls `/protected` while
//!   the session is renewed implicitly, logs out, and shows the outcome (try
//!   it in a browser with `JWT_COOKIE_SECURE=false IMPLICIT_REFRESH_SECS=...`).
//! - `POST /account/password` `{"new_password": "..."}`: needs a fresh token.
//! - `POST /logout` revokes the presented token's session; `/refresh` with a
//!   refresh token rotates it (presenting it again revokes the session).
//! - `GET /events`: server-sent events, one a second naming the subject; the
//!   stream ends when the token does (expiry or logout, here or on another
//!   instance sharing `REDIS_URL`), with a last `credential-ended` event.
//! - `GET /ws`: a WebSocket that echoes text and binary messages; it is
//!   closed with code 1008 when the token ends, and a client may renew it
//!   before then by sending `{"type":"authx.renew","access_token":"..."}`
//!   (answered `{"type":"authx.renewed","exp":...}`, or `authx.renewal_deferred`
//!   within a second of the last; a token of another subject or session
//!   closes it).
//!
//! - Cookie sessions are renewed implicitly (AuthX's `implicit_refresh`) on
//!   the guarded routes with `IMPLICIT_REFRESH_SECS` (the window before
//!   expiry; unset: off): the response then sets a new access cookie and CSRF
//!   cookie, never for a session logged out, and never past `SESSION_MAX_SECS`
//!   after the login (default: the refresh token's lifetime).
//!   `ACCESS_TOKEN_LIFETIME_SECS` (default 900) and
//!   `REFRESH_TOKEN_LIFETIME_SECS` (default 20 days) set how long tokens live.
//!
//! Like `fresh_token`, it reads `JWT_VERIFIED_CACHE` and `REDIS_URL` (with
//! `--features redis`), and serves with header, body and idle timeouts and at
//! most `MAX_CONNECTIONS` connections. `RUST_LOG` filters the logs (stderr;
//! default `warn`); built with `--features metrics`, `GET /metrics` serves
//! every tower-authx metric in Prometheus text.
//!
//! Outside this repository: copy this file into a new crate as `src/main.rs`,
//! `examples/shared/` as `src/shared/` and `dev/examples/support/` as `src/support/` (its
//! demo page), with these lines in its `Cargo.toml`
//! (`dev/copy-out-examples` builds it exactly so; until tower-authx is
//! published, `path` names a checkout of it):
//!
//! ```toml
//! [dependencies]
//! tower-authx = { path = "../tower-authx", features = ["axum", "streams"] }
//! axum = { version = "0.8", default-features = false, features = ["tokio", "http1", "json", "ws"] }
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
//! tokio-stream = "0.1"
//! tower = { version = "0.5", features = ["util"] }
//! tracing-subscriber = { version = "0.3", default-features = false, features = ["fmt", "std"] }
//! metrics-exporter-prometheus = { version = "0.18", default-features = false, optional = true }
//!
//! [features]
//! redis = ["tower-authx/redis"]
//! metrics = ["tower-authx/metrics", "dep:metrics-exporter-prometheus"]
//! ```

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_authx::layer::{
    EndWithCredentialLayer, ImplicitRefreshLayer, JsonTokenLayer, LiveCredential, Renewal,
};
use tower_authx::{
    AuthError, AuthX, Claims, CookieConfig, NumericDate, RequestHead, RequireAuthLayer,
    RequireFreshLayer, Requirement, TokenLocation, TokenType,
};

#[path = "shared/prometheus.rs"]
mod prometheus;
#[path = "shared/mod.rs"]
mod shared;
use shared::{Login, NewPassword, Users};

struct App {
    authx: AuthX,
    users: Users,
}

type Shared = State<Arc<App>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::observability::init()?;
    let metrics = prometheus::install()?;
    let (host, port) = shared::address(8000)?;
    let secure = std::env::var("JWT_COOKIE_SECURE").map_or(true, |v| v != "false");
    // Every guarded route takes the header or the cookies set by
    // /login/cookie (with the CSRF double submit on POST); a client that sends
    // no cookies gets AuthX's answers.
    let config = shared::shared_settings(shared::config_from_env()?)
        .await?
        .cookies(if secure {
            CookieConfig::default()
        } else {
            CookieConfig::default().danger_insecure()
        });
    // JWT_TOKEN_LOCATION (default: the header, then the cookies), JWT_JSON_KEY, ...
    let mut config =
        shared::locations_from_env(config, &[TokenLocation::Headers, TokenLocation::Cookies])?;
    if let Some(lifetime) = env_secs("ACCESS_TOKEN_LIFETIME_SECS")? {
        config = config.access_token_lifetime(lifetime);
    }
    if let Some(lifetime) = env_secs("REFRESH_TOKEN_LIFETIME_SECS")? {
        config = config.refresh_token_lifetime(lifetime);
    }
    let authx = AuthX::new(config)?;
    let json_authx = authx.clone();
    // Renewing cookie sessions on the guarded routes, when asked for.
    let renew = match env_secs("IMPLICIT_REFRESH_SECS")? {
        Some(window) => {
            let mut renew = ImplicitRefreshLayer::new(authx.clone()).within(window);
            if let Some(max) = env_secs("SESSION_MAX_SECS")? {
                renew = renew.max_session(max);
            }
            Some(renew)
        }
        None => None,
    };

    let app = Arc::new(App {
        authx: authx.clone(),
        users: Users::seed(),
    });
    let router = Router::new()
        .route("/", get(root))
        .route(
            "/metrics",
            get(move || {
                let scrape = metrics.render();
                async move {
                    match scrape {
                        Some(scrape) => scrape.into_response(),
                        None => detail(StatusCode::NOT_FOUND, "Not Found").into_response(),
                    }
                }
            }),
        )
        .route(
            "/demo",
            get(|| async { axum::response::Html(include_str!("support/demo.html")) }),
        )
        .route("/login", post(login))
        .route("/login/cookie", post(login_cookie))
        .route(
            "/refresh",
            post(refresh).route_layer(guarded(RequireAuthLayer::any_type(authx.clone()), &None)),
        )
        .route(
            "/logout",
            post(logout).route_layer(guarded(RequireAuthLayer::any_type(authx.clone()), &None)),
        )
        .route(
            "/protected",
            get(protected).route_layer(guarded(RequireAuthLayer::new(authx.clone()), &renew)),
        )
        .route(
            "/fresh-required",
            get(fresh_required).route_layer(guarded(RequireFreshLayer::new(authx.clone()), &renew)),
        )
        .route(
            "/mfa-required",
            get(mfa_required).route_layer(guarded(
                authx.guard(Requirement::access().amr(["otp"]))?,
                &renew,
            )),
        )
        .route(
            "/events",
            get(events)
                .route_layer(EndWithCredentialLayer::new(&authx))
                .route_layer(guarded(RequireAuthLayer::new(authx.clone()), &None)),
        )
        .route(
            "/ws",
            get(websocket)
                .route_layer(EndWithCredentialLayer::new(&authx))
                .route_layer(guarded(RequireAuthLayer::new(authx.clone()), &None)),
        )
        .route(
            "/account/password",
            post(change_password).route_layer(guarded(RequireFreshLayer::new(authx), &renew)),
        )
        .fallback(|| async { detail(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .with_state(app);

    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // A JSON body read once for its token, where `json` is a location, on
    // the routes that take a token (not /login, not a 404).
    let json = JsonTokenLayer::new(json_authx).only_paths([
        "/refresh",
        "/logout",
        "/protected",
        "/fresh-required",
        "/mfa-required",
        "/account/password",
    ]);
    let router = tower::Layer::layer(&json, router);
    // The body JsonTokenLayer reads is bounded in time as the handlers' are.
    let service = hyper::service::service_fn(move |req| {
        shared::server::in_time(tower::ServiceExt::oneshot(router.clone(), req))
    });
    shared::server::serve(listener, service).await;
    Ok(())
}

async fn root() -> Json<serde_json::Value> {
    Json(shared::root())
}

/// The login body, or the status and detail that refuse it.
async fn credentials(app: &App, body: Body) -> Result<Login, (StatusCode, &'static str)> {
    let body = shared::read_body(body).await?;
    let user: Login = shared::parse_json(&body, shared::LOGIN_FIELDS)?;
    if !app.users.check(&user) {
        return Err((StatusCode::UNAUTHORIZED, shared::BAD_CREDENTIALS));
    }
    Ok(user)
}

/// AuthX's refusal of a login; a 401 challenges like AuthX's.
fn login_refused((status, why): (StatusCode, &str)) -> Response {
    let mut res = detail(status, why);
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

async fn login(State(app): Shared, body: Body) -> Response {
    let user = match credentials(&app, body).await {
        Ok(user) => user,
        Err(refusal) => return login_refused(refusal),
    };
    let pair = match shared::second_factor(&user) {
        Ok(Some(amr)) => app.authx.token_pair(user.username).amr(amr),
        Ok(None) => app.authx.token_pair(user.username),
        Err(refusal) => return login_refused(refusal),
    };
    match pair.issue() {
        Ok(pair) => tokens(json!({
            "fresh_token": pair.access_token,
            "token_type": "bearer",
            "refresh_token": pair.refresh_token,
        })),
        Err(e) => detail(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Sets cookies, so a cross-site form must not be able to call it (login
/// CSRF): only a JSON body, which a form cannot send without a CORS preflight.
async fn login_cookie(State(app): Shared, headers: HeaderMap, body: Body) -> Response {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    let user = match credentials(&app, body).await {
        Ok(user) => user,
        Err(refusal) => return login_refused(refusal),
    };
    let mut headers = HeaderMap::new();
    // `auth_time`: when the session began, which SESSION_MAX_SECS counts from.
    let cookies = app
        .authx
        .token_pair(user.username)
        .auth_time(NumericDate::now())
        .issue()
        .map_err(|e| e.to_string())
        .and_then(|pair| {
            app.authx
                .set_access_cookies(&pair.access_token, &mut headers)
                .map_err(|e| e.to_string())?;
            app.authx
                .set_refresh_cookies(&pair.refresh_token, &mut headers)
                .map_err(|e| e.to_string())
        });
    match cookies {
        Ok(()) => {
            let mut res = tokens(json!({"message": "Login successful"}));
            res.headers_mut().extend(headers);
            res
        }
        Err(e) => detail(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

async fn refresh(State(app): Shared, request: Head, claims: Claims) -> Response {
    if claims.token_type == TokenType::Refresh {
        // Rotation: this refresh token is spent, its successor comes back.
        return match app.authx.rotate(&claims).await {
            Ok(pair) => tokens(json!({
                "access_token": pair.access_token,
                "token_type": "bearer",
                "refresh_token": pair.refresh_token,
            })),
            Err(error) => refusal(&app, &error, &request),
        };
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
    match builder.issue() {
        Ok(token) => tokens(json!({"access_token": token, "token_type": "bearer"})),
        Err(e) => detail(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn logout(State(app): Shared, request: Head, claims: Claims) -> Response {
    match app.authx.revoke(&claims).await {
        Ok(()) => {
            let mut res = tokens(json!({"message": "Successfully logged out"}));
            if request.2.contains_key(COOKIE) {
                app.authx.unset_cookies(res.headers_mut());
            }
            res
        }
        Err(error) => refusal(&app, &error, &request),
    }
}

/// The request's method, URI and headers, for a refusal shaped like the guard's.
type Head = (Method, Uri, HeaderMap);

/// The crate's own refusal for an error met inside a handler.
fn refusal(app: &App, error: &AuthError, (method, uri, headers): &Head) -> Response {
    let head = RequestHead {
        method,
        uri,
        headers,
        extensions: None,
    };
    app.authx.reject(error, head).map(Body::from)
}

/// A JSON answer that carries tokens or sets cookies: never cached (RFC 6749 5.1).
fn tokens(body: serde_json::Value) -> Response {
    let mut res = Json(body).into_response();
    let headers = res.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

async fn protected(State(app): Shared, claims: Claims) -> Json<serde_json::Value> {
    let fresh = claims.is_fresh();
    Json(shared::protected(&claims, &app.users, fresh))
}

/// One event a second naming the subject, until the token ends (the layer
/// ends the stream then, with a last `credential-ended` event).
async fn events(
    claims: Claims,
) -> axum::response::Sse<
    impl tokio_stream::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use tokio_stream::StreamExt;
    let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
        std::time::Duration::from_secs(1),
    ));
    let subject = claims.sub;
    let mut n = 0u64;
    let events = ticks.map(move |_| {
        n += 1;
        let data = json!({ "sub": subject, "n": n }).to_string();
        Ok(axum::response::sse::Event::default()
            .event("tick")
            .data(data))
    });
    axum::response::Sse::new(events)
}

/// The longest WebSocket message read: an echo needs no more, and a renewal
/// (a token) fits.
const MAX_MESSAGE: usize = 64 * 1024;

async fn websocket(
    upgrade: axum::extract::ws::WebSocketUpgrade,
    axum::Extension(live): axum::Extension<LiveCredential>,
) -> Response {
    // Small buffers (tungstenite's default is 128 KiB each way): thousands of
    // mostly idle sockets cost kilobytes each, not a quarter of a megabyte.
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| echo(socket, live))
}

/// Echoes every message until the credential ends (closed with 1008 and
/// why), taking in-band renewals on the way.
async fn echo(mut socket: axum::extract::ws::WebSocket, live: LiveCredential) {
    use axum::extract::ws::{CloseFrame, Message};
    loop {
        let message = tokio::select! {
            why = live.ended() => {
                let close = CloseFrame { code: why.close_code(), reason: why.reason().into() };
                let _ = socket.send(Message::Close(Some(close))).await;
                return;
            }
            message = socket.recv() => message,
        };
        let reply = match message {
            Some(Ok(Message::Text(text))) => match Renewal::parse(&text) {
                Some(renewal) => match live.renew::<tower_authx::NoExtra>(&renewal).await {
                    Ok(claims) => {
                        let renewed = json!({ "type": "authx.renewed", "exp": claims.exp });
                        Message::Text(renewed.to_string().into())
                    }
                    // Refused: `ended` resolves next, and closes.
                    Err(_) if live.has_ended().is_some() => continue,
                    // Too soon after the last one: not checked, the socket goes on.
                    Err(error) => {
                        let too_soon =
                            json!({ "type": "authx.renewal_deferred", "error": error.to_string() });
                        Message::Text(too_soon.to_string().into())
                    }
                },
                None => Message::Text(text),
            },
            Some(Ok(Message::Binary(data))) => Message::Binary(data),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            Some(Ok(_)) => continue, // pings are answered by the library
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

async fn mfa_required(State(app): Shared, claims: Claims) -> Json<serde_json::Value> {
    Json(shared::mfa_required(&claims, &app.users))
}

async fn fresh_required(State(app): Shared, claims: Claims) -> Json<serde_json::Value> {
    Json(shared::fresh_required(&claims, &app.users))
}

async fn change_password(State(app): Shared, claims: Claims, body: Body) -> Response {
    let body = match shared::read_body(body).await {
        Ok(body) => body,
        Err((status, why)) => return detail(status, why),
    };
    let change: NewPassword = match shared::parse_json(&body, shared::PASSWORD_FIELDS) {
        Ok(change) => change,
        Err((status, why)) => return detail(status, why),
    };
    if change.new_password.is_empty() {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, shared::PASSWORD_FIELDS);
    }
    if !app.users.set_password(&claims.sub, change.new_password) {
        return detail(StatusCode::NOT_FOUND, "Unknown user");
    }
    Json(json!({"message": "Password changed", "username": claims.sub})).into_response()
}

fn detail(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

/// `guard`, then (inside it, so on what it admitted) the implicit renewal of
/// cookie sessions when configured, and the mark that keeps the request's
/// connection in its place under pressure.
fn guarded<L>(guard: L, renew: &Option<ImplicitRefreshLayer>) -> Guarded<L> {
    tower::ServiceBuilder::new()
        .layer(guard)
        .option_layer(renew.clone())
        .map_request(shared::server::marked as fn(axum::extract::Request) -> axum::extract::Request)
}

type Guarded<L> = tower::ServiceBuilder<
    tower::layer::util::Stack<
        tower::util::MapRequestLayer<fn(axum::extract::Request) -> axum::extract::Request>,
        tower::layer::util::Stack<
            tower::util::Either<ImplicitRefreshLayer, tower::layer::util::Identity>,
            tower::layer::util::Stack<L, tower::layer::util::Identity>,
        >,
    >,
>;

/// A number of seconds from the environment, if set.
fn env_secs(name: &str) -> Result<Option<std::time::Duration>, Box<dyn std::error::Error>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(std::time::Duration::from_secs_f64(
            v.parse()
                .map_err(|_| format!("{name}={v:?} is not a number of seconds"))?,
        ))),
        Err(_) => Ok(None),
    }
}
