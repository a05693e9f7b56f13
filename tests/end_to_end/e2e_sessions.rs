//! Sessions a user can see and end, over TCP through the `fresh_token`
//! example: in memory, and two instances sharing a real Redis and a real
//! Redis Cluster (the list lives in the subject's hash, one slot).

use crate::support;

use http::StatusCode;
use serde_json::Value;
use support::Server;

/// A login as `user` from `agent`: (access token, refresh token, session id).
async fn login(server: &Server, user: &str, agent: &str) -> (String, String, String) {
    let password = if user == "user1" {
        "password1"
    } else {
        "password2"
    };
    let res = server
        .post("/login")
        .header("content-type", "application/json")
        .header("user-agent", agent)
        .body(format!(
            r#"{{"username":"{user}","password":"{password}"}}"#
        ))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let json = res.json();
    let access = json["fresh_token"].as_str().unwrap().to_owned();
    let session = support::payload_of(&access)["fam"]
        .as_str()
        .unwrap()
        .to_owned();
    (
        access,
        json["refresh_token"].as_str().unwrap().to_owned(),
        session,
    )
}

async fn listed(server: &Server, token: &str) -> Vec<Value> {
    let res = server.get("/sessions").bearer(token).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json().as_array().unwrap().clone()
}

/// Polls `server` until it refuses `token` at `path`, as the README promises
/// for another instance: one pub/sub delivery later (the local view), well
/// within a second. Anything but 200 or 401 meanwhile fails.
async fn refused_within_a_second(server: &Server, path: &str, token: &str) {
    let start = std::time::Instant::now();
    loop {
        let status = server.get(path).bearer(token).send().await.status;
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(status, StatusCode::OK, "only 200 until the logout arrives");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "still accepted after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The whole walk: logins listed with where they came from, a refresh
/// noted, one session ended, another user's refused, all others ended;
/// `a` and `b` may be one server or two sharing a store.
async fn walk(a: &Server, b: &Server) {
    let (first, _, first_id) = login(a, "user1", "Firefox/120").await;
    let (second, second_refresh, second_id) = login(b, "user1", "Chrome/119").await;
    let (third, _, third_id) = login(a, "user1", "curl/8").await;
    let (other_user, _, other_id) = login(b, "user2", "Safari/17").await;

    // Oldest first; logins in the same second in any order.
    let sessions = listed(a, &first).await;
    let by_id = |id: &str| sessions.iter().find(|s| s["id"] == id).cloned().unwrap();
    assert_eq!(sessions.len(), 3, "user1's only: {sessions:?}");
    let created: Vec<u64> = sessions
        .iter()
        .map(|s| s["created"].as_u64().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");
    assert!(created[0] > 1_700_000_000);
    assert_eq!(by_id(&first_id)["user_agent"], "Firefox/120");
    assert_eq!(by_id(&second_id)["user_agent"], "Chrome/119");
    assert_eq!(by_id(&third_id)["user_agent"], "curl/8");
    assert_eq!(by_id(&first_id)["ip"], "127.0.0.1");
    assert_eq!(by_id(&first_id)["current"], true);
    assert_eq!(by_id(&second_id)["current"], false);
    assert_eq!(by_id(&third_id)["current"], false);
    assert_eq!(listed(b, &other_user).await.len(), 1);

    // A rotation is noted on the session, seen from the other instance.
    let res = b.post("/refresh").bearer(&second_refresh).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let sessions = listed(a, &first).await;
    let refreshed =
        |id: &str| sessions.iter().find(|s| s["id"] == id).unwrap()["last_refreshed"].as_u64();
    assert!(refreshed(&second_id).is_some(), "{sessions:?}");
    assert!(refreshed(&first_id).is_none(), "{sessions:?}");

    // One session ended: its tokens are refused everywhere, the list shrinks.
    let res = a
        .request(http::Method::DELETE, &format!("/sessions/{second_id}"))
        .bearer(&first)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    refused_within_a_second(b, "/protected", &second).await;
    assert_eq!(listed(b, &first).await.len(), 2);
    // Another user's session is no session of ours: 404, and it lives on.
    let res = a
        .request(http::Method::DELETE, &format!("/sessions/{other_id}"))
        .bearer(&first)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text());
    assert_eq!(
        b.get("/protected").bearer(&other_user).send().await.status,
        StatusCode::OK
    );

    // Everywhere else: only the current session is left.
    let res = b
        .request(http::Method::DELETE, "/sessions")
        .bearer(&first)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["ended"], 1);
    refused_within_a_second(a, "/protected", &third).await;
    assert_eq!(
        a.get("/protected").bearer(&first).send().await.status,
        StatusCode::OK
    );
    let sessions = listed(a, &first).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], first_id.as_str());
    // Logged out, it lists nothing any more: its token is refused.
    assert_eq!(
        a.post("/logout").bearer(&first).send().await.status,
        StatusCode::OK
    );
    refused_within_a_second(b, "/sessions", &first).await;
    // Without a token: the guard's 401.
    assert_eq!(
        a.get("/sessions").send().await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sessions_in_memory() {
    let server = Server::start("fresh_token", &[]).await;
    walk(&server, &server).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_shared_by_two_instances_through_redis() {
    let Some(redis) = support::Redis::start() else {
        return;
    };
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str())];
    let (a, b) = (
        Server::start("fresh_token", &env).await,
        Server::start("fresh_token", &env).await,
    );
    walk(&a, &b).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_shared_by_two_instances_through_a_redis_cluster() {
    let Some(cluster) = support::RedisCluster::start(3, 0) else {
        return;
    };
    let urls = cluster.urls();
    let env = [("REDIS_URL", urls.as_str())];
    let (a, b) = (
        Server::start("fresh_token", &env).await,
        Server::start("fresh_token", &env).await,
    );
    walk(&a, &b).await;
}
