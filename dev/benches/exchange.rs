//! What a downstream call on a caller's behalf costs once its exchanged token
//! is cached (RFC 8693): the lookup alone, and a whole call through
//! `TokenExchangeLayer` to a service that answers at once; beside the same
//! call with no layer, and a miss (one exchange at a token endpoint in this
//! process, over loopback HTTP, with a pooled connection).
//!
//!   cargo bench --bench exchange --features remote-keys

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{Empty, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_authx::exchange::{Caller, ExchangeConfig, TokenExchange};
use tower_authx::{AuthX, AuthXConfig, ClientAuth, NoExtra, Requirement};

type Inner =
    fn(Request<Empty<Bytes>>) -> std::future::Ready<Result<Response<Empty<Bytes>>, Infallible>>;

fn inner() -> tower::util::ServiceFn<Inner> {
    service_fn((|_req| std::future::ready(Ok(Response::new(Empty::new())))) as Inner)
}

fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("not ready at once"),
    }
}

/// A token endpoint on loopback that issues the same token to every
/// exchange; its URL.
async fn token_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let answer = serde_json::json!({
        "access_token": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln",
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer", "expires_in": 3600,
    })
    .to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let mut res = Response::new(Full::new(Bytes::from(answer.clone())));
                    res.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    async move { Ok::<_, Infallible>(res) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn exchange(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(token_endpoint());
    let config = || {
        ExchangeConfig::at(&url, ClientAuth::secret_basic("gateway", "s3cret"))
            .unwrap()
            .audience("https://orders.example")
    };
    let issuer = AuthX::new(AuthXConfig::from_secret([7u8; 32]).unwrap()).unwrap();
    let token = issuer.access_token("alice").issue().unwrap();
    let claims = issuer
        .verify_offline::<NoExtra>(&token, &Requirement::access())
        .unwrap();
    let caller = Caller::new(&token, &claims);
    let cached = TokenExchange::new(config()).unwrap();
    rt.block_on(cached.exchange(&caller)).unwrap();
    let request = || {
        let mut request = Request::get("http://orders.example/read")
            .body(Empty::<Bytes>::new())
            .unwrap();
        request.extensions_mut().insert(caller.clone());
        request
    };

    let mut group = c.benchmark_group("exchange");
    group.bench_function("cached_lookup", |b| {
        b.iter(|| now(cached.exchange(&caller)).unwrap());
    });
    let mut layered = cached.layer().layer(inner());
    group.bench_function("call_through_layer_cached", |b| {
        b.iter(|| {
            now(std::future::poll_fn(|cx| layered.poll_ready(cx))).unwrap();
            now(layered.call(request())).unwrap()
        });
    });
    let mut bare = inner();
    group.bench_function("call_without_layer", |b| {
        b.iter(|| now(bare.ready()).unwrap().call(request()))
    });
    group.bench_function("miss_loopback", |b| {
        b.iter_batched(
            || TokenExchange::new(config().cache_capacity(0)).unwrap(),
            |fresh| rt.block_on(fresh.exchange(&caller)).unwrap(),
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, exchange);
criterion_main!(benches);
