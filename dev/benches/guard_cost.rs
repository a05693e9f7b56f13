//! The guard's cost per verified HS256 request, measured by alternating
//! rounds so that a noisy machine slows every variant alike: prints the median
//! nanoseconds per request of each variant, and their ratio. With `--features
//! metrics`: recording into nothing against recording into a real exporter
//! (Prometheus, in memory). Run it with and without the feature to see what
//! the feature itself adds (span, two clock reads).
//!
//! ```sh
//! cargo bench --bench guard_cost
//! cargo bench --bench guard_cost --features metrics
//! ```
//!
//! Then the protected resource's cost (RFC 9728 mode) on a scoped route:
//! the same audience check configured plainly and as the resource, for a
//! verified request and for one without a token (whose 401 then names the
//! route's scope).

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Layer, Service, service_fn};
use tower_authx::{AuthX, AuthXConfig, Key, RequireAuthLayer};

type Inner =
    fn(Request<Empty<Bytes>>) -> std::future::Ready<Result<Response<Empty<Bytes>>, Infallible>>;

fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("not ready at once"),
    }
}

struct Variant {
    name: &'static str,
    run: Box<dyn FnMut(usize) -> f64>,
    samples: Vec<f64>,
}

/// A guard over a trivial service, and a function that sends `n` requests
/// through it (requests built beforehand) and answers ns per request.
fn variant(name: &'static str, wrap: fn(&mut dyn FnMut())) -> Variant {
    let authx = AuthX::new(AuthXConfig::new(Key::hs256([7u8; 32]).unwrap())).unwrap();
    let token = authx.access_token("user1").fresh(true).issue().unwrap();
    let inner: Inner = |_req| std::future::ready(Ok(Response::new(Empty::new())));
    let mut service = RequireAuthLayer::new(authx).layer(service_fn(inner));
    let run = move |n: usize| {
        let requests: Vec<_> = (0..n)
            .map(|_| {
                Request::get("/protected")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Empty::<Bytes>::new())
                    .unwrap()
            })
            .collect();
        let mut requests = requests.into_iter();
        let start = Instant::now();
        wrap(&mut || {
            for req in requests.by_ref() {
                let res = now(service.call(req)).unwrap();
                assert_eq!(res.status(), 200);
            }
        });
        start.elapsed().as_nanos() as f64 / n as f64
    };
    Variant {
        name,
        run: Box::new(run),
        samples: Vec::new(),
    }
}

/// A `RequireScopes` guard on a configuration with the resource as its
/// audience, plainly or as a protected resource; `n` requests with the
/// resource's token (or none) and ns per request.
fn resource_variant(name: &'static str, protected: bool, with_token: bool) -> Variant {
    const RESOURCE: &str = "https://mcp.example.com/mcp";
    let config = AuthXConfig::new(Key::hs256([7u8; 32]).unwrap()).issuer("https://as.example");
    let config = if protected {
        config.protected_resource(tower_authx::ProtectedResource::new(RESOURCE))
    } else {
        config.audience(RESOURCE)
    };
    let authx = AuthX::new(config).unwrap();
    let token = authx
        .access_token("agent")
        .scopes(["mcp:tools"])
        .issue()
        .unwrap();
    let inner: Inner = |_req| std::future::ready(Ok(Response::new(Empty::new())));
    let mut service =
        tower_authx::RequireScopesLayer::all(authx, ["mcp:tools"]).layer(service_fn(inner));
    let expected = if with_token { 200 } else { 401 };
    let run = move |n: usize| {
        let requests: Vec<_> = (0..n)
            .map(|_| {
                let request = Request::post("/mcp");
                let request = if with_token {
                    request.header("authorization", format!("Bearer {token}"))
                } else {
                    request
                };
                request.body(Empty::<Bytes>::new()).unwrap()
            })
            .collect();
        let start = Instant::now();
        for req in requests {
            let res = now(service.call(req)).unwrap();
            assert_eq!(res.status(), expected);
        }
        start.elapsed().as_nanos() as f64 / n as f64
    };
    Variant {
        name,
        run: Box::new(run),
        samples: Vec::new(),
    }
}

/// Warms `variants` up, alternates their rounds, and prints each median and
/// its ratio to the first.
fn compare(variants: &mut [Variant]) -> f64 {
    for v in variants.iter_mut() {
        (v.run)(20_000);
    }
    for _ in 0..30 {
        for v in variants.iter_mut() {
            let ns = (v.run)(20_000);
            v.samples.push(ns);
        }
    }
    let base = median(&mut variants[0].samples.clone());
    for v in variants.iter_mut() {
        let m = median(&mut v.samples);
        println!(
            "{:<36} {:>8.0} ns/request   ratio to the first {:.3}",
            v.name,
            m,
            m / base
        );
    }
    base
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    #[allow(unused_mut)]
    let mut variants = vec![variant("guard", |f| f())];
    #[cfg(feature = "metrics")]
    {
        variants[0].name = "guard, metrics into nothing";
        variants.push(variant("guard, metrics into Prometheus", |f| {
            thread_local! {
                static PROMETHEUS: metrics_exporter_prometheus::PrometheusRecorder =
                    metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            }
            PROMETHEUS.with(|recorder| metrics::with_local_recorder(recorder, f));
        }));
    }
    // `GUARD_COST_FIRST_ONLY=1`: the first variant alone, for instruction
    // counts across builds (`perf stat -e instructions`).
    if std::env::var_os("GUARD_COST_FIRST_ONLY").is_some() {
        variants.truncate(1);
    }
    // Read by the metrics probes below.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    let base = compare(&mut variants);
    if std::env::var_os("GUARD_COST_FIRST_ONLY").is_none() {
        compare(&mut [
            resource_variant("scoped, audience = the resource", false, true),
            resource_variant("scoped, as a protected resource", true, true),
        ]);
        compare(&mut [
            resource_variant("no token, 401, plain", false, false),
            resource_variant("no token, 401, protected resource", true, false),
        ]);
    }
    // The memory store's check on two threads at once (as two server workers
    // call it): a subject with entries takes the lock every core contends
    // for; one without is answered by the subject filter, lock-free.
    {
        use tower_authx::{MemoryStore, NumericDate, RevocationStore, TokenRecord};
        let store = MemoryStore::default();
        let expires = NumericDate::now().plus(std::time::Duration::from_secs(3600));
        fn record(subject: &str, expires: NumericDate) -> TokenRecord<'_> {
            TokenRecord {
                subject,
                jti: Some("jti"),
                session: None,
                issued_at: None,
                expires,
            }
        }
        drop(store.revoke(&record("has-entries", expires), expires));
        let run = |subject: &str| {
            let n = 200_000;
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..n {
                            drop(std::hint::black_box(
                                store.is_revoked(&record(subject, expires)),
                            ));
                        }
                    });
                }
            });
            start.elapsed().as_nanos() as f64 / (2 * n) as f64
        };
        let (mut locked, mut filtered) = (Vec::new(), Vec::new());
        for _ in 0..15 {
            locked.push(run("has-entries"));
            filtered.push(run("no-entries"));
        }
        println!(
            "{:<36} {:>8.0} ns/check (subject with entries: the lock)",
            "memory store check, two threads",
            median(&mut locked)
        );
        println!(
            "{:<36} {:>8.0} ns/check (subject without: the filter)",
            "memory store check, two threads",
            median(&mut filtered)
        );
    }
    // What the feature does per request besides recording, timed alone in
    // this run: a span (disabled without a subscriber), and a clock read.
    #[cfg(feature = "metrics")]
    {
        let probe = |name: &str, f: &dyn Fn()| {
            let mut rounds = Vec::new();
            for _ in 0..30 {
                let n = 200_000;
                let start = Instant::now();
                for _ in 0..n {
                    f();
                }
                rounds.push(start.elapsed().as_nanos() as f64 / n as f64);
            }
            let m = median(&mut rounds);
            println!(
                "{name:<36} {m:>8.1} ns/request   ratio to the first {:.3}",
                m / base
            );
        };
        probe("a disabled span", &|| {
            let span = tracing::info_span!(
                "authx.verify",
                layer = "require_auth",
                outcome = tracing::field::Empty,
                reason = tracing::field::Empty,
            );
            std::hint::black_box(span.is_disabled());
        });
        probe("one clock read", &|| {
            std::hint::black_box(Instant::now());
        });
    }
}
