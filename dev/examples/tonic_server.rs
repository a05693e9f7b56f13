//! A tonic server guarded by tower-authx: the standard `grpc.health.v1.Health`
//! service behind `RequireAuth` (its server stream `Watch` ends when the
//! token does, at expiry or logout, with `UNAUTHENTICATED`), and `helloworld.Greeter/SayHello` behind
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
//!
//! Outside this repository: copy this file into a new crate as `src/main.rs`,
//! and `examples/shared/` as `src/shared/`, with these lines in its `Cargo.toml`
//! (`dev/copy-out-examples` builds it exactly so; until tower-authx is
//! published, `path` names a checkout of it):
//!
//! ```toml
//! [dependencies]
//! tower-authx = { path = "../tower-authx", features = ["tonic", "streams"] }
//! prost = "0.14"
//! tokio-stream = { version = "0.1", features = ["net"] }
//! tonic = "0.14"
//! tonic-health = "0.14"
//! tonic-prost = "0.14"
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

use tonic::Status;
use tonic::transport::Server;
use tower::Layer;
use tower_authx::layer::EndWithCredentialLayer;
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
    shared::observability::init()?; // logs by RUST_LOG
    let (host, port) = shared::address(50051)?;
    let authx = AuthX::new(shared::shared_settings(shared::config_from_env()?).await?)?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<GreeterServer<fn(tonic::Request<HelloRequest>) -> Result<HelloReply, Status>>>()
        .await;
    let greeter = GreeterServer::new(say_hello as fn(_) -> _);

    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let connections = incoming(shared::server::Acceptor::new(listener));
    Server::builder()
        // A call that has not finished in time (a body that never comes) ends;
        // dead peers are found by pings; no connection lives forever.
        .timeout(shared::server::BODY_TIMEOUT)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(shared::server::HEADER_TIMEOUT))
        .max_connection_age(std::time::Duration::from_secs(600))
        .concurrency_limit_per_connection(64)
        // Each service keeps its gRPC name through the layer (NamedService).
        // Health/Watch streams until the token ends, then UNAUTHENTICATED.
        .add_service(
            RequireAuthLayer::new(authx.clone())
                .layer(EndWithCredentialLayer::new(&authx).layer(health)),
        )
        .add_service(RequireFreshLayer::new(authx).layer(greeter))
        .serve_with_incoming(connections)
        .await?;
    Ok(())
}

/// A connection that holds its place under `MAX_CONNECTIONS` until dropped
/// (tonic takes a stream of connections, not a listener). Its requests are
/// not seen here: one that has not spoken within the grace may be closed to
/// make room (it reads the end of the stream), one that has is kept.
struct Counted {
    stream: tokio::net::TcpStream,
    permit: shared::server::Permit,
    /// Resolves when the accept loop needs this place; `None` once it has.
    evicted: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

/// Every connection `acceptor` accepts, as a stream for `serve_with_incoming`.
fn incoming(
    mut acceptor: shared::server::Acceptor,
) -> tokio_stream::wrappers::ReceiverStream<Result<Counted, std::io::Error>> {
    let (send, receive) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let (stream, permit) = acceptor.accept().await;
            let connection = permit.connection().clone();
            let counted = Counted {
                stream,
                permit,
                evicted: Some(Box::pin(async move { connection.closed().await })),
            };
            if send.send(Ok(counted)).await.is_err() {
                return; // the server is gone
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receive)
}

impl tonic::transport::server::Connected for Counted {
    type ConnectInfo = <tokio::net::TcpStream as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(evicted) = self.evicted.as_mut()
            && evicted.as_mut().poll(cx).is_ready()
        {
            self.evicted = None;
            return std::task::Poll::Ready(Ok(())); // the end: it never spoke
        }
        let before = buf.filled().len();
        let read = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.permit.connection().spoke();
            self.evicted = None;
        }
        read
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
