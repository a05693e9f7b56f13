//! What an operator scrapes: the axum example (`dev/examples/axum.rs`, built
//! with `--features metrics` as `cargo test --all-features` builds it; the seed
//! example serves no `/metrics`) behind a real Redis,
//! after a known mix of requests; every counter's value, and no token,
//! subject or jti anywhere in the scrape.
#![cfg(all(feature = "metrics", feature = "redis", feature = "axum"))]

use crate::support;

use http::StatusCode;
use serde_json::json;
use support::{HS256, Redis, SECRET, Server, forge, now, payload_of};

/// The value of `metric` on the lines that carry every one of `labels`, summed.
fn value(scrape: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} "))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_mix_of_requests_is_counted_by_reason() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let url = redis.url();
    let server = Server::start(
        "axum",
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_LOCAL_VIEW", "0"),
            ("JWT_VERIFIED_CACHE", "100"),
        ],
    )
    .await;
    let get = |path: &'static str, token: Option<String>| {
        let call = server.get(path);
        let call = match &token {
            Some(token) => call.bearer(token),
            None => call,
        };
        call.send()
    };
    let (fresh, refresh) = server.login().await;
    let mut secrets = vec![fresh.clone(), refresh.clone()];
    // 3 allowed (the first a cache miss, then two hits).
    for _ in 0..3 {
        assert_eq!(
            get("/protected", Some(fresh.clone())).await.status,
            StatusCode::OK
        );
    }
    // 2 without a token.
    for _ in 0..2 {
        assert_eq!(
            get("/protected", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // 1 expired, 1 with a bad signature.
    let expired = forge(
        HS256,
        &json!({"sub": "user1", "type": "access", "exp": now() - 60, "jti": "expired-jti"})
            .to_string(),
        SECRET.as_bytes(),
    );
    assert_eq!(
        get("/protected", Some(expired.clone())).await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut tampered = fresh.clone();
    tampered.pop();
    tampered.push(if fresh.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        get("/protected", Some(tampered.clone())).await.status,
        StatusCode::UNAUTHORIZED
    );
    secrets.extend([expired, tampered]);
    // A refresh through the seed's way (allowed by the any-type guard), then
    // the non-fresh token on the fresh route.
    let res = server.post("/refresh").bearer(&fresh).send().await;
    let non_fresh = res.json()["access_token"].as_str().unwrap().to_owned();
    secrets.push(non_fresh.clone());
    assert_eq!(
        get("/fresh-required", Some(non_fresh.clone())).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A logout (allowed), then the logged-out token: revoked.
    let (other, _) = server.login().await;
    secrets.push(other.clone());
    assert_eq!(
        server.post("/logout").bearer(&other).send().await.status,
        StatusCode::OK
    );
    assert_eq!(
        get("/protected", Some(other.clone())).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Redis down: the store cannot answer.
    redis.kill();
    assert_eq!(
        get("/protected", Some(non_fresh.clone())).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let scrape = get("/metrics", None).await;
    assert_eq!(scrape.status, StatusCode::OK);
    let scrape = scrape.text();
    let requests = "authx_requests_total";
    let refused = |reason: &str| {
        value(
            &scrape,
            requests,
            &[("outcome", "refused"), ("reason", reason)],
        )
    };
    assert_eq!(
        value(
            &scrape,
            requests,
            &[("layer", "require_auth"), ("outcome", "allowed")]
        ),
        3.0 + 1.0 + 1.0,
        "{scrape}"
    );
    assert_eq!(refused("missing_token"), 2.0, "{scrape}");
    assert_eq!(refused("expired"), 1.0, "{scrape}");
    assert_eq!(refused("bad_signature"), 1.0, "{scrape}");
    assert_eq!(
        value(
            &scrape,
            requests,
            &[("layer", "require_fresh"), ("reason", "not_fresh")]
        ),
        1.0
    );
    assert_eq!(refused("revoked"), 1.0, "{scrape}");
    assert_eq!(refused("store_unavailable"), 1.0, "{scrape}");
    assert_eq!(
        value(&scrape, requests, &[]),
        12.0,
        "every guarded request once: {scrape}"
    );
    // The verified-token cache: the same token again is a hit.
    assert!(
        value(&scrape, "authx_verified_cache_total", &[("result", "hit")]) >= 2.0,
        "{scrape}"
    );
    assert!(
        value(&scrape, "authx_verified_cache_total", &[("result", "miss")]) >= 1.0,
        "{scrape}"
    );
    // Latencies: every guarded request, and the network store's answers.
    // Sampled: one guarded request in 8 per thread, the first one included.
    let timed = value(&scrape, "authx_verify_duration_seconds_count", &[]);
    assert!((1.0..=12.0).contains(&timed), "{scrape}");
    assert!(
        value(
            &scrape,
            "authx_store_duration_seconds_count",
            &[("store", "revocation"), ("result", "ok")]
        ) >= 5.0
    );
    assert_eq!(
        value(
            &scrape,
            "authx_store_duration_seconds_count",
            &[("result", "error")]
        ),
        1.0
    );
    assert!(scrape.contains("# HELP authx_requests_total"), "described");
    // Nothing that names a token, its subject or its jti.
    for secret in &secrets {
        let claims = payload_of(secret);
        assert!(!scrape.contains(secret.as_str()));
        assert!(
            !scrape.contains(&secret[secret.len() - 20..]),
            "a token's signature"
        );
        if let Some(jti) = claims["jti"].as_str() {
            assert!(!scrape.contains(jti), "a jti");
        }
    }
    assert!(!scrape.contains("user1"), "a subject");
}
