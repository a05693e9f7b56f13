//! Revocation, logout and refresh rotation: one store suite run against the
//! memory store and a real `redis-server`; the layer's async step; and the
//! example as two real instances sharing one Redis (cross-instance logout,
//! restarts, rotation, reuse detection, Redis killed and back).

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Redis, Reply, SECRET, Server};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_authx::{
    AuthError, AuthX, AuthXConfig, Claims, MemoryStore, NumericDate, RefreshUse, RequireAuthLayer,
    RequireFreshLayer, Requirement, RevocationStore,
};

fn in_secs(secs: u64) -> NumericDate {
    NumericDate::now().plus(Duration::from_secs(secs))
}

/// The contract every store keeps.
async fn store_suite(store: &dyn RevocationStore) {
    let id = |s: &str| format!("{s}-{}", uuid_like());
    let (jti, family) = (id("jti"), id("family"));
    assert!(!store.is_revoked(&jti, Some(&family)).await.unwrap());
    store.revoke(&jti, in_secs(60)).await.unwrap();
    assert!(store.is_revoked(&jti, None).await.unwrap());
    assert!(store.is_revoked(&jti, Some(&family)).await.unwrap());
    assert!(!store.is_revoked(&id("other"), None).await.unwrap());

    // A family revocation covers every token of the family.
    store.revoke_family(&family, in_secs(60)).await.unwrap();
    assert!(store.is_revoked(&id("any"), Some(&family)).await.unwrap());

    // Rotation: first use, reuse (which revokes the family), then dead.
    let (refresh, session) = (id("refresh"), id("session"));
    let spend = |jti: String| store.spend_refresh(&jti, &session, in_secs(60), in_secs(120));
    assert_eq!(spend(refresh.clone()).await.unwrap(), RefreshUse::First);
    assert_eq!(spend(id("next")).await.unwrap(), RefreshUse::First);
    assert_eq!(spend(refresh.clone()).await.unwrap(), RefreshUse::Reused);
    assert!(
        store
            .is_revoked(&id("access"), Some(&session))
            .await
            .unwrap()
    );
    assert_eq!(spend(id("later")).await.unwrap(), RefreshUse::FamilyRevoked);

    // Entries end with their token: already expired ones are not even kept,
    // short ones lapse.
    let (past, short) = (id("past"), id("short"));
    store
        .revoke(&past, NumericDate::from_secs(1))
        .await
        .unwrap();
    assert!(!store.is_revoked(&past, None).await.unwrap());
    store.revoke(&short, in_secs(1)).await.unwrap();
    assert!(store.is_revoked(&short, None).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!store.is_revoked(&short, None).await.unwrap());
}

/// Racing instances: of many concurrent spends of one token, exactly one wins.
async fn spend_race(store: Arc<dyn RevocationStore>) {
    let (jti, family) = (uuid_like(), uuid_like());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (store, jti, family) = (store.clone(), jti.clone(), family.clone());
        tasks.push(tokio::spawn(async move {
            store
                .spend_refresh(&jti, &family, in_secs(60), in_secs(60))
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
    spend_race(Arc::new(MemoryStore::default())).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_keeps_the_contract() {
    let Some(redis) = Redis::start() else { return };
    let store = tower_authx::RedisStore::new(&redis.url()).unwrap();
    store_suite(&store).await;
    spend_race(Arc::new(store)).await;
}

#[tokio::test]
async fn the_memory_store_is_bounded_and_forgets_expired_entries() {
    let store = MemoryStore::with_capacity(3);
    for i in 0..3 {
        store.revoke(&format!("t{i}"), in_secs(1)).await.unwrap();
    }
    // Full of live entries: refuses rather than forgets a revocation.
    assert!(store.revoke("t3", in_secs(60)).await.is_err());
    assert_eq!(store.len(), 3);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The next write drops the expired ones first.
    store.revoke("t4", in_secs(60)).await.unwrap();
    assert_eq!(store.len(), 1);
    // A flood of revocations that expire at once never grows the store.
    let store = MemoryStore::with_capacity(10_000);
    for i in 0..50_000 {
        store
            .revoke(&format!("f{i}"), NumericDate::from_secs(10))
            .await
            .unwrap();
    }
    assert!(store.is_empty());
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
    let pair = authx.create_token_pair("user1").unwrap();
    let access: Claims = authx
        .verify(&pair.access_token, &Requirement::access())
        .unwrap();
    let refresh: Claims = authx
        .verify(&pair.refresh_token, &Requirement::refresh())
        .unwrap();
    assert_eq!(access.family, refresh.family);
    assert!(access.family.is_some());

    // Rotation keeps the session and gives non-fresh access.
    let next = authx.rotate(&refresh).await.unwrap();
    let next_access: Claims = authx
        .verify(&next.access_token, &Requirement::access())
        .unwrap();
    assert!(!authx.is_fresh(&next_access));
    assert_eq!(next_access.family, refresh.family);
    let next_refresh: Claims = authx
        .verify(&next.refresh_token, &Requirement::refresh())
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
    let other = authx.create_token_pair("user2").unwrap();
    let other_access: Claims = authx
        .verify(&other.access_token, &Requirement::access())
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
    fn is_revoked(&self, _: &str, _: Option<&str>) -> tower_authx::StoreFuture<bool> {
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
    fn revoke(&self, _: &str, _: NumericDate) -> tower_authx::StoreFuture<()> {
        tower_authx::StoreFuture::ready(Err(tower_authx::StoreError::new("down")))
    }
    fn revoke_family(&self, _: &str, _: NumericDate) -> tower_authx::StoreFuture<()> {
        tower_authx::StoreFuture::ready(Err(tower_authx::StoreError::new("down")))
    }
    fn spend_refresh(
        &self,
        _: &str,
        _: &str,
        _: NumericDate,
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
        let authx = AuthX::new(
            AuthXConfig::from_secret(SECRET)
                .unwrap()
                .revocation_store(SlowStore { fail })
                .revocation_fail_open(fail_open),
        )
        .unwrap();
        let token = authx.create_access_token("u", true).unwrap();
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
        let claims: Claims = authx.verify(&token, &Requirement::access()).unwrap();
        assert_eq!(
            authx.revoke(&claims).await.unwrap_err(),
            AuthError::StoreUnavailable
        );
    }
}

async fn logout(server: &Server, token: &str) -> Reply {
    server.post("/logout").bearer(token).send().await
}

#[tokio::test]
async fn the_example_logs_out_and_rotates_in_memory() {
    let server = Server::start("fresh_token", &[]).await;
    let (access, refresh) = server.login().await;
    assert_eq!(logout(&server, &access).await.status, StatusCode::OK);
    let res = server.get("/protected").bearer(&access).send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.detail(), "Token has been revoked");
    assert!(res.challenge().contains("error=\"invalid_token\""));
    // The logout ended the whole session: its refresh token too.
    let res = server.post("/refresh").bearer(&refresh).send().await;
    assert_eq!(res.detail(), "Token has been revoked");
    assert_eq!(
        logout(&server, "garbage").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Two example instances sharing one Redis.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_logout_rotation_and_reuse_detection_through_redis() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str())];
    let a = Server::start("fresh_token", &env).await;
    let mut b = Server::start("fresh_token", &env).await;

    // Logout on A is refused on B, and still after B restarts.
    let (access, refresh) = a.login().await;
    assert_eq!(
        b.get("/protected").bearer(&access).send().await.status,
        StatusCode::OK
    );
    assert_eq!(logout(&a, &access).await.status, StatusCode::OK);
    let res = b.get("/protected").bearer(&access).send().await;
    assert_eq!(
        (res.status, res.detail().as_str()),
        (StatusCode::UNAUTHORIZED, "Token has been revoked")
    );
    drop(b);
    b = Server::start("fresh_token", &env).await;
    assert_eq!(
        b.get("/protected").bearer(&access).send().await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.post("/refresh").bearer(&refresh).send().await.status,
        StatusCode::UNAUTHORIZED
    );

    // Rotation on A, replay of the spent token on B: the session dies everywhere.
    let (access, refresh) = a.login().await;
    let rotated = a.post("/refresh").bearer(&refresh).send().await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let new_refresh = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    let new_access = rotated.json()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh);
    let replay = b.post("/refresh").bearer(&refresh).send().await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        replay.detail(),
        "Refresh token reuse detected: the session has been revoked"
    );
    for token in [&new_refresh, &new_access, &access] {
        let path = if *token == new_refresh {
            "/refresh"
        } else {
            "/protected"
        };
        let method_call = if path == "/refresh" {
            a.post(path)
        } else {
            a.get(path)
        };
        let res = method_call.bearer(token).send().await;
        assert_eq!(res.detail(), "Token has been revoked", "{path}");
    }

    // Redis killed: fail closed with 503, no crash; back: recovers by itself.
    let (access, _) = a.login().await;
    redis.kill();
    let down = a.get("/protected").bearer(&access).send().await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        down.detail(),
        "Token revocation store unavailable, try again later"
    );
    assert_eq!(down.headers["retry-after"], "1");
    assert_eq!(
        logout(&a, &access).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Public routes and bad tokens do not depend on the store.
    assert_eq!(a.get("/").send().await.status, StatusCode::OK);
    assert_eq!(
        a.get("/protected").bearer("x.y.z").send().await.status,
        StatusCode::UNAUTHORIZED
    );
    redis.restart();
    let mut recovered = false;
    for _ in 0..100 {
        if a.get("/protected").bearer(&access).send().await.status == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the example did not recover after Redis came back"
    );
    assert_eq!(logout(&a, &access).await.status, StatusCode::OK);
    assert_eq!(
        b.get("/protected").bearer(&access).send().await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Counts the questions asked of a memory store.
#[derive(Clone, Default)]
struct Counting {
    asked: Arc<std::sync::atomic::AtomicUsize>,
    store: Arc<MemoryStore>,
}

impl RevocationStore for Counting {
    fn is_revoked(&self, jti: &str, family: Option<&str>) -> tower_authx::StoreFuture<bool> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.is_revoked(jti, family)
    }
    fn revoke(&self, jti: &str, until: NumericDate) -> tower_authx::StoreFuture<()> {
        self.store.revoke(jti, until)
    }
    fn revoke_family(&self, family: &str, until: NumericDate) -> tower_authx::StoreFuture<()> {
        self.store.revoke_family(family, until)
    }
    fn spend_refresh(
        &self,
        jti: &str,
        family: &str,
        until: NumericDate,
        family_until: NumericDate,
    ) -> tower_authx::StoreFuture<RefreshUse> {
        self.store.spend_refresh(jti, family, until, family_until)
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
        .create_access_token("u", true)
        .unwrap();
    let expired = authx
        .access_token("u")
        .issued_at(NumericDate::from_secs(1_000))
        .issue()
        .unwrap();
    let refresh = authx.create_refresh_token("u").unwrap();
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
    let fresh = authx.create_access_token("u", true).unwrap();
    let res = service.clone().oneshot(bearer(&fresh)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(counting.asked.load(std::sync::atomic::Ordering::SeqCst), 1);
}
