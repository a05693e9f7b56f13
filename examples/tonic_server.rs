//! A tonic server guarded by tower-authx: the standard `grpc.health.v1.Health`
//! service behind `RequireAuth`, and `helloworld.Greeter/SayHello` behind
//! `RequireFresh`, whose reply names the caller. Refusals are gRPC statuses
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
    let authx = AuthX::new(shared::config_from_env()?)?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<GreeterServer<fn(tonic::Request<HelloRequest>) -> Result<HelloReply, Status>>>()
        .await;
    let greeter = GreeterServer::new(say_hello as fn(_) -> _);

    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    Server::builder()
        // Each service keeps its gRPC name through the layer (NamedService).
        .add_service(RequireAuthLayer::new(authx.clone()).layer(health))
        .add_service(RequireFreshLayer::new(authx).layer(greeter))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await?;
    Ok(())
}
