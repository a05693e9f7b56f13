//! What a resource server pays: `RequireAuth` verifying through an issuer's
//! JWKS fetched over HTTPS (an in-process server on loopback, with a CA made
//! here), per algorithm, with and without the verified-token cache, and the
//! cold start (TLS handshake, fetch, first verification).
//!
//!   cargo bench --bench resource --features remote-keys
//!   cargo bench --bench resource --features remote-keys,aws-lc-rs   # the other backend

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_authx::{Algorithm, AuthX, AuthXConfig, RemoteJwks, RequireAuthLayer};

#[path = "../tests/tls/mod.rs"]
mod tls;

fn issuer(alg: Algorithm) -> AuthX {
    let file = if alg == Algorithm::ES256 {
        "ec256_private.pem"
    } else {
        "rsa_private.pem"
    };
    AuthX::new(AuthXConfig::new(tls::fixture_key(alg, file))).unwrap()
}

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

/// Polls a future that needs no waking (keys already fetched).
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("not ready at once"),
    }
}

fn resource(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pki = tls::pki();
    let backend = if cfg!(feature = "aws-lc-rs") {
        "aws-lc-rs"
    } else {
        "ring"
    };
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let issuer = issuer(alg);
        let token = issuer.access_token("user1").fresh(true).issue().unwrap();
        let url = rt.block_on(tls::serve_jwks(
            Some(issuer.jwks().to_owned()),
            pki.server.clone(),
        ));
        let client_tls = tls::client_trusting(pki.ca_der.clone());
        let remote = || {
            RemoteJwks::new(&url)
                .unwrap()
                .tls_config(client_tls.clone())
        };
        let mut group = c.benchmark_group(format!("resource/{alg}/{backend}"));
        for (name, cache) in [("RequireAuth via JWKS", None), ("cache hit", Some(10_000))] {
            let mut config = AuthXConfig::from_jwks(remote()).danger_accept_any_issuer();
            if let Some(capacity) = cache {
                config = config.verified_token_cache(capacity);
            }
            let authx = AuthX::new(config).unwrap();
            let mut service = RequireAuthLayer::new(authx).layer(inner());
            // The first request fetches the keys.
            let _guard = rt.enter();
            let first = rt
                .block_on(service.clone().oneshot(request(&token)))
                .unwrap();
            assert_eq!(first.status(), 200);
            group.bench_function(name, |b| {
                b.iter_batched(
                    || request(&token),
                    |req| now(service.call(req)).unwrap(),
                    BatchSize::SmallInput,
                )
            });
        }
        group.sample_size(20);
        group.bench_function("cold start: TLS, fetch, first verification", |b| {
            b.iter_batched(
                || {
                    RequireAuthLayer::new(
                        AuthX::new(AuthXConfig::from_jwks(remote()).danger_accept_any_issuer())
                            .unwrap(),
                    )
                },
                |layer| {
                    let service = layer.layer(inner());
                    rt.block_on(service.oneshot(request(&token))).unwrap()
                },
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, resource);
criterion_main!(benches);
