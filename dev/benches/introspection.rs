//! What an opaque token costs (RFC 7662): a cache hit, a miss (one call to
//! an introspection endpoint in this process, over loopback HTTP, with a
//! pooled connection), and the single-flight path (ten concurrent requests
//! with one token, one call); beside a local ES256 JWT for scale.
//!
//!   cargo bench --bench introspection --features remote-keys

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{Empty, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_authx::{
    Algorithm, AuthX, AuthXConfig, ClientAuth, Introspection, Issuer, RemoteJwks, RequireAuthLayer,
};

#[path = "../tests/tls/mod.rs"]
mod tls;

const ISS: &str = "https://as.example";

fn request(token: &str) -> Request<Empty<Bytes>> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap()
}

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

/// An authorization server on loopback: the issuer's JWKS at `/jwks`, and
/// an active answer to every introspection. Its base URL.
async fn authorization_server(jwks: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let answer = serde_json::json!({
        "active": true, "sub": "alice", "client_id": "app", "scope": "read",
        "aud": "https://api.example", "iss": ISS, "token_type": "Bearer",
        "exp": 4_000_000_000u64, "iat": 1_700_000_000u64,
    })
    .to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (answer, jwks) = (answer.clone(), jwks.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let body = if req.uri().path() == "/jwks" {
                            jwks.clone()
                        } else {
                            answer.clone()
                        };
                        async move {
                            let mut res = Response::new(Full::new(Bytes::from(body)));
                            res.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, Infallible>(res)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
}

fn introspection(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let signer = AuthX::new(
        AuthXConfig::new(tls::fixture_key(Algorithm::ES256, "ec256_private.pem"))
            .issuer(ISS)
            .audience("https://api.example"),
    )
    .unwrap();
    let base = rt.block_on(authorization_server(signer.jwks().to_owned()));
    let authx = |cache: Option<Duration>| {
        let mut introspection = Introspection::at(
            &format!("{base}/introspect"),
            ClientAuth::secret_basic("rs", "rs-secret"),
        )
        .unwrap()
        .max_calls_per_second(u32::MAX)
        .max_in_flight(1 << 20);
        if let Some(ttl) = cache {
            introspection = introspection.cache(ttl);
        }
        let issuer = Issuer::new(ISS, RemoteJwks::new(&format!("{base}/jwks")).unwrap())
            .audience("https://api.example")
            .introspection(introspection);
        AuthX::new(AuthXConfig::from_issuers([issuer])).unwrap()
    };
    let mut group = c.benchmark_group("introspection");

    let cached = RequireAuthLayer::new(authx(Some(Duration::from_secs(3600)))).layer(inner());
    let warm = rt.block_on(cached.clone().oneshot(request("opaque-token")));
    assert_eq!(warm.unwrap().status(), 200);
    group.bench_function("cache_hit", |b| {
        let mut service = cached.clone();
        b.iter(|| {
            let res = now(service.call(request("opaque-token"))).unwrap();
            assert_eq!(res.status(), 200);
        });
    });

    let uncached = RequireAuthLayer::new(authx(None)).layer(inner());
    group.bench_function("miss_loopback", |b| {
        b.iter(|| {
            let res = rt.block_on(uncached.clone().oneshot(request("opaque-token")));
            assert_eq!(res.unwrap().status(), 200);
        });
    });

    // Ten at once with one token: one call; the figure is per batch of ten.
    group.bench_function("single_flight_10", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..10 {
                    let service = uncached.clone();
                    tasks.push(tokio::spawn(service.oneshot(request("opaque-token"))));
                }
                for task in tasks {
                    assert_eq!(task.await.unwrap().unwrap().status(), 200);
                }
            });
        });
    });
    group.bench_function("ten_alone_10", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..10 {
                    let res = uncached.clone().oneshot(request("opaque-token")).await;
                    assert_eq!(res.unwrap().status(), 200);
                }
            });
        });
    });

    let local = RequireAuthLayer::new(authx(None)).layer(inner());
    let jwt = signer.access_token("alice").issue().unwrap();
    let warm = rt.block_on(local.clone().oneshot(request(&jwt)));
    assert_eq!(warm.unwrap().status(), 200);
    group.bench_function("local_es256_jwt", |b| {
        let mut service = local.clone();
        b.iter(|| {
            let res = now(service.call(request(&jwt))).unwrap();
            assert_eq!(res.status(), 200);
        });
    });
    group.finish();
}

criterion_group!(benches, introspection);
criterion_main!(benches);
