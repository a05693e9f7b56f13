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
//! `GET /dpop` (an HS256 token bound to an ES256 client key, sent with its
//! `DPoP` proof; the replay store here accepts every proof, so that one proof
//! can be sent again and again: the figure is everything but the replay
//! store's insert), `GET /layer` (a layer that does nothing: what axum's
//! `route_layer` costs any middleware). Prints `listening on http://ADDR`, then one line per
//! token kind: `token hs256 <token>`, `token es256 <token>`, `token rs256
//! <token>`, `token eddsa <token>`, `token dpop <token>`, `proof dpop <proof>`,
//! `csrf <value>`.
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
const EC_DER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/keys/ec256_private.der"
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

/// A replay store that has never seen a proof (benchmarks only: it lets one
/// proof be sent again and again).
struct AcceptAll;

impl tower_authx::ReplayStore for AcceptAll {
    fn first_use(&self, _: &tower_authx::ProofUse<'_>) -> tower_authx::StoreFuture<bool> {
        tower_authx::StoreFuture::ready(Ok(true))
    }
}

/// A DPoP client with the fixtures' ES256 key, signing with aws-lc-rs.
struct ProofSigner {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    jwk: serde_json::Value,
}

impl ProofSigner {
    fn new(es256: &AuthX) -> Result<ProofSigner, Box<dyn std::error::Error>> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &std::fs::read(EC_DER)?)
                .map_err(|e| e.to_string())?;
        let mut jwk: serde_json::Value = serde_json::from_str(es256.jwks())?;
        let mut jwk = jwk["keys"][0].take();
        for member in ["kid", "alg", "use"] {
            jwk.as_object_mut().map(|j| j.remove(member));
        }
        Ok(ProofSigner { pair, jwk })
    }

    fn proof(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<String, Box<dyn std::error::Error>> {
        use base64::Engine;
        use sha2::Digest;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let mut claims = serde_json::json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": method,
            "htu": url,
            "iat": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
        });
        if let Some(token) = token {
            claims["ath"] = b64.encode(sha2::Sha256::digest(token)).into();
        }
        let message = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), message.as_bytes())
            .map_err(|e| e.to_string())?;
        Ok(format!("{message}.{}", b64.encode(signature)))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let hs256 = AuthX::new(AuthXConfig::from_secret(SECRET)?)?;
    let cookies = AuthX::new(
        AuthXConfig::from_secret(SECRET)?
            .token_location([TokenLocation::Cookies])
            .cookies(tower_authx::CookieConfig::default().danger_insecure()),
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
    let dpop = AuthX::new(
        AuthXConfig::from_secret(SECRET)?.dpop(
            tower_authx::Dpop::new(&base)
                .proof_lifetime(std::time::Duration::from_secs(7200))
                .replay_store(AcceptAll),
        ),
    )?;

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
        .route(
            "/dpop",
            get(answer).route_layer(RequireAuthLayer::new(dpop.clone())),
        )
        .route("/layer", get(answer).route_layer(do_nothing_layer()));

    println!("listening on {base}");
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
    // A DPoP login, then the one proof every /dpop request sends.
    let client = ProofSigner::new(&es256)?;
    let login = http::Request::post(format!("{base}/login"))
        .header(
            "dpop",
            client.proof("POST", &format!("{base}/login"), None)?,
        )
        .body(())?;
    let key = dpop
        .dpop_key(tower_authx::RequestHead::of(&login))
        .await?
        .ok_or("the login proof was not taken")?;
    let bound = dpop
        .access_token("user1")
        .bound_to(&key)
        .lifetime(std::time::Duration::from_secs(3600))
        .issue()?;
    println!("token dpop {bound}");
    println!(
        "proof dpop {}",
        client.proof("GET", &format!("{base}/dpop"), Some(&bound))?
    );
    let cookie_token = token_of(&cookies)?;
    let claims: tower_authx::Claims =
        cookies.verify_offline(&cookie_token, &tower_authx::Requirement::access())?;
    println!("token cookie {cookie_token}");
    println!("csrf {}", claims.csrf.unwrap_or_default());
    axum::serve(listener, app).await?;
    Ok(())
}
