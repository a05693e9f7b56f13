//! A resource server: verifies tokens it did not issue, through its issuers'
//! keys only. It holds no secret and cannot issue tokens.
//!
//! Behind OpenID Providers (Auth0, Keycloak, Okta, Entra; discovery from the
//! issuer's URL, several at once):
//!
//! ```sh
//! OIDC_ISSUER=https://sso.example/realms/staff,https://tenant.eu.auth0.com/ AUDIENCE=api \
//!     cargo run --example resource_server --features remote-keys
//! ```
//!
//! Or behind the `fresh_token` example, through its JWKS:
//!
//! ```sh
//! openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out issuer.pem
//! export JWT_ISSUER=http://127.0.0.1:8000
//! JWT_ALGORITHM=ES256 JWT_PRIVATE_KEY_FILE=issuer.pem cargo run --example fresh_token &
//! JWKS_URL=http://127.0.0.1:8000/.well-known/jwks.json PORT=8001 \
//!     cargo run --example resource_server --features remote-keys
//! ```
//!
//! Routes: `GET /protected` (any valid access token; names its subject),
//! `GET /me` (a user route: the user `sub` names, loaded from the demo
//! directory; a client's own token is refused), `GET /bound` (certificate-bound
//! tokens only, RFC 8705),
//! `GET /fresh-required` (a fresh one), `GET /read` (scope `read`), `GET /admin`
//! (scope `admin:users`; 403 `insufficient_scope` otherwise), `GET /staff`
//! (role or group `staff`) and `GET /orders` (scope `orders:write` or role
//! `admin`). Scopes come from OAuth's `scope` string, `scp`, or AuthX's
//! `scopes`; roles from where `ROLES_PRESET` says the identity provider puts
//! them: `keycloak:<client-id>`, `auth0`, `entra`, `okta`, `cognito` or
//! `authx` (default: `authx`, a top-level `roles` list).
//!
//! `HOST` (127.0.0.1), `PORT` (8001); `OIDC_ISSUER` (one or more, comma-separated)
//! or `JWKS_URL` with `JWT_ISSUER` (the `iss` its tokens carry); `AUDIENCE` (optional: tokens must then name it); `JWKS_REFRESH_SECS`
//! (300) and `JWKS_MIN_REFETCH_SECS` (10) tune the key cache; `SSL_CERT_FILE` adds a
//! trusted root; `JWT_VERIFIED_CACHE` and `REDIS_URL` as in every example.
//!
//! DPoP-bound tokens (`Authorization: DPoP <token>` with a `DPoP` proof, as
//! an OpenID Provider issues them to a client that sent a proof) are taken
//! beside Bearer ones; `PUBLIC_URL` is the base URL proofs name (default
//! `http://HOST:PORT`), `DPOP_NONCE_SECRET` turns on server nonces.
//!
//! Opaque tokens (RFC 7662): with `INTROSPECTION_CLIENT_ID` and
//! `INTROSPECTION_CLIENT_SECRET`, a token that is not a JWT is introspected at
//! its `OIDC_ISSUER`'s discovered `introspection_endpoint` (client_secret_basic);
//! with several issuers, `INTROSPECTION_ISSUER` names the one that takes
//! opaque tokens (an opaque token names no issuer, and is never sent to
//! each in turn);
//! `INTROSPECTION_CACHE_SECS` keeps active answers that long (default: off,
//! so a token revoked at the provider is refused at once).
//!
//! Certificate-bound tokens (RFC 8705): with `TLS_CERT` and `TLS_KEY` (PEM)
//! it serves HTTPS, and with `TLS_CLIENT_CA` it asks for an optional client
//! certificate from that CA; a token whose `cnf.x5t#S256` names a
//! certificate is then taken only on a connection with that certificate.
//!
//! Delegation (RFC 8693): with `REQUIRE_ACTOR` (a client id), every route
//! takes only tokens whose `act.sub` names that client, as the tokens the
//! `on_behalf_of` example exchanges do; the routes' JSON then names the
//! `actor`.
//!
//! Operating it: `RUST_LOG` filters the logs (stderr; default `warn`); built with
//! `--features metrics`, `GET /metrics` serves every tower-authx metric in
//! Prometheus text.
//!
//! Outside this repository: copy this file into a new crate as `src/main.rs`,
//! and `examples/shared/` as `src/shared/` and `dev/examples/support/` as `src/support/`, with these lines in its `Cargo.toml`
//! (`dev/copy-out-examples` builds it exactly so; until tower-authx is
//! published, `path` names a checkout of it):
//!
//! ```toml
//! [dependencies]
//! tower-authx = { path = "../tower-authx", features = ["remote-keys"] }
//! rustls = { version = "0.23", default-features = false, features = ["ring", "std", "tls12"] }
//! tokio-rustls = { version = "0.26", default-features = false, features = ["ring", "tls12"] }
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
//! metrics-exporter-prometheus = { version = "0.18", default-features = false, optional = true }
//!
//! [features]
//! redis = ["tower-authx/redis"]
//! metrics = ["tower-authx/metrics", "dep:metrics-exporter-prometheus"]
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::layer::{LoadUserLayer, User};
use tower_authx::{
    AuthX, AuthXConfig, Claims, ClientAuth, Idp, Introspection, Issuer, RemoteJwks,
    RequireAuthLayer, Requirement, Rule,
};

#[path = "shared/prometheus.rs"]
mod prometheus;
#[path = "shared/mod.rs"]
mod shared;
#[path = "support/tls_server.rs"]
mod tls_server;
use shared::Users;
use shared::responses::{Body, boxed, json_response, method_not_allowed, not_found, verified};

struct App {
    authx: AuthX,
    metrics: prometheus::Metrics,
    users: Users,
    access: RequireAuthLayer,
    fresh: RequireAuthLayer,
    read: RequireAuthLayer,
    admin: RequireAuthLayer,
    staff: RequireAuthLayer,
    orders: RequireAuthLayer,
    bound: RequireAuthLayer,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::observability::init()?;
    let metrics = prometheus::install()?;
    let (host, port) = shared::address(8001)?;
    let audience = std::env::var("AUDIENCE").ok().filter(|a| !a.is_empty());
    let config = match (std::env::var("OIDC_ISSUER"), std::env::var("JWKS_URL")) {
        (Ok(issuers), _) => {
            let mut trusted = Vec::new();
            let issuers: Vec<&str> = issuers
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .collect();
            let introspecting = match (std::env::var("INTROSPECTION_ISSUER"), &issuers[..]) {
                (Ok(iss), _) => Some(iss),
                (Err(_), [only]) => Some((*only).to_owned()),
                (Err(_), _) => None,
            };
            for iss in issuers {
                // An issuer down at start-up is discovered when it answers:
                // its tokens get 503 until then, the others are served.
                let mut issuer = match Issuer::discover(iss).await {
                    Ok(issuer) => issuer,
                    // A wrong CA or document is a configuration to fix:
                    // refused now, not waited out.
                    Err(e) if !e.is_outage() => {
                        return Err(format!("OIDC_ISSUER {iss}: {e}").into());
                    }
                    Err(e) => {
                        eprintln!(
                            "warning: OIDC_ISSUER {iss} not reached ({e}); its tokens get 503 \
                             until it is (or are served by its keys saved in JWKS_SAVE_DIR)"
                        );
                        Issuer::discover_on_first_use(iss)?
                    }
                };
                let keys = tune(issuer.keys().clone(), iss)?;
                issuer = issuer.with_keys(keys);
                if let Some(introspection) = introspection()? {
                    if introspecting.as_deref() == Some(iss) {
                        issuer = issuer.introspection(introspection);
                    } else if introspecting.is_none() {
                        return Err("with several OIDC_ISSUER, INTROSPECTION_ISSUER names the \
                                    one whose opaque tokens are introspected"
                            .into());
                    }
                }
                if let Some(audience) = &audience {
                    issuer = issuer.audience(audience);
                }
                trusted.push(issuer);
            }
            AuthXConfig::from_issuers(trusted)
        }
        (Err(_), Ok(url)) => {
            // A key set may serve many issuers: name the one we trust.
            let iss = std::env::var("JWT_ISSUER")
                .ok()
                .filter(|iss| !iss.is_empty())
                .ok_or("JWKS_URL needs JWT_ISSUER: the iss of the tokens to accept (fresh_token writes it when started with the same JWT_ISSUER)")?;
            let config = AuthXConfig::from_jwks(tune(RemoteJwks::new(&url)?, &url)?).issuer(iss);
            match &audience {
                Some(audience) => config.audience(audience),
                None => config,
            }
        }
        (Err(_), Err(_)) => {
            return Err("set OIDC_ISSUER (the issuers' URLs) or JWKS_URL".into());
        }
    };
    let listener = TcpListener::bind((host.as_str(), port)).await?;
    let addr = listener.local_addr()?;
    let config = shared::with_dpop(
        shared::shared_settings(config).await?,
        &shared::public_url(addr),
    )
    .await?;
    let config = config.permissions(roles_preset()?);
    let authx = AuthX::new(config)?;
    // REQUIRE_ACTOR: every route takes only tokens in which that client acts
    // for the user (RFC 8693 `act`), as the on_behalf_of example's are.
    let actor = std::env::var("REQUIRE_ACTOR")
        .ok()
        .filter(|a| !a.is_empty());
    let guard = |requirement: Requirement| match &actor {
        Some(actor) => authx.guard(requirement.actor(actor.as_str())),
        None => authx.guard(requirement),
    };
    let app = Arc::new(App {
        staff: guard(Requirement::access().any_role(["staff"]))?,
        bound: guard(Requirement::access().certificate_bound())?,
        orders: guard(Requirement::access().rule(Rule::any_of([
            Rule::all_scopes(["orders:write"]),
            Rule::any_role(["admin"]),
        ])))?,
        access: guard(Requirement::access())?,
        fresh: guard(Requirement::fresh())?,
        read: guard(Requirement::access().all_scopes(["read"]))?,
        admin: guard(Requirement::access().all_scopes(["admin:users"]))?,
        users: Users::seed(),
        authx,
        metrics,
    });

    let service = hyper::service::service_fn(move |req| route(req, app.clone()));
    match tls_server::from_env()? {
        Some(tls) => {
            println!("listening on https://{addr}");
            tls_server::serve(listener, tls, service).await;
        }
        None => {
            println!("listening on http://{addr}");
            shared::server::serve(listener, service).await;
        }
    }
    Ok(())
}

/// Where the identity provider puts roles: `ROLES_PRESET`.
fn roles_preset() -> Result<Idp, String> {
    let preset = std::env::var("ROLES_PRESET").unwrap_or_else(|_| "authx".into());
    Ok(match preset.split_once(':') {
        Some(("keycloak", client)) if !client.is_empty() => Idp::keycloak(client),
        _ => match preset.as_str() {
            "auth0" => Idp::auth0(),
            "entra" => Idp::entra(),
            "okta" => Idp::okta(),
            "cognito" => Idp::cognito(),
            "authx" => Idp::authx(),
            other => {
                return Err(format!(
                    "ROLES_PRESET={other:?}: one of keycloak:<client-id>, auth0, entra, okta, cognito, authx"
                ));
            }
        },
    })
}

/// Introspection of opaque tokens at each issuer's discovered endpoint:
/// `INTROSPECTION_CLIENT_ID` and `INTROSPECTION_CLIENT_SECRET` (HTTP Basic),
/// `INTROSPECTION_CACHE_SECS` (default: no cache).
fn introspection() -> Result<Option<Introspection>, Box<dyn std::error::Error>> {
    let Ok(id) = std::env::var("INTROSPECTION_CLIENT_ID") else {
        return Ok(None);
    };
    let secret = std::env::var("INTROSPECTION_CLIENT_SECRET")
        .map_err(|_| "INTROSPECTION_CLIENT_ID needs INTROSPECTION_CLIENT_SECRET")?;
    let mut introspection = Introspection::discovered(ClientAuth::secret_basic(id, secret));
    if let Some(ttl) = env_secs("INTROSPECTION_CACHE_SECS")? {
        introspection = introspection.cache(ttl);
    }
    Ok(Some(introspection))
}

/// The key cache's intervals from the environment, and with `JWKS_SAVE_DIR`
/// the last good keys of `source` (an issuer or a JWKS URL) kept in a file
/// there, read at start (at most `JWKS_SAVED_MAX_AGE_SECS` old, default a
/// day): a restart while the provider is down keeps serving its tokens.
fn tune(mut jwks: RemoteJwks, source: &str) -> Result<RemoteJwks, Box<dyn std::error::Error>> {
    if let Ok(dir) = std::env::var("JWKS_SAVE_DIR") {
        let name: String = source
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let max_age = env_secs("JWKS_SAVED_MAX_AGE_SECS")?.unwrap_or(Duration::from_secs(86_400));
        jwks = jwks.keep_last_good(
            std::path::Path::new(&dir).join(format!("{name}.json")),
            max_age,
        );
    }
    if let Some(secs) = env_secs("JWKS_REFRESH_SECS")? {
        jwks = jwks.refresh_interval(secs);
    }
    if let Some(secs) = env_secs("JWKS_MIN_REFETCH_SECS")? {
        jwks = jwks.min_refetch_interval(secs);
    }
    Ok(jwks)
}

fn env_secs(name: &str) -> Result<Option<Duration>, Box<dyn std::error::Error>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(Duration::from_secs_f64(v.parse()?))),
        Err(_) => Ok(None),
    }
}

async fn route(req: Request<Incoming>, app: Arc<App>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/metrics"
        && req.method() == Method::GET
        && let Some(scrape) = app.metrics.render()
    {
        return Ok(boxed(scrape));
    }
    const ROUTES: [&str; 8] = [
        "/protected",
        "/me",
        "/bound",
        "/fresh-required",
        "/read",
        "/admin",
        "/staff",
        "/orders",
    ];
    if !ROUTES.contains(&path.as_str()) {
        return Ok(not_found());
    }
    if req.method() != Method::GET {
        return Ok(method_not_allowed(&Method::GET));
    }
    let handler = {
        let app = app.clone();
        let path = path.clone();
        service_fn(move |r: Request<Incoming>| {
            let claims = verified(&r);
            let body = match path.as_str() {
                "/protected" => shared::protected(claims, &app.users, claims.is_fresh()),
                "/me" => match r.extensions().get::<User<serde_json::Value>>() {
                    Some(User(email)) => json!({"username": claims.sub, "email": email}),
                    None => json!({}),
                },
                "/fresh-required" => shared::fresh_required(claims, &app.users),
                _ => {
                    let mut body = json!({
                        "message": format!("You may {}", &path[1..]),
                        "subject": claims.sub,
                        "scopes": claims.granted_scopes().collect::<Vec<_>>(),
                        "roles": claims.permissions().iter().collect::<Vec<_>>(),
                    });
                    // A delegated token: who acts for the subject.
                    if let Some(act) = &claims.act {
                        body["actor"] = json!(act.sub);
                    }
                    body
                }
            };
            async move { Ok::<_, Infallible>(json_response(StatusCode::OK, body)) }
        })
    };
    let res = match path.as_str() {
        "/protected" => boxed(app.access.layer(handler).oneshot(req).await?),
        // A user route: the user is loaded from the directory by `sub`; a
        // client's own token is refused before the directory is asked.
        "/me" => {
            let users = app.clone();
            let load_user = LoadUserLayer::new(app.authx.clone(), move |claims: &Claims| {
                let email = users.users.email(&claims.sub);
                async move { Ok((!email.is_null()).then_some(email)) }
            });
            boxed(
                app.access
                    .layer(load_user.layer(handler))
                    .oneshot(req)
                    .await?,
            )
        }
        "/fresh-required" => boxed(app.fresh.layer(handler).oneshot(req).await?),
        "/read" => boxed(app.read.layer(handler).oneshot(req).await?),
        "/staff" => boxed(app.staff.layer(handler).oneshot(req).await?),
        "/bound" => boxed(app.bound.layer(handler).oneshot(req).await?),
        "/orders" => boxed(app.orders.layer(handler).oneshot(req).await?),
        _ => boxed(app.admin.layer(handler).oneshot(req).await?),
    };
    Ok(res)
}
