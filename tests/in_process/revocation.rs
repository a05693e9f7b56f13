//! Revocation, logout and refresh rotation in process: one store suite run
//! against the memory store and a real `redis-server`, the stores' bounds, the
//! handle's logout and rotation, and the layer's async step. The examples'
//! side is in e2e_revocation.rs.

use crate::support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
#[cfg(feature = "redis")]
use support::Redis;
use support::SECRET;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_authx::{
    AuthError, AuthX, AuthXConfig, Claims, MemoryStore, NumericDate, RefreshUse, RequireAuthLayer,
    RequireFreshLayer, Requirement, RevocationStore, SessionInfo, TokenRecord,
};

fn in_secs(secs: u64) -> NumericDate {
    NumericDate::now().plus(Duration::from_secs(secs))
}

/// A token record for `subject`, issued now, valid a minute.
fn record<'a>(subject: &'a str, jti: &'a str, session: Option<&'a str>) -> TokenRecord<'a> {
    TokenRecord {
        subject,
        jti: Some(jti),
        session,
        issued_at: Some(NumericDate::now()),
        expires: in_secs(60),
    }
}

/// The contract every store keeps.
async fn store_suite(store: &dyn RevocationStore) {
    let id = |s: &str| format!("{s}-{}", uuid_like());
    let (user, other_user) = (id("user"), id("user"));
    let (jti, family) = (id("jti"), id("family"));

    // A token of no session is revoked alone, until its exp.
    let lone = record(&user, &jti, None);
    assert!(!store.is_revoked(&lone).await.unwrap());
    store.revoke(&lone, in_secs(120)).await.unwrap();
    assert!(store.is_revoked(&lone).await.unwrap());
    let other = id("other");
    assert!(
        !store
            .is_revoked(&record(&user, &other, None))
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_revoked(&record(&other_user, &jti, None))
            .await
            .unwrap()
    );

    // A session's revocation covers every token of the session.
    let access = id("access");
    store
        .revoke(&record(&user, &access, Some(&family)), in_secs(120))
        .await
        .unwrap();
    let any = id("any");
    assert!(
        store
            .is_revoked(&record(&user, &any, Some(&family)))
            .await
            .unwrap()
    );

    // Rotation: only the session's current refresh token can be spent; an
    // earlier one is a reuse, which revokes the session.
    let session = id("session");
    let (r0, r1, r2) = (id("r0"), id("r1"), id("r2"));
    let spend = |jti: &str, next: &str| {
        store.spend_refresh(&record(&user, jti, Some(&session)), next, in_secs(120))
    };
    assert_eq!(spend(&r0, &r1).await.unwrap(), RefreshUse::First);
    assert_eq!(spend(&r1, &r2).await.unwrap(), RefreshUse::First);
    assert_eq!(spend(&r0, &id("x")).await.unwrap(), RefreshUse::Reused);
    assert!(
        store
            .is_revoked(&record(&user, &access, Some(&session)))
            .await
            .unwrap()
    );
    assert_eq!(
        spend(&r2, &id("x")).await.unwrap(),
        RefreshUse::FamilyRevoked
    );

    // A logged-out session cannot rotate.
    let (gone, g0) = (id("gone"), id("g0"));
    store
        .revoke(&record(&user, &id("a"), Some(&gone)), in_secs(120))
        .await
        .unwrap();
    let spent = store.spend_refresh(&record(&user, &g0, Some(&gone)), "n", in_secs(120));
    assert_eq!(spent.await.unwrap(), RefreshUse::FamilyRevoked);

    // Entries end with their tokens: already expired ones are not even kept,
    // short ones lapse.
    let (past, short) = (id("past"), id("short"));
    let mut expired = record(&user, &past, None);
    expired.expires = NumericDate::from_secs(1);
    store
        .revoke(&expired, NumericDate::from_secs(1))
        .await
        .unwrap();
    assert!(!store.is_revoked(&expired).await.unwrap());
    let mut brief = record(&user, &short, None);
    brief.expires = in_secs(1);
    store.revoke(&brief, in_secs(1)).await.unwrap();
    assert!(store.is_revoked(&brief).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!store.is_revoked(&brief).await.unwrap());
}

/// One subject past its bound: its entries become one cut-off, every token it
/// was issued until then stays revoked, a token issued after works, and other
/// subjects are untouched.
async fn subject_bound_suite(store: &dyn RevocationStore, per_subject: usize) {
    let id = |s: &str| format!("{s}-{}", uuid_like());
    let (flooder, bystander) = (id("flooder"), id("bystander"));
    let (b_jti, b_fam) = (id("b"), id("bfam"));
    store
        .revoke(&record(&bystander, &b_jti, Some(&b_fam)), in_secs(120))
        .await
        .unwrap();
    let live_session = id("live");
    let (first_jti, first_fam) = (id("first"), id("fam"));
    let before = NumericDate::now();
    let first = TokenRecord {
        issued_at: Some(before),
        ..record(&flooder, &first_jti, Some(&first_fam))
    };
    store.revoke(&first, in_secs(120)).await.unwrap();
    for _ in 0..per_subject * 3 {
        let (jti, fam) = (id("j"), id("f"));
        store
            .revoke(&record(&flooder, &jti, Some(&fam)), in_secs(120))
            .await
            .unwrap();
    }
    // The first logout is still a logout; a session never logged out but
    // issued before the cut-off is over too.
    assert!(store.is_revoked(&first).await.unwrap());
    let (t1, t2, new_session) = (id("t"), id("t"), id("new"));
    let untouched = TokenRecord {
        issued_at: Some(before),
        ..record(&flooder, &t1, Some(&live_session))
    };
    assert!(store.is_revoked(&untouched).await.unwrap());
    // A login after the cut-off (a later second) works.
    let later = TokenRecord {
        issued_at: Some(NumericDate::now().plus(Duration::from_secs(2))),
        ..record(&flooder, &t2, Some(&new_session))
    };
    assert!(!store.is_revoked(&later).await.unwrap());
    // The bystander's logout stands, and the bystander's other sessions work.
    assert!(
        store
            .is_revoked(&record(&bystander, &b_jti, Some(&b_fam)))
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_revoked(&record(&bystander, &id("c"), Some(&id("cfam"))))
            .await
            .unwrap()
    );
}

/// The session list: what was recorded comes back until the session is
/// logged out; a refresh is noted; and a flood of logins of one subject is
/// bounded as its other entries are (collapsed into its cut-off, which ends
/// every session it lists), other subjects untouched.
async fn session_list_suite(store: &dyn RevocationStore, per_subject: usize) {
    let id = |s: &str| format!("{s}-{}", uuid_like());
    let (user, other) = (id("user"), id("other"));
    let now = NumericDate::now().as_secs_f64() as u64;
    let (a, b) = (id("a"), id("b"));
    for (session, agent) in [(&a, "Firefox"), (&b, "curl")] {
        let info = SessionInfo::new(session.clone(), now - 10)
            .seen_from(Some(agent.into()), Some("192.0.2.7".into()));
        store
            .record_session(&user, &info, in_secs(120))
            .await
            .unwrap();
    }
    let info = SessionInfo::new(id("o"), now);
    store
        .record_session(&other, &info, in_secs(120))
        .await
        .unwrap();
    let listed = store.sessions(&user).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .any(|s| s.id == a && s.user_agent.as_deref() == Some("Firefox"))
    );
    assert_eq!(listed[0].ip.as_deref(), Some("192.0.2.7"));
    store
        .session_refreshed(&user, &b, now, in_secs(120))
        .await
        .unwrap();
    let listed = store.sessions(&user).await.unwrap();
    let b_listed = listed.iter().find(|s| s.id == b).unwrap();
    assert_eq!(b_listed.last_refreshed, Some(now));
    // Logged out: no longer listed.
    let logout = TokenRecord {
        subject: &user,
        jti: None,
        session: Some(&a),
        issued_at: None,
        expires: in_secs(60),
    };
    store.revoke(&logout, in_secs(120)).await.unwrap();
    let listed = store.sessions(&user).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [b.as_str()]
    );
    // A flood of logins: bounded, and the flooded subject logged out everywhere.
    for _ in 0..per_subject * 2 {
        let info = SessionInfo::new(id("f"), now);
        store
            .record_session(&user, &info, in_secs(120))
            .await
            .unwrap();
    }
    let listed = store.sessions(&user).await.unwrap();
    assert!(listed.len() <= per_subject, "{} listed", listed.len());
    assert!(
        listed.iter().all(|s| s.id != b),
        "the cut-off ended what it listed"
    );
    assert_eq!(store.sessions(&other).await.unwrap().len(), 1);
}

/// Racing instances: of many concurrent spends of one token, exactly one wins.
async fn spend_race(store: Arc<dyn RevocationStore>) {
    let (user, jti, family) = (uuid_like(), uuid_like(), uuid_like());
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (store, user, jti, family) = (store.clone(), user.clone(), jti.clone(), family.clone());
        tasks.push(tokio::spawn(async move {
            store
                .spend_refresh(
                    &record(&user, &jti, Some(&family)),
                    &format!("next{i}"),
                    in_secs(60),
                )
                .await
                .unwrap()
        }));
    }
    let mut firsts = 0;
    for task in tasks {
        if task.await.unwrap() == RefreshUse::First {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1);
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    store_suite(&MemoryStore::default()).await;
    subject_bound_suite(&MemoryStore::default().per_subject(20), 20).await;
    session_list_suite(&MemoryStore::default().per_subject(20), 20).await;
    spend_race(Arc::new(MemoryStore::default())).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_keeps_the_contract() {
    let Some(redis) = Redis::start() else { return };
    let store = connected(&redis).await;
    store_suite(&store).await;
    subject_bound_suite(&store.clone().per_subject(20), 20).await;
    session_list_suite(&store.clone().per_subject(20), 20).await;
    spend_race(Arc::new(store)).await;
}

/// With `require_replicas`, a write counts only once a replica of the very
/// node that took it has it: refused while the primary has none, the whole
/// contract kept once one follows it.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_write_waits_for_a_replica() {
    let (Some(primary), Some(replica)) = (Redis::start(), Redis::start()) else {
        return;
    };
    let store = tower_authx::RedisStore::connect(&primary.url())
        .await
        .unwrap()
        .require_replicas(1, Duration::from_millis(200));
    let alone = store.revoke(&record("w", "t1", None), in_secs(60)).await;
    let error = alone.expect_err("no replica: the write must not count");
    assert!(error.to_string().contains("0 replicas"), "{error}");
    replica.follow(&primary);
    store
        .revoke(&record("w", "t2", None), in_secs(60))
        .await
        .unwrap();
    assert!(store.is_revoked(&record("w", "t2", None)).await.unwrap());
    store_suite(&store).await;
}

/// Issue 43, item 9: with `wait_for_replicas` (what `connect` turns on), a
/// primary with no replica at all (its replica promoted away, or gone) loses
/// durability, not availability: its writes count, and say so; once a
/// replica follows it, the replica must confirm them.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_write_on_a_primary_without_replica_counts_and_says_so() {
    let (Some(primary), Some(replica)) = (Redis::start(), Redis::start()) else {
        return;
    };
    let store = tower_authx::RedisStore::connect(&primary.url())
        .await
        .unwrap()
        .wait_for_replicas(1, Duration::from_millis(200));
    store
        .revoke(&record("w", "t1", None), in_secs(60))
        .await
        .unwrap();
    assert!(store.is_revoked(&record("w", "t1", None)).await.unwrap());
    assert_eq!(store.writes_without_replica(), 1);
    replica.follow(&primary);
    store
        .revoke(&record("w", "t2", None), in_secs(60))
        .await
        .unwrap();
    assert_eq!(store.writes_without_replica(), 1, "a replica had it");
    // A replica that is connected but does not confirm: refused.
    replica.freeze(true);
    let frozen = store.revoke(&record("w", "t3", None), in_secs(60)).await;
    replica.freeze(false);
    assert!(frozen.is_err(), "an unconfirmed write counted");
}

/// A write waiting for a replica (`WAIT` blocks its connection) holds up no
/// check: checks go on other connections.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waiting_for_a_replica_holds_up_no_check() {
    let Some(primary) = Redis::start() else {
        return;
    };
    // The scripts loaded first, so the write below waits once.
    let plain = tower_authx::RedisStore::new(&primary.url()).unwrap();
    plain
        .revoke(&record("x", "t", None), in_secs(60))
        .await
        .unwrap();
    // Commands may take 10 s here, so the WAIT (5 s) is what ends the write.
    let store = tower_authx::RedisStore::with_timeout(&primary.url(), Duration::from_secs(10))
        .unwrap()
        .require_replicas(1, Duration::from_secs(5));
    assert!(!store.is_revoked(&record("r", "t", None)).await.unwrap());
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.revoke(&record("w", "t", None), in_secs(60)).await })
    };
    // Long enough for the write to reach its WAIT, far shorter than the WAIT.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..10 {
        assert!(!store.is_revoked(&record("r", "t", None)).await.unwrap());
    }
    assert!(!waiting.is_finished(), "the write is still waiting");
    assert!(waiting.await.unwrap().is_err(), "no replica: not counted");
}

#[tokio::test]
async fn the_memory_store_is_bounded_and_forgets_expired_entries() {
    let store = MemoryStore::with_capacity(3);
    let brief = |user: &'static str| TokenRecord {
        expires: in_secs(1),
        ..record(user, "t", None)
    };
    for user in ["a", "b", "c"] {
        store.revoke(&brief(user), in_secs(1)).await.unwrap();
    }
    // Full of live entries: refuses rather than forgets a revocation, and
    // leaves what it holds as it was.
    assert!(
        store
            .revoke(&record("d", "t", None), in_secs(60))
            .await
            .is_err()
    );
    assert_eq!(store.len(), 3);
    assert!(store.is_revoked(&brief("a")).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The next write drops the expired ones first.
    store
        .revoke(&record("e", "t", None), in_secs(60))
        .await
        .unwrap();
    assert_eq!(store.len(), 1);
    // A flood of revocations that expire at once never grows the store.
    let store = MemoryStore::with_capacity(10_000);
    for i in 0..50_000 {
        let user = format!("u{i}");
        let gone = TokenRecord {
            expires: NumericDate::from_secs(10),
            ..record(&user, "t", None)
        };
        store
            .revoke(&gone, NumericDate::from_secs(10))
            .await
            .unwrap();
    }
    assert!(store.is_empty());
}

#[tokio::test]
async fn a_rotation_flood_keeps_one_entry_per_session() {
    let store = Arc::new(MemoryStore::default());
    let authx = authx_with(SharedMemory(store.clone()));
    let mut refresh = authx.token_pair("flooder").issue().unwrap().refresh_token;
    let first = refresh.clone();
    for _ in 0..2_000 {
        let claims: Claims = authx
            .verify_offline(&refresh, &Requirement::refresh())
            .unwrap();
        refresh = authx.rotate(&claims).await.unwrap().refresh_token;
    }
    assert_eq!(
        store.len(),
        1,
        "entries after 2000 rotations of one session"
    );
    // ...and reuse detection still holds for the very first token.
    let claims: Claims = authx
        .verify_offline(&first, &Requirement::refresh())
        .unwrap();
    assert_eq!(
        authx.rotate(&claims).await.unwrap_err(),
        AuthError::RefreshReused
    );
    let claims: Claims = authx
        .verify_offline(&refresh, &Requirement::refresh())
        .unwrap();
    assert_eq!(authx.rotate(&claims).await.unwrap_err(), AuthError::Revoked);
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn a_login_logout_flood_by_one_user_stays_bounded_and_costs_no_one_else() {
    let store = Arc::new(MemoryStore::default().per_subject(100));
    let authx = authx_with(SharedMemory(store.clone()));
    let victim = authx.token_pair("victim").issue().unwrap();
    let victim_logged_out = authx.token_pair("victim").issue().unwrap();
    let claims: Claims = authx
        .verify_offline(&victim_logged_out.access_token, &Requirement::access())
        .unwrap();
    authx.revoke(&claims).await.unwrap();
    let first = authx.token_pair("flooder").issue().unwrap();
    for _ in 0..5_000 {
        let pair = authx.token_pair("flooder").issue().unwrap();
        let claims: Claims = authx
            .verify_offline(&pair.access_token, &Requirement::access())
            .unwrap();
        authx.revoke(&claims).await.unwrap();
        assert!(store.len() <= 101 + 1, "{} entries", store.len());
    }
    let check = |token: &str| {
        let claims: Claims = authx
            .verify_offline(token, &Requirement::any_type())
            .unwrap();
        let authx = authx.clone();
        async move { authx.check_revocation(&claims).await }
    };
    assert_eq!(check(&first.access_token).await, Err(AuthError::Revoked));
    assert_eq!(check(&victim.access_token).await, Ok(()));
    assert_eq!(
        check(&victim_logged_out.access_token).await,
        Err(AuthError::Revoked)
    );
    // The victim can still log out and rotate.
    let claims: Claims = authx
        .verify_offline(&victim.refresh_token, &Requirement::refresh())
        .unwrap();
    assert!(authx.rotate(&claims).await.is_ok());
}

/// A memory store the test can look into while AuthX uses it.
#[derive(Clone)]
struct SharedMemory(Arc<MemoryStore>);

impl RevocationStore for SharedMemory {
    fn is_revoked(&self, token: &TokenRecord<'_>) -> tower_authx::StoreFuture<bool> {
        self.0.is_revoked(token)
    }
    fn revoke(
        &self,
        token: &TokenRecord<'_>,
        horizon: NumericDate,
    ) -> tower_authx::StoreFuture<()> {
        self.0.revoke(token, horizon)
    }
    fn spend_refresh(
        &self,
        token: &TokenRecord<'_>,
        next: &str,
        horizon: NumericDate,
    ) -> tower_authx::StoreFuture<RefreshUse> {
        self.0.spend_refresh(token, next, horizon)
    }
}

fn authx_with(store: impl RevocationStore) -> AuthX {
    AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .revocation_store(store),
    )
    .unwrap()
}

#[tokio::test]
async fn revoke_and_rotate_through_the_handle() {
    let authx = authx_with(MemoryStore::default());
    let pair = authx.token_pair("user1").issue().unwrap();
    let access: Claims = authx
        .verify_offline(&pair.access_token, &Requirement::access())
        .unwrap();
    let refresh: Claims = authx
        .verify_offline(&pair.refresh_token, &Requirement::refresh())
        .unwrap();
    assert_eq!(access.fam, refresh.fam);
    assert!(access.fam.is_some());

    // Rotation keeps the session and gives non-fresh access.
    let next = authx.rotate(&refresh).await.unwrap();
    let next_access: Claims = authx
        .verify_offline(&next.access_token, &Requirement::access())
        .unwrap();
    assert!(!next_access.is_fresh());
    assert_eq!(next_access.fam, refresh.fam);
    let next_refresh: Claims = authx
        .verify_offline(&next.refresh_token, &Requirement::refresh())
        .unwrap();

    // Reuse of the spent one: refused, and the session is over for everyone.
    assert_eq!(
        authx.rotate(&refresh).await.unwrap_err(),
        AuthError::RefreshReused
    );
    assert_eq!(
        authx.rotate(&next_refresh).await.unwrap_err(),
        AuthError::Revoked
    );
    for claims in [&access, &next_access] {
        assert_eq!(
            authx.check_revocation(claims).await.unwrap_err(),
            AuthError::Revoked
        );
    }
    // Only refresh tokens rotate.
    assert!(matches!(
        authx.rotate(&access).await,
        Err(AuthError::WrongTokenType { .. })
    ));

    // Logout of another session leaves this one alone... and ends its own.
    let other = authx.token_pair("user2").issue().unwrap();
    let other_access: Claims = authx
        .verify_offline(&other.access_token, &Requirement::access())
        .unwrap();
    authx.check_revocation(&other_access).await.unwrap();
    authx.revoke(&other_access).await.unwrap();
    assert_eq!(
        authx.check_revocation(&other_access).await.unwrap_err(),
        AuthError::Revoked
    );
}

/// A store that is never ready and then fails: the layer must wait, then
/// refuse with 503 (or pass, failing open), and call the service it polled.
#[derive(Clone)]
struct SlowStore {
    fail: bool,
}

impl RevocationStore for SlowStore {
    fn is_revoked(&self, _: &TokenRecord<'_>) -> tower_authx::StoreFuture<bool> {
        let fail = self.fail;
        tower_authx::StoreFuture::pending(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if fail {
                Err(tower_authx::StoreError::new("down"))
            } else {
                Ok(false)
            }
        })
    }
    fn revoke(&self, _: &TokenRecord<'_>, _: NumericDate) -> tower_authx::StoreFuture<()> {
        tower_authx::StoreFuture::ready(Err(tower_authx::StoreError::new("down")))
    }
    fn spend_refresh(
        &self,
        _: &TokenRecord<'_>,
        _: &str,
        _: NumericDate,
    ) -> tower_authx::StoreFuture<RefreshUse> {
        tower_authx::StoreFuture::ready(Err(tower_authx::StoreError::new("down")))
    }
}

fn bearer(token: &str) -> Request<Full<Bytes>> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn the_layer_awaits_a_slow_store_and_fails_closed_or_open() {
    let ok = service_fn(|req: Request<Full<Bytes>>| async move {
        let sub = req.extensions().get::<Claims>().unwrap().sub.clone();
        Ok::<_, Infallible>(Response::new(Full::from(sub)))
    });
    for (fail, fail_open, expected) in [
        (false, false, StatusCode::OK),
        (true, false, StatusCode::SERVICE_UNAVAILABLE),
        (true, true, StatusCode::OK),
    ] {
        let config = AuthXConfig::from_secret(SECRET)
            .unwrap()
            .revocation_store(SlowStore { fail });
        let config = if fail_open {
            config.danger_revocation_fail_open()
        } else {
            config
        };
        let authx = AuthX::new(config).unwrap();
        let token = authx.access_token("u").fresh(true).issue().unwrap();
        // Outer RequireAuth checks the store once; the inner RequireFresh reuses it.
        let mut service = RequireAuthLayer::new(authx.clone())
            .layer(RequireFreshLayer::new(authx.clone()).layer(ok));
        // Two requests in flight on one service: clone-and-swap keeps both valid.
        let first = service.ready().await.unwrap().call(bearer(&token));
        let second = service.ready().await.unwrap().call(bearer(&token));
        let (first, second) = tokio::join!(first, second);
        for res in [first.unwrap(), second.unwrap()] {
            assert_eq!(res.status(), expected, "fail={fail} open={fail_open}");
            if expected == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(res.headers()["retry-after"], "1");
                assert!(res.headers().get("www-authenticate").is_none());
            }
        }
        // Writes never fail open.
        let claims: Claims = authx
            .verify_offline(&token, &Requirement::access())
            .unwrap();
        assert_eq!(
            authx.revoke(&claims).await.unwrap_err(),
            AuthError::StoreUnavailable
        );
    }
}

/// Counts the questions asked of a memory store.
#[derive(Clone, Default)]
struct Counting {
    asked: Arc<std::sync::atomic::AtomicUsize>,
    store: Arc<MemoryStore>,
}

impl RevocationStore for Counting {
    fn is_revoked(&self, token: &TokenRecord<'_>) -> tower_authx::StoreFuture<bool> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.is_revoked(token)
    }
    fn revoke(
        &self,
        token: &TokenRecord<'_>,
        horizon: NumericDate,
    ) -> tower_authx::StoreFuture<()> {
        self.store.revoke(token, horizon)
    }
    fn spend_refresh(
        &self,
        token: &TokenRecord<'_>,
        next: &str,
        horizon: NumericDate,
    ) -> tower_authx::StoreFuture<RefreshUse> {
        self.store.spend_refresh(token, next, horizon)
    }
}

#[tokio::test]
async fn only_verified_tokens_reach_the_store_and_only_once() {
    let counting = Counting::default();
    let authx = authx_with(counting.clone());
    let ok = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    });
    let service =
        RequireAuthLayer::new(authx.clone()).layer(RequireFreshLayer::new(authx.clone()).layer(ok));
    let forged = AuthX::new(AuthXConfig::from_secret([1u8; 32]).unwrap())
        .unwrap()
        .access_token("u")
        .fresh(true)
        .issue()
        .unwrap();
    let expired = authx
        .access_token("u")
        .issued_at(NumericDate::from_secs(1_000))
        .issue()
        .unwrap();
    let refresh = authx.refresh_token("u").issue().unwrap();
    for token in [
        "garbage",
        forged.as_str(),
        expired.as_str(),
        refresh.as_str(),
    ] {
        let res = service.clone().oneshot(bearer(token)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = service
        .clone()
        .oneshot(Request::new(Full::default()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(counting.asked.load(std::sync::atomic::Ordering::SeqCst), 0);

    // A good token: one question, though two guards run.
    let fresh = authx.access_token("u").fresh(true).issue().unwrap();
    let res = service.clone().oneshot(bearer(&fresh)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(counting.asked.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
struct Tenant {
    tenant: String,
}

#[tokio::test]
async fn a_pair_with_own_claims_keeps_its_session_through_rotation_reuse_and_logout() {
    let authx = authx_with(MemoryStore::default());
    let pair = authx
        .token_pair("user1")
        .extra(&Tenant {
            tenant: "acme".into(),
        })
        .scopes(["posts:read"])
        .issue()
        .unwrap();
    let refresh: Claims<Tenant> = authx
        .verify_offline(&pair.refresh_token, &Requirement::refresh())
        .unwrap();
    let access: Claims<Tenant> = authx
        .verify_offline(&pair.access_token, &Requirement::fresh())
        .unwrap();
    assert_eq!(access.extra.tenant, "acme");
    assert!(access.fam.is_some() && access.fam == refresh.fam);

    // Rotation carries the claims and scopes, in the same session, not fresh.
    let rotated = authx.rotate(&refresh).await.unwrap();
    let next: Claims<Tenant> = authx
        .verify_offline(&rotated.access_token, &Requirement::access())
        .unwrap();
    assert_eq!(next.extra.tenant, "acme");
    assert_eq!(next.scopes.as_deref(), Some(&["posts:read".to_owned()][..]));
    assert_eq!(next.fam, refresh.fam);
    assert!(!next.is_fresh());
    let next_refresh: Claims<Tenant> = authx
        .verify_offline(&rotated.refresh_token, &Requirement::refresh())
        .unwrap();
    assert_eq!(next_refresh.extra.tenant, "acme");

    // Reuse of the first refresh token kills the session: every token of it.
    assert_eq!(
        authx.rotate(&refresh).await.unwrap_err(),
        AuthError::RefreshReused
    );
    assert_eq!(authx.check_revocation(&next).await, Err(AuthError::Revoked));
    assert_eq!(
        authx.check_revocation(&access).await,
        Err(AuthError::Revoked)
    );

    // Logout of another such pair ends its session, refresh token included.
    let other = authx
        .token_pair("user1")
        .extra(&Tenant {
            tenant: "acme".into(),
        })
        .issue()
        .unwrap();
    let other_access: Claims<Tenant> = authx
        .verify_offline(&other.access_token, &Requirement::access())
        .unwrap();
    authx.revoke(&other_access).await.unwrap();
    let other_refresh: Claims<Tenant> = authx
        .verify_offline(&other.refresh_token, &Requirement::refresh())
        .unwrap();
    assert_eq!(
        authx.rotate(&other_refresh).await.unwrap_err(),
        AuthError::Revoked
    );
}

#[tokio::test]
async fn a_key_that_cannot_sign_makes_rotation_a_server_error_and_spends_nothing() {
    let store = Arc::new(MemoryStore::default());
    let issuer = authx_with(SharedMemory(store.clone()));
    let pair = issuer.token_pair("user1").issue().unwrap();
    // The same secret and store, but a key set that only verifies.
    let verifier = AuthX::new(
        AuthXConfig::new(tower_authx::KeySet::verify_only([tower_authx::Key::hs256(
            SECRET,
        )
        .unwrap()]))
        .revocation_store(SharedMemory(store.clone())),
    )
    .unwrap();
    let refresh: Claims = verifier
        .verify_offline(&pair.refresh_token, &Requirement::refresh())
        .unwrap();
    let error = verifier.rotate(&refresh).await.unwrap_err();
    assert!(matches!(error, AuthError::Issue(_)), "{error:?}");
    assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // Nothing was spent: the store is empty and the issuer can still rotate it.
    assert!(store.is_empty());
    let refresh: Claims = issuer
        .verify(&pair.refresh_token, &Requirement::refresh())
        .await
        .unwrap();
    assert!(issuer.rotate(&refresh).await.is_ok());
}

/// Sessions move only on claims this very handle verified: a claim set read
/// from a request body (public fields, public `Deserialize`) or verified by
/// another handle cannot start a "first rotation" or log anyone out.
#[tokio::test]
async fn rotate_and_revoke_take_only_claims_this_handle_verified() {
    use base64::Engine as _;
    let authx = authx_with(MemoryStore::default());
    let pair = authx.token_pair("victim").issue().unwrap();
    // What an attacker posts: the payload of a refresh token, any subject.
    let payload = pair.refresh_token.split('.').nth(1).unwrap();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let mut posted: Claims = serde_json::from_slice(&payload).unwrap();
    posted.sub = "admin".into();
    assert!(matches!(
        authx.rotate(&posted).await,
        Err(AuthError::InvalidToken(_))
    ));
    assert!(matches!(
        authx.revoke(&posted).await,
        Err(AuthError::InvalidToken(_))
    ));
    // Verified by another handle (even one with the same secret): refused too.
    let other = authx_with(MemoryStore::default());
    let elsewhere: Claims = other
        .verify(&pair.refresh_token, &Requirement::refresh())
        .await
        .unwrap();
    assert!(authx.rotate(&elsewhere).await.is_err());
    // Verified here, and cloned as extractors do: the session moves.
    let verified: Claims = authx
        .verify(&pair.refresh_token, &Requirement::refresh())
        .await
        .unwrap();
    // The same claims, whoever verified them (the mark is no claim).
    posted.sub = "victim".into();
    assert_eq!(verified, posted);
    assert!(authx.rotate(&verified.clone()).await.is_ok());
}

/// `local_view_max_age` bounds how long a change the feed never announced
/// can go unseen, whichever order it is set in with `local_view`.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_views_max_age_holds_in_either_order() {
    let Some(redis) = Redis::start() else { return };
    let store = tower_authx::RedisStore::connect(&redis.url())
        .await
        .unwrap()
        .local_view_max_age(Duration::from_millis(300))
        .local_view(100);
    let authx = authx_with(store.clone());
    let token = authx.access_token("quiet").fresh(true).issue().unwrap();
    let claims: Claims = authx.verify(&token, &Requirement::access()).await.unwrap();
    let start = std::time::Instant::now();
    while !store.local_view_is_live() {
        assert!(start.elapsed() < Duration::from_secs(5), "no feed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Kept in the view now.
    authx.check_revocation(&claims).await.unwrap();
    // A revocation written behind the feed's back (nothing announced).
    let until = (support::now() + 600).to_string();
    let field = format!("t:{}", claims.jti.as_deref().unwrap());
    redis.cli(&["HSET", "authx:sub:quiet", &field, &until]);
    let start = std::time::Instant::now();
    while authx.check_revocation(&claims).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the view kept answering from a state older than its max age"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Redis replay store bounds one account over all its keys (and a key
/// without an account): a flood of proofs fills its share of Redis and no
/// more, and other accounts' proofs and logouts keep working.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_replay_store_bounds_each_account_and_key() {
    use tower_authx::{ProofUse, ReplayStore};
    let Some(redis) = Redis::start() else { return };
    let store = tower_authx::RedisStore::connect(&redis.url())
        .await
        .unwrap()
        .proofs_per_subject(50, 20);
    let expires = in_secs(65);
    let id = |n: u32| {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_le_bytes());
        id
    };
    let first_use = |n: u32, key: &str, subject: Option<&str>| {
        let id = id(n);
        store.first_use(&ProofUse {
            id: &id,
            key,
            subject,
            client: None,
            expires,
        })
    };
    // One account, a new key every ten proofs.
    for n in 0..50 {
        let key = format!("key-{}", n / 10);
        assert_eq!(first_use(n, &key, Some("flooder")).await, Ok(true), "{n}");
    }
    let refused = first_use(50, "key-9", Some("flooder")).await.unwrap_err();
    assert!(refused.is_over_limit(), "{refused}");
    // A replay is still a replay; another account is not touched.
    assert_eq!(first_use(3, "key-0", Some("flooder")).await, Ok(false));
    assert_eq!(
        first_use(1000, "other-key", Some("bystander")).await,
        Ok(true)
    );
    // A token request's proofs (no account): bounded per key.
    for n in 2000..2020 {
        assert_eq!(first_use(n, "login-key", None).await, Ok(true));
    }
    assert!(
        first_use(2020, "login-key", None)
            .await
            .unwrap_err()
            .is_over_limit()
    );
    // The bystander can still log out.
    let authx = authx_with(store.clone());
    logged_out(&authx, "bystander").await;
    // What one account can hold: its bound, at about this many bytes a proof.
    let keys = redis.cli(&["--scan", "--pattern", "authx:dpop:*"]);
    let biggest = keys
        .lines()
        .map(|key| {
            redis
                .cli(&["MEMORY", "USAGE", key])
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
        })
        .max()
        .unwrap();
    eprintln!("the flooding account's proofs: {biggest} bytes of Redis for 50 proofs");
    assert!(biggest < 50 * 200, "{biggest} bytes");
}

/// An eviction policy switched at run time (a failover to a primary set up
/// otherwise) is seen within about two seconds: every answer is then a
/// refusal to use Redis (503), never one that trusts it.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_policy_switched_at_run_time_fails_closed_within_two_seconds() {
    let Some(redis) = Redis::start() else { return };
    let store = connected(&redis).await;
    let authx = authx_with(store);
    let claims = logged_out(&authx, "evictable").await;
    assert_eq!(
        authx.check_revocation(&claims).await,
        Err(AuthError::Revoked)
    );
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    let switched = std::time::Instant::now();
    loop {
        let answer = authx.check_revocation(&claims).await;
        assert_ne!(answer, Ok(()), "a revoked token passed");
        if answer == Err(AuthError::StoreUnavailable) {
            break;
        }
        assert!(
            switched.elapsed() < Duration::from_millis(2500),
            "still trusted {:?} after the switch",
            switched.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Near `maxmemory`, DPoP proofs stop being written so that logouts keep
/// their room: a flood of proofs from many accounts cannot starve them.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_maxmemory_proofs_wait_and_logouts_keep_their_room() {
    use tower_authx::{ProofUse, ReplayStore};
    let Some(redis) = Redis::start() else { return };
    let store = connected(&redis).await;
    let used = redis.memory("used_memory:");
    // 95% used: above the proofs' share, below the logouts'.
    redis.cli(&["CONFIG", "SET", "maxmemory", &(used * 100 / 95).to_string()]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let id = [7u8; 32];
    let proof = ProofUse {
        id: &id,
        key: "k",
        subject: Some("someone"),
        client: None,
        expires: in_secs(60),
    };
    let refused = store.first_use(&proof).await.unwrap_err();
    assert!(!refused.is_over_limit(), "{refused}");
    let authx = authx_with(store);
    let claims = logged_out(&authx, "someone").await;
    assert_eq!(
        authx.check_revocation(&claims).await,
        Err(AuthError::Revoked)
    );
}

/// Where every primary has a replica, `connect` makes writes wait for one by
/// default: a logout that no replica took is not answered as done.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_replica_a_logout_waits_for_it_by_default() {
    let (Some(primary), Some(replica)) = (Redis::start(), Redis::start()) else {
        return;
    };
    replica.follow(&primary);
    let store = tower_authx::RedisStore::connect(&primary.url())
        .await
        .unwrap();
    store
        .revoke(&record("d", "t1", None), in_secs(60))
        .await
        .unwrap();
    // The replica hangs: the write cannot be vouched for.
    replica.freeze(true);
    let unreplicated = store.revoke(&record("d", "t2", None), in_secs(60)).await;
    replica.freeze(false);
    let error = unreplicated.expect_err("a logout no replica has counted as done");
    assert!(error.to_string().contains("replicas"), "{error}");
    // Turned off on purpose: faster, and the trade-off is the caller's.
    let store = store.wait_for_replicas(0, Duration::ZERO);
    replica.freeze(true);
    let fast = store.revoke(&record("d", "t3", None), in_secs(60)).await;
    replica.freeze(false);
    assert!(fast.is_ok());
}

/// A store on `redis`, connected and checked.
#[cfg(feature = "redis")]
async fn connected(redis: &Redis) -> tower_authx::RedisStore {
    tower_authx::RedisStore::connect(&redis.url())
        .await
        .unwrap()
}

/// The verified claims of a new token of `subject`, logged out.
#[cfg(feature = "redis")]
async fn logged_out(authx: &AuthX, subject: &str) -> Claims {
    let token = authx.access_token(subject).fresh(true).issue().unwrap();
    let claims: Claims = authx.verify(&token, &Requirement::access()).await.unwrap();
    authx.revoke(&claims).await.unwrap();
    claims
}

/// A burst of DPoP proofs right after a calm look at Redis's memory (the
/// watch looks once a second) cannot cross the proofs' line before the watch
/// looks again: with 3 MiB of headroom and 8 writers, Redis stays below the
/// line (one write of slack), and another user's logout lands.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_proofs_stops_at_the_line_whatever_its_rate() {
    use tower_authx::{ProofUse, ReplayStore};
    let Some(redis) = Redis::start() else { return };
    let store = connected(&redis).await;
    let max = redis.memory("used_memory:") + 3 * 1024 * 1024;
    redis.cli(&["CONFIG", "SET", "maxmemory", &max.to_string()]);
    // A calm answer first: the watch has just seen plenty of room.
    let id = [1u8; 32];
    let calm = ProofUse {
        id: &id,
        key: "calm",
        subject: None,
        client: None,
        expires: in_secs(60),
    };
    assert_eq!(store.first_use(&calm).await, Ok(true));
    let started = std::time::Instant::now();
    let writers: Vec<_> = (0..8u32)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let (mut accepted, mut refused) = (0u32, 0u32);
                for n in 0..200_000u32 {
                    let mut id = [0u8; 32];
                    id[..4].copy_from_slice(&writer.to_be_bytes());
                    id[4..8].copy_from_slice(&n.to_be_bytes());
                    // A new key every 10 proofs: no per-key bound applies.
                    let key = format!("flood-{writer}-{}", n / 10);
                    let proof = ProofUse {
                        id: &id,
                        key: &key,
                        subject: None,
                        client: None,
                        expires: in_secs(60),
                    };
                    match store.first_use(&proof).await {
                        Ok(true) => accepted += 1,
                        Ok(false) => panic!("a new proof counted as a replay"),
                        Err(e) if e.is_over_limit() => panic!("{e}"),
                        Err(_) => {
                            refused += 1;
                            if refused >= 200 {
                                break;
                            }
                        }
                    }
                }
                (accepted, refused)
            })
        })
        .collect();
    let mut accepted = 0;
    for writer in writers {
        let (a, r) = writer.await.unwrap();
        accepted += a;
        assert!(r > 0, "a writer was never refused");
    }
    let used = redis.memory("used_memory:");
    eprintln!(
        "{accepted} proofs in {:?}; Redis at {:.1}% of maxmemory",
        started.elapsed(),
        used as f64 * 100.0 / max as f64
    );
    assert!(
        (used as f64) < 0.9 * max as f64 + 64.0 * 1024.0,
        "proofs took the revocations' room: {used} of {max}"
    );
    let authx = authx_with(store);
    let claims = logged_out(&authx, "bystander").await;
    assert_eq!(
        authx.check_revocation(&claims).await,
        Err(AuthError::Revoked)
    );
}

/// A real eviction between two looks at the policy: a subject the local
/// view reads after it (its logout gone from Redis) is trusted only until
/// the next look, which finds the policy unsafe, empties the view and fails
/// closed, within about two seconds, not for the view's ten.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_view_read_after_an_eviction_lives_only_until_the_next_look() {
    let Some(redis) = Redis::start() else { return };
    let store = connected(&redis).await.local_view(100);
    let authx = authx_with(store.clone());
    let start = std::time::Instant::now();
    while !store.local_view_is_live() {
        let _ = authx
            .check_revocation(&logged_out(&authx, "warm-up").await)
            .await;
        assert!(start.elapsed() < Duration::from_secs(5), "no feed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let claims = logged_out(&authx, "evicted").await;
    // Evicted for real: an evicting policy and no room, then a write.
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    redis.cli(&["SET", "junk", "x"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    let switched = std::time::Instant::now();
    assert_eq!(redis.cli(&["EXISTS", "authx:sub:evicted"]).trim(), "0");
    assert_ne!(
        redis
            .cli(&["INFO", "stats"])
            .lines()
            .find_map(|l| l.strip_prefix("evicted_keys:"))
            .map(str::trim),
        Some("0")
    );
    let mut trusted = 0;
    loop {
        match authx.check_revocation(&claims).await {
            Err(AuthError::StoreUnavailable) => break,
            Ok(()) => trusted += 1,
            other => assert_eq!(other, Err(AuthError::Revoked)),
        }
        assert!(
            switched.elapsed() < Duration::from_millis(2500),
            "what the view read after the eviction was trusted {trusted} times over {:?}",
            switched.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("trusted {trusted} times, for {:?}", switched.elapsed());
    // The policy back: the view answers again, from Redis's current state.
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = logged_out(&authx, "later").await;
    assert_eq!(
        authx.check_revocation(&fresh).await,
        Err(AuthError::Revoked)
    );
}
