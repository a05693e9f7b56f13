//! A service that calls another on its caller's behalf (RFC 8693 token
//! exchange), never with the caller's own token: `GET /relay`, behind a
//! guard, exchanges the caller's token at the OpenID Provider's token
//! endpoint for one issued for the downstream service, in which this service
//! acts for the caller (`act`), calls `DOWNSTREAM_URL` + `/read` with it, and
//! answers the downstream's status and JSON body.
//!
//! ```sh
//! OIDC_ISSUER=https://sso.example AUDIENCE=https://gateway.example \
//! DOWNSTREAM_URL=http://127.0.0.1:8001 EXCHANGE_CLIENT_ID=gateway EXCHANGE_CLIENT_SECRET=... \
//! EXCHANGE_AUDIENCE=https://orders.example EXCHANGE_SCOPE=read \
//!     cargo run --example on_behalf_of --features remote-keys
//! # the downstream: the resource_server example, taking only the gateway's delegated tokens
//! OIDC_ISSUER=https://sso.example AUDIENCE=https://orders.example REQUIRE_ACTOR=gateway \
//!     cargo run --example resource_server --features remote-keys
//! ```
//!
//! `HOST` (127.0.0.1), `PORT` (8003); `OIDC_ISSUER` (the one provider whose
//! tokens it takes, and whose token endpoint exchanges them); `AUDIENCE`
//! (optional: the caller's tokens must name it); `SSL_CERT_FILE` adds a
//! trusted root (for the provider and an https downstream). The exchange:
//! `EXCHANGE_CLIENT_ID` and `EXCHANGE_CLIENT_SECRET` (this service's client,
//! HTTP Basic), `EXCHANGE_AUDIENCE` (the downstream's name at the provider),
//! `EXCHANGE_SCOPE` (optional). No token from the provider: `502`; the
//! provider refuses the exchange: `403`; the caller's token about to expire:
//! `401`. The caller's token is never sent downstream.
//! `RUST_LOG` filters the logs (stderr; default `warn`).
//!
//! Outside this repository: copy this file into a new crate as `src/main.rs`,
//! and `examples/shared/` as `src/shared/`, with these lines in its `Cargo.toml`
//! (`dev/copy-out-examples` builds it exactly so; until tower-authx is
//! published, `path` names a checkout of it):
//!
//! ```toml
//! [dependencies]
//! tower-authx = { path = "../tower-authx", features = ["remote-keys"] }
//! hyper-rustls = { version = "0.27", default-features = false, features = ["http1", "tls12", "ring"] }
//! rustls = { version = "0.23", default-features = false, features = ["ring", "std", "tls12"] }
//! bytes = "1"
//! http = "1"
//! http-body = "1"
//! http-body-util = "0.1"
//! hyper = { version = "1", features = ["server", "http1"] }
//! hyper-util = { version = "0.1", features = ["tokio", "server", "http1", "client-legacy"] }
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
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use serde_json::json;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::exchange::{ExchangeConfig, ExchangeError, TokenExchange};
use tower_authx::{AuthX, AuthXConfig, ClientAuth, Issuer, NoExtra, RequestHead, RequireAuthLayer};

#[path = "shared/mod.rs"]
mod shared;
use shared::responses::{Body, boxed, json_response, method_not_allowed, not_found};

/// The downstream's answer is read whole, up to this.
const MAX_DOWNSTREAM_BODY: usize = 1 << 20;

type Downstream = tower_authx::exchange::TokenExchangeService<
    Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
>;

struct App {
    authx: AuthX,
    guard: RequireAuthLayer,
    downstream: Downstream,
    read_url: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::observability::init()?;
    let (host, port) = shared::address(8003)?;
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("set {name}"))
    };
    let iss = env("OIDC_ISSUER")?;
    let tls = tls_config()?;
    let mut issuer = Issuer::discover_with(&iss, tls.clone())
        .await
        .map_err(|e| format!("OIDC_ISSUER {iss}: {e}"))?;
    if let Ok(audience) = env("AUDIENCE") {
        issuer = issuer.audience(audience);
    }
    let authx = AuthX::new(shared::shared_settings(AuthXConfig::from_issuers([issuer])).await?)?;

    let client =
        ClientAuth::secret_basic(env("EXCHANGE_CLIENT_ID")?, env("EXCHANGE_CLIENT_SECRET")?);
    let mut exchange = ExchangeConfig::discover_with_tls(&iss, client, tls.clone())
        .await
        .map_err(|e| format!("OIDC_ISSUER {iss}: {e}"))?
        .audience(env("EXCHANGE_AUDIENCE")?)
        // Delegation: the exchanged token says this service acts for the caller.
        .act_as_client(None);
    if let Ok(scope) = env("EXCHANGE_SCOPE") {
        exchange = exchange.scope(scope);
    }
    let exchange = TokenExchange::new(exchange)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let http = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let app = Arc::new(App {
        guard: RequireAuthLayer::new(authx.clone()),
        authx,
        downstream: exchange.layer().layer(http),
        read_url: format!("{}/read", env("DOWNSTREAM_URL")?.trim_end_matches('/')),
    });

    let listener = TcpListener::bind((host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let service = hyper::service::service_fn(move |req| route(req, app.clone()));
    shared::server::serve(listener, service).await;
    Ok(())
}

/// The platform's roots, and `SSL_CERT_FILE`'s.
fn tls_config() -> Result<rustls::ClientConfig, Box<dyn std::error::Error>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Ok(file) = std::env::var("SSL_CERT_FILE") {
        for cert in CertificateDer::pem_file_iter(&file)? {
            roots.add(cert?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

async fn route(req: Request<Incoming>, app: Arc<App>) -> Result<http::Response<Body>, Infallible> {
    if req.uri().path() != "/relay" {
        return Ok(not_found());
    }
    if req.method() != Method::GET {
        return Ok(method_not_allowed(&Method::GET));
    }
    let handler = {
        let app = app.clone();
        service_fn(move |r: Request<Incoming>| relay(r, app.clone()))
    };
    Ok(boxed(app.guard.layer(handler).oneshot(req).await?))
}

/// Calls the downstream's `/read` for the caller of `req`, with a token
/// exchanged for them.
async fn relay(
    req: Request<Incoming>,
    app: Arc<App>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let Some(caller) = app.authx.caller::<NoExtra>(RequestHead::of(&req)) else {
        // The guard in front admits every request that gets here.
        return Ok(json_response(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Not authenticated"}),
        ));
    };
    let mut call = Request::get(&app.read_url)
        .body(Full::default())
        .expect("a GET of a URL checked at start");
    call.extensions_mut().insert(caller);
    let answer = match app.downstream.clone().oneshot(call).await {
        Ok(answer) => answer,
        Err(error) => {
            let status = match error.downcast_ref::<ExchangeError>() {
                Some(ExchangeError::Refused { .. }) => StatusCode::FORBIDDEN,
                // The caller's token ends within seconds: it must log in again.
                Some(ExchangeError::CallerExpired) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_GATEWAY,
            };
            return Ok(json_response(status, json!({"detail": error.to_string()})));
        }
    };
    let status = answer.status();
    let body = match Limited::new(answer.into_body(), MAX_DOWNSTREAM_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            let detail = format!("the downstream's answer: {e}");
            return Ok(json_response(
                StatusCode::BAD_GATEWAY,
                json!({"detail": detail}),
            ));
        }
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok(json_response(status, json))
}
