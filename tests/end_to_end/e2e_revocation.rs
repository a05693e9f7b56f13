//! Logout and rotation end to end: the example over real TCP, in memory, and
//! two real instances sharing one real `redis-server` (cross-instance logout,
//! restarts, rotation, reuse detection, Redis killed and back).

use crate::support;

#[cfg(feature = "redis")]
use std::time::Duration;

use http::StatusCode;
#[cfg(feature = "redis")]
use support::Redis;
use support::{Reply, Server};

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

#[cfg(feature = "redis")]
/// Two example instances sharing one Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_logout_rotation_and_reuse_detection_through_redis() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let url = redis.url();
    // Redis on every request: a logout is refused elsewhere at once (the local
    // view's bound on staleness is tested in tests/end_to_end/e2e_cluster.rs).
    let env = [("REDIS_URL", url.as_str()), ("REDIS_LOCAL_VIEW", "0")];
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
