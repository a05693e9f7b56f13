//! What a revocation check costs per request: the memory store (answered in
//! place) and Redis (one round trip on loopback to a real redis-server).
//!
//!   cargo bench --bench revocation --features redis

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower_authx::{MemoryStore, NumericDate, RedisStore, RevocationStore, TokenRecord};

fn until() -> NumericDate {
    NumericDate::now().plus(Duration::from_secs(3600))
}

/// A token of `subject`'s session `session`, issued now.
fn token<'a>(subject: &'a str, jti: &'a str, session: Option<&'a str>) -> TokenRecord<'a> {
    TokenRecord {
        subject,
        jti: Some(jti),
        session,
        issued_at: Some(NumericDate::now()),
        expires: until(),
    }
}

const LIVE: (&str, &str, Option<&str>) = (
    "user-7",
    "8d3c6f1e-0b7a-4c1e-9f55-3f0c2a1b9e77",
    Some("family-1"),
);

fn memory(c: &mut Criterion) {
    let store = MemoryStore::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        // 100k users with one logged-out session each.
        for i in 0..100_000 {
            let (user, session) = (format!("user-{i}"), format!("revoked-{i}"));
            store
                .revoke(&token(&user, "a", Some(&session)), until())
                .await
                .unwrap();
        }
    });
    let mut group = c.benchmark_group("revocation/memory (100k entries)");
    group.bench_function("is_revoked, not revoked", |b| {
        b.to_async(&rt)
            .iter(|| store.is_revoked(&token(LIVE.0, LIVE.1, LIVE.2)))
    });
    group.bench_function("is_revoked, revoked", |b| {
        b.to_async(&rt)
            .iter(|| store.is_revoked(&token("user-4242", "a", Some("revoked-4242"))))
    });
    group.finish();
}

struct RedisServer(Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis(c: &mut Criterion) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Ok(child) = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
    else {
        eprintln!("no redis-server: skipping the Redis benchmarks");
        return;
    };
    let _server = RedisServer(child);
    std::thread::sleep(Duration::from_millis(300));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(async {
        let store = RedisStore::new(&format!("redis://127.0.0.1:{port}/")).unwrap();
        store
            .revoke(&token("user-1", "a", Some("revoked")), until())
            .await
            .unwrap();
        store
    });
    let mut group = c.benchmark_group("revocation/redis (loopback)");
    group.bench_function("is_revoked, not revoked", |b| {
        b.to_async(&rt)
            .iter(|| store.is_revoked(&token(LIVE.0, LIVE.1, LIVE.2)))
    });
    group.bench_function("is_revoked, revoked", |b| {
        b.to_async(&rt)
            .iter(|| store.is_revoked(&token("user-1", "a", Some("revoked"))))
    });
    group.finish();

    // The DPoP replay store: one SET NX PXAT per accepted proof.
    let mut group = c.benchmark_group("replay/redis (loopback)");
    let mut n: u64 = 0;
    group.bench_function("first_use, a new proof", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&n.to_le_bytes());
            let answer = tower_authx::ReplayStore::first_use(
                &store,
                &tower_authx::ProofUse {
                    id: &id,
                    key: "bench-key",
                    subject: None,
                    client: None,
                    expires: tower_authx::NumericDate::now().plus(Duration::from_secs(65)),
                },
            );
            async move { assert!(answer.await.unwrap()) }
        })
    });
    group.finish();
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
