//! A tonic server guarded by tower-authx: the standard `grpc.health.v1.Health`
//! service behind `RequireAuth`, and `helloworld.Greeter/SayHello` behind
//! `RequireFresh`, whose reply names the caller. Reads `JWT_VERIFIED_CACHE` and
//! `REDIS_URL` (with `--features redis`) like the HTTP examples, so a logout
//! there is refused here. Refusals are gRPC statuses
//! (`UNAUTHENTICATED`, `PERMISSION_DENIED`), never bare HTTP errors.
//!
//! ```sh
//! cargo run --example tonic_server --features tonic   # HOST=127.0.0.1 PORT=50051 JWT_SECRET_KEY=your-secret-key
//! # tokens come from the HTTP example with the same JWT_SECRET_KEY:
//! cargo run --example fresh_token &
//! TOKEN=$(curl -s -X POST localhost:8000/login -d '{"username":"user1","password":"password1"}' | jq -r .fresh_token)
//! grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{"name":"world"}' \
//!     -proto hello.proto localhost:50051 helloworld.Greeter/SayHello
//! ```

use tonic::Status;
use tonic::transport::Server;
use tower::Layer;
use tower_authx::{AuthX, Claims, RequireAuthLayer, RequireFreshLayer};

#[path = "shared/greeter.rs"]
mod greeter;
#[path = "shared/mod.rs"]
mod shared;
use greeter::{GreeterServer, HelloReply, HelloRequest};

fn say_hello(request: tonic::Request<HelloRequest>) -> Result<HelloReply, Status> {
    // RequireFresh put the verified claims into the request's extensions.
    let claims = request
        .extensions()
        .get::<Claims>()
        .ok_or_else(|| Status::internal("SayHello is mounted without its guard"))?;
    Ok(HelloReply {
        message: format!("Hello {}, from {}!", request.get_ref().name, claims.sub),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (host, port) = shared::address(50051)?;
    let authx = AuthX::new(shared::shared_settings(shared::config_from_env()?).await?)?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<GreeterServer<fn(tonic::Request<HelloRequest>) -> Result<HelloReply, Status>>>()
        .await;
    let greeter = GreeterServer::new(say_hello as fn(_) -> _);

    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let connections = shared::server::Acceptor::new(listener).into_stream();
    Server::builder()
        // A call that has not finished in time (a body that never comes) ends;
        // dead peers are found by pings; no connection lives forever.
        .timeout(shared::server::BODY_TIMEOUT)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(shared::server::HEADER_TIMEOUT))
        .max_connection_age(std::time::Duration::from_secs(600))
        .concurrency_limit_per_connection(64)
        // Each service keeps its gRPC name through the layer (NamedService).
        .add_service(RequireAuthLayer::new(authx.clone()).layer(health))
        .add_service(RequireFreshLayer::new(authx).layer(greeter))
        .serve_with_incoming(connections)
        .await?;
    Ok(())
}
