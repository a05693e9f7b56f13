//! Whether the guard's cost stays flat as a deployment grows: 1, 10 and 100
//! issuers (the token from the last one configured), 1 and 100 keys in an
//! issuer's JWKS (the token naming the last; a token without `kid` among
//! 100 keys of its algorithm is refused at once, no key tried), and 0 and
//! 1,000,000 revocations held in memory. Keys are fetched over HTTPS from an
//! in-process server on loopback before measuring; the verified-token cache
//! is on where the signature would hide the rest (ES256 verification costs
//! tens of µs, the routing and lookups under a µs).
//!
//!   cargo bench -p tower-authx-dev --bench scale --features remote-keys

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_authx::{
    Algorithm, AuthX, AuthXConfig, Issuer, MemoryStore, NumericDate, RemoteJwks, RequireAuthLayer,
    RevocationStore, TokenRecord,
};

#[path = "../tests/tls/mod.rs"]
mod tls;

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

/// The last issuer's name among `n`.
fn iss(i: usize) -> String {
    format!("https://issuer-{i}.example")
}

/// A JWKS holding the signer's public key `keys` times, as `k0`..`k{keys-1}`.
fn jwks(signer: &AuthX, keys: usize) -> String {
    let published: serde_json::Value = serde_json::from_str(signer.jwks()).unwrap();
    let key = &published["keys"][0];
    let keys: Vec<_> = (0..keys)
        .map(|i| {
            let mut key = key.clone();
            key["kid"] = format!("k{i}").into();
            key
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

fn scale(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let pki = tls::pki();
    let client_tls = tls::client_trusting(pki.ca_der.clone());
    let signer = |issuer: &str, kid: &str| {
        let key = tls::fixture_key(Algorithm::ES256, "ec256_private.pem").with_kid(kid);
        AuthX::new(AuthXConfig::new(key).issuer(issuer)).unwrap()
    };
    let guard = |config: AuthXConfig, token: &str| {
        let service = RequireAuthLayer::new(AuthX::new(config).unwrap()).layer(inner());
        // The first request fetches the keys (every issuer's, as it is asked).
        let first = rt
            .block_on(service.clone().oneshot(request(token)))
            .unwrap();
        (service, first.status())
    };
    let mut group = c.benchmark_group("scale");
    group.measurement_time(Duration::from_secs(3));

    // Issuers: the token is the last configured issuer's; cache on.
    for n in [1, 10, 100] {
        let last = iss(n - 1);
        let signing = signer(&last, "k0");
        let url = rt.block_on(tls::serve_jwks(Some(jwks(&signing, 1)), pki.server.clone()));
        let issuers = (0..n)
            .map(|i| {
                Issuer::new(
                    iss(i),
                    RemoteJwks::new(&url)
                        .unwrap()
                        .tls_config(client_tls.clone()),
                )
            })
            .collect::<Vec<_>>();
        let token = signing.access_token("user1").issue().unwrap();
        let config = AuthXConfig::from_issuers(issuers).verified_token_cache(10_000);
        let (mut service, status) = guard(config, &token);
        assert_eq!(status, 200, "{n} issuers");
        group.bench_function(format!("{n} issuers, cache hit"), |b| {
            b.iter_batched(
                || request(&token),
                |req| now(service.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }

    // Keys per issuer: the token names the last key; cache on. And a token
    // without kid among them: refused at once.
    for keys in [1, 100] {
        let kid = format!("k{}", keys - 1);
        let signing = signer(&iss(0), &kid);
        let url = rt.block_on(tls::serve_jwks(
            Some(jwks(&signing, keys)),
            pki.server.clone(),
        ));
        let remote = RemoteJwks::new(&url)
            .unwrap()
            .tls_config(client_tls.clone());
        let config =
            AuthXConfig::from_issuers([Issuer::new(iss(0), remote)]).verified_token_cache(10_000);
        let token = signing.access_token("user1").issue().unwrap();
        let (mut service, status) = guard(config, &token);
        assert_eq!(status, 200, "{keys} keys");
        group.bench_function(format!("{keys} keys, kid, cache hit"), |b| {
            b.iter_batched(
                || request(&token),
                |req| now(service.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        // Signed by hand: the tokens this crate issues always name their key.
        let kidless = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &serde_json::json!({"sub": "user1", "iss": iss(0), "exp": 4_000_000_000u64}),
            &jsonwebtoken::EncodingKey::from_ec_pem(
                &std::fs::read(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../tests/fixtures/keys/ec256_private.pem"
                ))
                .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let expected = if keys == 1 { 200 } else { 401 };
        let answer = now(service.call(request(&kidless))).unwrap().status();
        assert_eq!(answer, expected, "a token without kid among {keys} keys");
        let what = if keys == 1 { "cache hit" } else { "refused" };
        group.bench_function(format!("{keys} keys, no kid, {what}"), |b| {
            b.iter_batched(
                || request(&kidless),
                |req| now(service.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }

    // Revocations held in memory: none, and a million (one revoked session
    // for each of a million users).
    for held in [0usize, 1_000_000] {
        let store = MemoryStore::with_capacity(held.max(1));
        rt.block_on(async {
            let until = NumericDate::now().plus(Duration::from_secs(3600));
            for i in 0..held {
                let (user, session) = (format!("user-{i}"), format!("revoked-{i}"));
                let record = TokenRecord {
                    subject: &user,
                    jti: Some("a"),
                    session: Some(&session),
                    issued_at: Some(NumericDate::now()),
                    expires: until,
                };
                store.revoke(&record, until).await.unwrap();
            }
        });
        let signing = AuthX::new(
            AuthXConfig::from_secret(b"scale-bench-secret-of-32-bytes!!")
                .unwrap()
                .revocation_store(store),
        )
        .unwrap();
        let token = signing.access_token("user1").issue().unwrap();
        let mut service = RequireAuthLayer::new(signing).layer(inner());
        assert_eq!(now(service.call(request(&token))).unwrap().status(), 200);
        group.bench_function(format!("{held} revocations held, HS256"), |b| {
            b.iter_batched(
                || request(&token),
                |req| now(service.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, scale);
criterion_main!(benches);
