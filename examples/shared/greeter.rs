//! The classic tonic hello-world service (`helloworld.Greeter/SayHello`), written
//! out by hand instead of generated, so no `protoc` is needed:
//!
//! ```proto
//! package helloworld;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; }
//! ```
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Answers `SayHello` with `greet(request)`.
#[derive(Clone)]
pub struct GreeterServer<F> {
    greet: F,
}

impl<F> GreeterServer<F>
where
    F: Fn(Request<HelloRequest>) -> Result<HelloReply, Status> + Clone + Send + Sync + 'static,
{
    pub fn new(greet: F) -> Self {
        GreeterServer { greet }
    }
}

impl<F> NamedService for GreeterServer<F> {
    const NAME: &'static str = "helloworld.Greeter";
}

struct SayHello<F>(F);

impl<F> UnaryService<HelloRequest> for SayHello<F>
where
    F: Fn(Request<HelloRequest>) -> Result<HelloReply, Status>,
{
    type Response = HelloReply;
    type Future = std::future::Ready<Result<Response<HelloReply>, Status>>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        std::future::ready((self.0)(request).map(Response::new))
    }
}

impl<F, B> tower::Service<http::Request<B>> for GreeterServer<F>
where
    F: Fn(Request<HelloRequest>) -> Result<HelloReply, Status> + Clone + Send + Sync + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != "/helloworld.Greeter/SayHello" {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let method = SayHello(self.greet.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
            Ok(grpc.unary(method, req).await)
        })
    }
}

/// A client call of `SayHello` over any tonic channel.
pub async fn say_hello(
    channel: tonic::transport::Channel,
    request: Request<HelloRequest>,
) -> Result<Response<HelloReply>, Status> {
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static("/helloworld.Greeter/SayHello");
    client
        .unary(
            request,
            path,
            ProstCodec::<HelloRequest, HelloReply>::default(),
        )
        .await
}
