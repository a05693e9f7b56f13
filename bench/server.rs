//! The server `bench/load.sh guards` drives: one handler (a static JSON
//! answer) behind no guard and behind each of our layers, so that the ratio
//! of two routes is the guard's cost and nothing else.
//!
//! Routes: `GET`/`POST /public` (no guard), `GET /auth` (`RequireAuth`, HS256),
//! `GET /fresh` (`RequireFresh` inside `RequireAuth`), `POST /cookie` (the
//! token in a cookie, with the CSRF double submit), `GET /cached` (the
//! verified-token cache), `GET /es256` and `GET /rs256` (the fixtures' ES256
//! and RS256 keys), `GET /eddsa` (the Ed25519 key), `GET /rs256-cached` (RS256
//! with the verified-token cache),
//! `GET /layer` (a layer that does nothing: what axum's `route_layer` costs
//! any middleware). Prints `listening on http://ADDR`, then one line per
//! token kind: `token hs256 <token>`, `token es256 <token>`, `token rs256
//! <token>`, `token eddsa <token>`, `csrf <value>`.
//!
//! ```sh
//! cargo run --release -p tower-authx-dev --example bench_server --features axum
//! ```

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use http_body::{Body, Frame, SizeHint};
use tower::ServiceBuilder;
use tower::util::MapResponseLayer;
use tower_authx::{
    Algorithm, AuthX, AuthXConfig, Key, RequireAuthLayer, RequireFreshLayer, TokenLocation,
};

const SECRET: &str = "bench-secret-of-at-least-32-bytes!!";
const EC_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/keys/ec256_private.pem"
);
const ED_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/keys/ed25519_private.pem"
);
const RSA_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/keys/rsa_private.pem"
);

/// The body of the do-nothing layer: its own type, as any middleware that may
/// answer by itself has, so axum boxes it as it boxes ours.
struct Passthrough<B>(B);

impl<B: Body + Unpin> Body for Passthrough<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// A layer that does nothing but what any stateful middleware does: holds its
/// state in an `Arc` (so axum's per-request clone counts it) and answers
/// with a body type of its own. `/layer` minus `/public` is the part of a
/// guard's cost that is axum's, not the guard's.
fn do_nothing_layer()
-> MapResponseLayer<impl Fn(Response) -> Response<Passthrough<axum::body::Body>> + Clone> {
    let state = Arc::new([0u64; 8]);
    MapResponseLayer::new(move |response: Response| {
        let _state = &state;
        response.map(Passthrough)
    })
}

async fn answer() -> &'static str {
    r#"{"message":"hello"}"#
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hs256 = AuthX::new(AuthXConfig::from_secret(SECRET)?)?;
    let cookies = AuthX::new(
        AuthXConfig::from_secret(SECRET)?
            .token_location([TokenLocation::Cookies])
            .cookies(tower_authx::CookieConfig::default().secure(false)),
    )?;
    let cached = AuthX::new(AuthXConfig::from_secret(SECRET)?.verified_token_cache(10_000))?;
    let es256 = AuthX::new(AuthXConfig::new(Key::signing_pem(
        Algorithm::ES256,
        &std::fs::read(EC_KEY)?,
    )?))?;
    let rsa = Key::signing_pem(Algorithm::RS256, &std::fs::read(RSA_KEY)?)?;
    let rs256 = AuthX::new(AuthXConfig::new(rsa.clone()))?;
    let rs256_cached = AuthX::new(AuthXConfig::new(rsa).verified_token_cache(10_000))?;
    let eddsa = AuthX::new(AuthXConfig::new(Key::signing_pem(
        Algorithm::EdDSA,
        &std::fs::read(ED_KEY)?,
    )?))?;

    let app = Router::new()
        .route("/public", get(answer).post(answer))
        .route(
            "/auth",
            get(answer).route_layer(RequireAuthLayer::new(hs256.clone())),
        )
        .route(
            "/fresh",
            get(answer).route_layer(
                ServiceBuilder::new()
                    .layer(RequireAuthLayer::new(hs256.clone()))
                    .layer(RequireFreshLayer::new(hs256.clone())),
            ),
        )
        .route(
            "/cookie",
            post(answer).route_layer(RequireAuthLayer::new(cookies.clone())),
        )
        .route(
            "/cached",
            get(answer).route_layer(RequireAuthLayer::new(cached.clone())),
        )
        .route(
            "/es256",
            get(answer).route_layer(RequireAuthLayer::new(es256.clone())),
        )
        .route(
            "/rs256",
            get(answer).route_layer(RequireAuthLayer::new(rs256.clone())),
        )
        .route(
            "/eddsa",
            get(answer).route_layer(RequireAuthLayer::new(eddsa.clone())),
        )
        .route(
            "/rs256-cached",
            get(answer).route_layer(RequireAuthLayer::new(rs256_cached)),
        )
        .route("/layer", get(answer).route_layer(do_nothing_layer()));

    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // Tokens that live an hour, longer than any run.
    let token_of = |authx: &AuthX| {
        authx
            .access_token("user1")
            .fresh(true)
            .lifetime(std::time::Duration::from_secs(3600))
            .issue()
    };
    println!("token hs256 {}", token_of(&hs256)?);
    println!("token es256 {}", token_of(&es256)?);
    println!("token rs256 {}", token_of(&rs256)?);
    println!("token eddsa {}", token_of(&eddsa)?);
    let cookie_token = token_of(&cookies)?;
    let claims: tower_authx::Claims =
        cookies.verify_offline(&cookie_token, &tower_authx::Requirement::access())?;
    println!("token cookie {cookie_token}");
    println!("csrf {}", claims.csrf.unwrap_or_default());
    axum::serve(listener, app).await?;
    Ok(())
}
