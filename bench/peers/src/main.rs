//! jwt-authorizer in front of the handler bench/server.rs serves: `GET
//! /public` (no guard), `GET /rs256`, `GET /es256` and `GET /eddsa` (the
//! fixtures' public keys). Prints `listening on http://ADDR`. The tokens come from our bench
//! server (same keys), so both verify the very same bytes.

use axum::Router;
use axum::routing::get;
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer};
use serde::Deserialize;

#[derive(Clone, Deserialize)]
struct Claims {
    #[allow(dead_code)]
    sub: String,
}

async fn answer() -> &'static str {
    r#"{"message":"hello"}"#
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/keys");
    let rs256: Authorizer<Claims> =
        JwtAuthorizer::from_rsa_pem(&format!("{keys}/rsa_public.pem")).build().await?;
    let es256: Authorizer<Claims> =
        JwtAuthorizer::from_ec_pem(&format!("{keys}/ec256_public.pem")).build().await?;
    let eddsa: Authorizer<Claims> =
        JwtAuthorizer::from_ed_pem(&format!("{keys}/ed25519_public.pem")).build().await?;
    let app = Router::new()
        .route("/public", get(answer))
        .route("/rs256", get(answer).route_layer(rs256.into_layer()))
        .route("/es256", get(answer).route_layer(es256.into_layer()))
        .route("/eddsa", get(answer).route_layer(eddsa.into_layer()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
