//! The cost of the guard, side by side with a bare `jsonwebtoken::decode` of the
//! same token, per algorithm; stacked guards; the rejection paths; and the heap
//! allocations of one guarded request (counted, printed, never asserted).
//!
//!   cargo bench --bench verify

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use serde::Deserialize;
use tower::{Layer, Service, service_fn};
use tower_authx::{
    Algorithm, AuthX, AuthXConfig, Key, ReplayStore, RequireAuthLayer, RequireFreshLayer,
};

/// Counts heap allocations, to report them per request.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/keys/");

fn key(alg: Algorithm) -> Key {
    let file = match alg {
        Algorithm::ES256 => "ec256_private.pem",
        Algorithm::ES384 => "ec384_private.pem",
        Algorithm::EdDSA => "ed25519_private.pem",
        a if a.is_hmac() => return Key::hmac(a, [7u8; 64]).unwrap(),
        _ => "rsa_private.pem",
    };
    Key::signing_pem(alg, &std::fs::read(format!("{KEYS}{file}")).unwrap()).unwrap()
}

/// What a bare decode reads: the same claims, into a plain struct.
#[allow(dead_code)]
#[derive(Deserialize)]
struct BareClaims {
    sub: String,
    jti: Option<String>,
    #[serde(rename = "type")]
    token_type: Option<String>,
    fresh: Option<serde_json::Value>,
    csrf: Option<String>,
    iat: Option<u64>,
    exp: u64,
    fam: Option<String>,
}

fn request(token: &str) -> Request<Empty<Bytes>> {
    Request::get("/protected")
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap()
}

/// Polls a future that needs no waking (the guard and the inner service here
/// are ready at once).
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("not ready at once"),
    }
}

type Inner =
    fn(Request<Empty<Bytes>>) -> std::future::Ready<Result<Response<Empty<Bytes>>, Infallible>>;

fn inner() -> tower::util::ServiceFn<Inner> {
    service_fn((|_req| std::future::ready(Ok(Response::new(Empty::new())))) as Inner)
}

fn algorithms(c: &mut Criterion) {
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = key(alg);
        let decoding = key_decoding(alg);
        let authx = AuthX::new(AuthXConfig::new(key)).unwrap();
        let token = authx.access_token("user1").fresh(true).issue().unwrap();
        let mut validation = jsonwebtoken::Validation::new(alg_jwt(alg));
        validation.leeway = 0;
        let mut service = RequireAuthLayer::new(authx.clone()).layer(inner());

        let mut group = c.benchmark_group(format!("verify/{alg}"));
        group.bench_function("bare jsonwebtoken::decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<BareClaims>(black_box(&token), &decoding, &validation)
                    .unwrap()
            })
        });
        group.bench_function("RequireAuth service call", |b| {
            b.iter_batched(
                || request(&token),
                |req| now(service.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

/// The opt-in verified-token cache: a repeat token (hit) and a new one (miss:
/// full verification plus the insertion).
fn cache(c: &mut Criterion) {
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
        let authx = AuthX::new(AuthXConfig::new(key(alg)).verified_token_cache(100_000)).unwrap();
        let token = authx.access_token("user1").fresh(true).issue().unwrap();
        let mut service = RequireAuthLayer::new(authx.clone()).layer(inner());
        let mut group = c.benchmark_group(format!("cache/{alg}"));
        group.bench_function("RequireAuth, cache hit", |b| {
            b.iter_batched(
                || request(&token),
                |req| now(service.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("RequireAuth, cache miss", |b| {
            b.iter_batched(
                || request(&authx.access_token("user1").fresh(true).issue().unwrap()),
                |req| now(service.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

fn key_decoding(alg: Algorithm) -> jsonwebtoken::DecodingKey {
    let public = |file: &str| std::fs::read(format!("{KEYS}{file}")).unwrap();
    use jsonwebtoken::DecodingKey as D;
    match alg {
        a if a.is_hmac() => D::from_secret(&[7u8; 64]).unwrap(),
        Algorithm::ES256 => D::from_ec_pem(&public("ec256_public.pem")).unwrap(),
        Algorithm::ES384 => {
            let authx = AuthX::new(AuthXConfig::new(key(Algorithm::ES384))).unwrap();
            let jwks: serde_json::Value = serde_json::from_str(authx.jwks()).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(jwks["keys"][0].clone()).unwrap();
            D::from_jwk(&jwk).unwrap()
        }
        Algorithm::EdDSA => D::from_ed_pem(&public("ed25519_public.pem")).unwrap(),
        _ => D::from_rsa_pem(&public("rsa_public.pem")).unwrap(),
    }
}

fn alg_jwt(alg: Algorithm) -> jsonwebtoken::Algorithm {
    alg.as_str().parse().unwrap()
}

fn stacked_and_rejections(c: &mut Criterion) {
    let authx = AuthX::new(AuthXConfig::new(key(Algorithm::HS256))).unwrap();
    let token = authx.access_token("user1").fresh(true).issue().unwrap();
    let mut auth = RequireAuthLayer::new(authx.clone()).layer(inner());
    let mut stacked = RequireAuthLayer::new(authx.clone())
        .layer(RequireFreshLayer::new(authx.clone()).layer(inner()));

    // The claims an identity provider adds (Keycloak's, here, but for its
    // `typ`, which our builder reserves): ours ignores them (NoExtra), a
    // handler's own type would read them.
    let idp = authx
        .access_token("user1")
        .fresh(true)
        .acr("1")
        .extra(&serde_json::json!({
            "azp": "web-app", "sid": "0c5e7c1e-6a0e-4e0b-9d4c-3b1f2a7d8e90",
            "allowed-origins": ["https://app.example.com"],
            "realm_access": {"roles": ["offline_access", "uma_authorization", "user"]},
            "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
            "email_verified": true, "name": "Ada Lovelace", "preferred_username": "ada",
            "given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.com",
            "session_state": "9f0a1b2c-3d4e-5f60-7182-93a4b5c6d7e8"
        }))
        .issue()
        .unwrap();

    let mut group = c.benchmark_group("guard/HS256");
    group.bench_function("RequireAuth, with an IdP's extra claims", |b| {
        b.iter_batched(
            || request(&idp),
            |req| now(auth.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("RequireAuth", |b| {
        b.iter_batched(
            || request(&token),
            |req| now(auth.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // What a guard pays once some route of its AuthX ends streams with the
    // credential: it keeps its requirement in the request, for renewals.
    #[cfg(feature = "streams")]
    {
        let watched = AuthX::new(AuthXConfig::new(key(Algorithm::HS256))).unwrap();
        let _streams = tower_authx::layer::EndWithCredentialLayer::new(&watched);
        let token = watched.access_token("user1").fresh(true).issue().unwrap();
        let mut auth = RequireAuthLayer::new(watched).layer(inner());
        group.bench_function("RequireAuth, streams watched", |b| {
            b.iter_batched(
                || request(&token),
                |req| now(auth.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.bench_function("RequireFresh inside RequireAuth", |b| {
        b.iter_batched(
            || request(&token),
            |req| now(stacked.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let huge = ".".repeat(1 << 20);
    let cases = [
        ("reject: no header", None),
        ("reject: garbage token", Some("garbage".to_owned())),
        ("reject: bad signature", Some(tampered)),
        ("reject: 1 MB token", Some(huge)),
    ];
    for (name, token) in cases {
        group.bench_function(name, |b| {
            b.iter_batched(
                || match &token {
                    Some(t) => request(t),
                    None => Request::get("/protected").body(Empty::new()).unwrap(),
                },
                |req| now(auth.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    // Allocations of one request through the guard (request built beforehand;
    // after a first request, as in a running service): a bare request, and
    // one as a server hands it, its extensions already holding an entry (the
    // peer address; axum and the examples put theirs there), so the
    // extensions' map is not the guard's to make.
    for (name, token) in [("verified", token.as_str()), ("garbage", "garbage")] {
        for served in [false, true] {
            let request = |token: &str| {
                let mut req = request(token);
                if served {
                    let peer: std::net::SocketAddr = ([127, 0, 0, 1], 40000).into();
                    req.extensions_mut().insert(peer);
                }
                req
            };
            drop(now(auth.call(request(token))));
            let req = request(token);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let res = now(auth.call(req)).unwrap();
            let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
            drop(res);
            let how = if served { ", as served" } else { "" };
            println!("allocations per request, HS256 {name}{how}: {during}");
        }
    }
}

/// A fresh DPoP proof by the client's key for `htm` on `url`, with `ath` for `token`.
fn proof(
    alg: Algorithm,
    encoding: &jsonwebtoken::EncodingKey,
    jwk: &serde_json::Value,
    (htm, url): (&str, &str),
    token: Option<&str>,
) -> String {
    use base64::Engine;
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let header = serde_json::json!({"typ": "dpop+jwt", "alg": alg.as_str(), "jwk": jwk});
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = serde_json::json!({
        "jti": format!("bench-{}", JTI.fetch_add(1, Ordering::Relaxed)),
        "htm": htm,
        "htu": url,
        "iat": iat,
    });
    if let Some(token) = token {
        claims["ath"] = b64.encode(sha2::Sha256::digest(token.as_bytes())).into();
    }
    let message = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), encoding, alg_jwt(alg)).unwrap();
    format!("{message}.{signature}")
}

const PROTECTED: (&str, &str) = ("GET", "https://api.example.com/protected");

/// A token of the right shape that no key signed.
const GARBAGE: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

/// What DPoP adds to a verified HS256 request: the proof's checks and one
/// more signature, then the replay store (in memory).
fn dpop(c: &mut Criterion) {
    let plain = AuthX::new(AuthXConfig::new(key(Algorithm::HS256))).unwrap();
    let bearer = plain.access_token("user1").fresh(true).issue().unwrap();
    let mut bearer_guard = RequireAuthLayer::new(plain).layer(inner());
    let mut group = c.benchmark_group("dpop/HS256 token");
    group.bench_function("Bearer (no DPoP)", |b| {
        b.iter_batched(
            || request(&bearer),
            |req| now(bearer_guard.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // What an unauthenticated refusal costs: a garbage Bearer token, and below
    // the same garbage with a valid-looking proof of each algorithm.
    group.bench_function("refused: garbage Bearer token", |b| {
        b.iter_batched(
            || request(GARBAGE),
            |req| assert_eq!(now(bearer_guard.call(req)).unwrap().status(), 401),
            BatchSize::SmallInput,
        )
    });
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let client = AuthX::new(AuthXConfig::new(key(alg))).unwrap();
        let jwks: serde_json::Value = serde_json::from_str(client.jwks()).unwrap();
        let jwk = serde_json::json!({
            "kty": jwks["keys"][0]["kty"], "crv": jwks["keys"][0]["crv"], "x": jwks["keys"][0]["x"],
            "y": jwks["keys"][0]["y"], "n": jwks["keys"][0]["n"], "e": jwks["keys"][0]["e"],
        });
        let jwk = serde_json::Value::Object(
            jwk.as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        let pem = std::fs::read(format!(
            "{KEYS}{}",
            match alg {
                Algorithm::ES256 => "ec256_private.pem",
                Algorithm::EdDSA => "ed25519_private.pem",
                _ => "rsa_private.pem",
            }
        ))
        .unwrap();
        let encoding = match alg {
            Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(&pem),
            _ => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
        }
        .unwrap();
        let server = AuthX::new(
            AuthXConfig::new(key(Algorithm::HS256)).dpop(
                tower_authx::Dpop::new("https://api.example.com").replay_store(
                    // Room for every proof of the run (the defaults allow 10 000 a
                    // key, 20 000 an account).
                    tower_authx::MemoryReplay::new(10_000_000)
                        .per_key(10_000_000)
                        .per_subject(10_000_000),
                ),
            ),
        )
        .unwrap();
        // Bound to the client's key through a login proof.
        let login = proof(
            alg,
            &encoding,
            &jwk,
            ("POST", "https://api.example.com/login"),
            None,
        );
        let login = Request::post("/login")
            .header("dpop", login)
            .body(())
            .unwrap();
        let bound = now(server.dpop_key(tower_authx::RequestHead::of(&login)))
            .unwrap()
            .unwrap();
        let token = server
            .access_token("user1")
            .bound_to(&bound)
            .issue()
            .unwrap();
        let mut guard = RequireAuthLayer::new(server).layer(inner());
        group.bench_function(format!("refused: garbage token, {alg} proof"), |b| {
            b.iter_batched(
                || {
                    Request::get("/protected")
                        .header("authorization", format!("DPoP {GARBAGE}"))
                        .header(
                            "dpop",
                            proof(alg, &encoding, &jwk, PROTECTED, Some(GARBAGE)),
                        )
                        .body(Empty::new())
                        .unwrap()
                },
                |req| assert_eq!(now(guard.call(req)).unwrap().status(), 401),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("DPoP, {alg} proof"), |b| {
            b.iter_batched(
                || {
                    Request::get("/protected")
                        .header("authorization", format!("DPoP {token}"))
                        .header("dpop", proof(alg, &encoding, &jwk, PROTECTED, Some(&token)))
                        .body(Empty::new())
                        .unwrap()
                },
                |req| {
                    let res = now(guard.call(req)).unwrap();
                    assert_eq!(res.status(), 200);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let store = tower_authx::MemoryReplay::new(10_000_000)
        .per_key(10_000_000)
        .per_subject(10_000_000);
    let mut group = c.benchmark_group("dpop/replay store");
    let mut n: u64 = 0;
    group.bench_function("MemoryReplay first_use", |b| {
        b.iter(|| {
            n += 1;
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&n.to_le_bytes());
            let proof = tower_authx::ProofUse {
                id: &id,
                key: "bench-key-thumbprint",
                subject: Some("bench-account"),
                client: None,
                expires: tower_authx::NumericDate::now().plus(Duration::from_secs(65)),
            };
            now(store.first_use(&proof)).unwrap()
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// With `--features metrics`: one verified HS256 request recording into a real
/// exporter (Prometheus, in memory) against the same request recording into
/// nothing, in one run. (The feature's span and clock reads are in both; the
/// feature off against on is `guard/HS256/RequireAuth` built both ways.)
#[cfg(feature = "metrics")]
fn metrics(c: &mut Criterion) {
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let noop = metrics::NoopRecorder;
    let mut group = c.benchmark_group("metrics/HS256 RequireAuth");
    for (name, recorder) in [
        ("no recorder", &noop as &dyn metrics::Recorder),
        ("Prometheus recorder", &prometheus),
    ] {
        // A handle per AuthX, resolved under the recorder of its first request.
        let authx = AuthX::new(AuthXConfig::new(key(Algorithm::HS256))).unwrap();
        let token = authx.access_token("user1").fresh(true).issue().unwrap();
        let mut auth = RequireAuthLayer::new(authx).layer(inner());
        group.bench_function(name, |b| {
            b.iter_batched(
                || request(&token),
                |req| metrics::with_local_recorder(recorder, || now(auth.call(req)).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

#[cfg(not(feature = "metrics"))]
fn metrics(_: &mut Criterion) {}

/// A composed rule against today's scope check, on one HS256 token that holds
/// the scope and two roles (read through `Idp::authx()` in every variant, so
/// that only the rule differs): time and allocations per request.
fn rules(c: &mut Criterion) {
    use tower_authx::{Idp, Requirement, Rule};
    let authx =
        AuthX::new(AuthXConfig::new(key(Algorithm::HS256)).permissions(Idp::authx())).unwrap();
    let token = authx
        .access_token("user1")
        .scopes(["orders:write"])
        .extra(&serde_json::json!({"roles": ["staff", "auditor"]}))
        .issue()
        .unwrap();
    let variants = [
        (
            "scope orders:write (today's check)",
            Requirement::access().all_scopes(["orders:write"]),
        ),
        (
            "any_of(role admin, scope orders:write)",
            Requirement::access().rule(Rule::any_of([
                Rule::any_role(["admin"]),
                Rule::all_scopes(["orders:write"]),
            ])),
        ),
        (
            "all_of(scope, role staff, predicate)",
            Requirement::access().rule(Rule::all_of([
                Rule::all_scopes(["orders:write"]),
                Rule::any_role(["staff"]),
                Rule::predicate("subject set", |c| !c.sub.is_empty()),
            ])),
        ),
    ];
    let mut group = c.benchmark_group("rules/HS256");
    for (name, requirement) in variants {
        let mut guard = authx.guard(requirement).unwrap().layer(inner());
        drop(now(guard.call(request(&token))));
        let req = request(&token);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let res = now(guard.call(req)).unwrap();
        let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(res.status(), 200);
        drop(res);
        println!("allocations per request, {name}: {during}");
        group.bench_function(name, |b| {
            b.iter_batched(
                || request(&token),
                |req| now(guard.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = algorithms, stacked_and_rejections, cache, dpop, metrics, rules
}
criterion_main!(benches);
