//! Revocation at scale, end to end: two example instances on a real 3-primary
//! Redis Cluster started here (`redis-server --cluster-enabled yes`,
//! `redis-cli --cluster create`), each answering checks from its local view.
//! Logouts propagate (the delay is measured and printed), rotation and reuse
//! detection work across instances and slots, the feed cut while Redis
//! answers stays correct, and a killed primary is replaced by its replica
//! without a logout coming back; a logout waits for the replica of the
//! primary that took it.
#![cfg(feature = "redis")]

use crate::support;

use std::time::{Duration, Instant};

use http::StatusCode;
use support::{RedisCluster, SECRET, Server};
use tower_authx::{AuthX, AuthXConfig};

/// Tokens for subjects the example's users do not cover, signed with its secret.
fn issuer() -> AuthX {
    AuthX::new(AuthXConfig::from_secret(SECRET).unwrap()).unwrap()
}

async fn status(server: &Server, token: &str) -> StatusCode {
    server.get("/protected").bearer(token).send().await.status
}

/// Polls `server` until it refuses `token`; how long that took.
async fn until_refused(server: &Server, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let status = status(server, token).await;
        if status == StatusCode::UNAUTHORIZED {
            return start.elapsed();
        }
        assert_eq!(status, StatusCode::OK, "never anything but 200 or 401 here");
        assert!(start.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_rotation_and_reuse_across_instances_and_slots_of_a_cluster() {
    let Some(cluster) = RedisCluster::start(3, 0) else {
        return;
    };
    let urls = cluster.urls();
    let env = [("REDIS_URL", urls.as_str())];
    let a = Server::start("fresh_token", &env).await;
    let b = Server::start("fresh_token", &env).await;
    let issuer = issuer();

    // Subjects spread over the three primaries.
    let pairs: Vec<_> = (0..24)
        .map(|i| issuer.token_pair(format!("subject-{i}")).issue().unwrap())
        .collect();
    let primaries: std::collections::HashSet<u16> = (0..24)
        .map(|i| cluster.primary_of(&format!("authx:sub:subject-{i}")))
        .collect();
    assert_eq!(primaries.len(), 3, "the subjects span every primary");
    // B knows them all (its view keeps them), then A logs them out one by one.
    for pair in &pairs {
        assert_eq!(status(&b, &pair.access_token).await, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for pair in &pairs {
        assert_eq!(status(&b, &pair.access_token).await, StatusCode::OK);
    }
    let mut delays = Vec::new();
    for pair in &pairs {
        let res = a.post("/logout").bearer(&pair.access_token).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        delays.push(until_refused(&b, &pair.access_token, Duration::from_secs(5)).await);
    }
    delays.sort();
    println!(
        "logout on A refused on B after: min {:?}, median {:?}, max {:?} ({} subjects, 3 primaries)",
        delays[0],
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len()
    );
    // And refused by A itself at once (its own writes drop its view's entry).
    for pair in &pairs {
        assert_eq!(
            status(&a, &pair.access_token).await,
            StatusCode::UNAUTHORIZED
        );
    }

    // Rotation on A, the spent refresh token replayed on B: the session dies.
    for user in ["user1", "user2"] {
        let login = a.login_as(user, &format!("password{}", &user[4..])).await;
        let (access, refresh) = (
            login["fresh_token"].as_str().unwrap().to_owned(),
            login["refresh_token"].as_str().unwrap().to_owned(),
        );
        assert_eq!(status(&b, &access).await, StatusCode::OK);
        let rotated = a.post("/refresh").bearer(&refresh).send().await;
        assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
        let next = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
        let replay = b.post("/refresh").bearer(&refresh).send().await;
        assert_eq!(
            replay.detail(),
            "Refresh token reuse detected: the session has been revoked"
        );
        let res = a.post("/refresh").bearer(&next).send().await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
        until_refused(&a, &access, Duration::from_secs(5)).await;
    }

    // The feed cut while Redis answers: every subscriber is disconnected; the
    // instances ask Redis directly until they subscribe again, and stay right.
    let pair = issuer.token_pair("after-the-cut").issue().unwrap();
    assert_eq!(status(&b, &pair.access_token).await, StatusCode::OK);
    for port in cluster.live_ports() {
        cluster.cli(port, &["CLIENT", "KILL", "TYPE", "pubsub"]);
    }
    let res = a.post("/logout").bearer(&pair.access_token).send().await;
    assert_eq!(res.status, StatusCode::OK);
    let delay = until_refused(&b, &pair.access_token, Duration::from_secs(5)).await;
    println!("with the feed cut, refused on B after {delay:?}");
    // Later checks after the feed is back still see every logout.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for pair in &pairs {
        assert_eq!(
            status(&b, &pair.access_token).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_no_logout_comes_back() {
    let Some(mut cluster) = RedisCluster::start(3, 1) else {
        return;
    };
    let urls = cluster.urls();
    // A logout counts once a replica has it.
    let env = [("REDIS_URL", urls.as_str()), ("REDIS_WAIT_REPLICAS", "1")];
    let a = Server::start("fresh_token", &env).await;
    let b = Server::start("fresh_token", &env).await;
    let issuer = issuer();
    let gone = issuer.token_pair("victim").issue().unwrap();
    let kept = issuer.token_pair("survivor").issue().unwrap();
    assert_eq!(status(&b, &gone.access_token).await, StatusCode::OK);
    let res = a.post("/logout").bearer(&gone.access_token).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    until_refused(&b, &gone.access_token, Duration::from_secs(5)).await;

    let primary = cluster.primary_of("authx:sub:victim");
    cluster.kill(primary);
    let killed = Instant::now();
    // While the replica takes over: 503 or 401 for the logged-out token,
    // never 200; the instances serve again by themselves.
    let mut outage = Duration::ZERO;
    loop {
        let logged_out = status(&b, &gone.access_token).await;
        assert_ne!(
            logged_out,
            StatusCode::OK,
            "a logout came back after the failover"
        );
        let fine = status(&a, &kept.access_token).await == StatusCode::OK
            && logged_out == StatusCode::UNAUTHORIZED;
        if fine {
            break;
        }
        if logged_out == StatusCode::SERVICE_UNAVAILABLE {
            outage = killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "no recovery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "primary {primary} killed: served again after {:?} (503 until {outage:?})",
        killed.elapsed()
    );
    cluster.wait_until_ok();
    // The promoted replica has no replica of its own: one node's death
    // costs durability (the write is counted and reported), not logins and
    // logouts (issue 43, item 9), on that shard as on the others.
    let res = a.post("/logout").bearer(&kept.access_token).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    until_refused(&b, &kept.access_token, Duration::from_secs(5)).await;
    // Logins too (their sessions are written wherever user1's shard is).
    a.login().await;
    // The old primary comes back as the new one's replica: writes count again.
    cluster.restart(primary);
    let back = Instant::now();
    cluster.wait_for_replicas(1);
    println!(
        "the old primary is a replica again after {:?}",
        back.elapsed()
    );
    let later = issuer.token_pair("victim").issue().unwrap();
    assert_eq!(status(&b, &later.access_token).await, StatusCode::OK);
    // A replica that has just caught up may still miss a write's `WAIT` on
    // a loaded machine: that logout is 503 with `Retry-After` (the primary
    // has it, no replica vouches for it yet), and a client that honours it
    // is told 200, or 401 "revoked" when its first try had landed.
    let mut tries = 0;
    let res = loop {
        let res = a.post("/logout").bearer(&later.access_token).send().await;
        tries += 1;
        if res.status != StatusCode::SERVICE_UNAVAILABLE || tries == 10 {
            break res;
        }
        let wait: u64 = res.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(wait)).await;
    };
    let landed_before =
        tries > 1 && res.status == StatusCode::UNAUTHORIZED && res.text().contains("revoked");
    assert!(
        res.status == StatusCode::OK || landed_before,
        "{} {}",
        res.status,
        res.text()
    );
    until_refused(&b, &later.access_token, Duration::from_secs(5)).await;
}

/// A logout counts once a replica of the primary that took it has it, and
/// that primary is asked: another primary's lack of a replica does not refuse
/// it. A primary whose replica is gone counts its writes alone (reported),
/// rather than refusing every login and logout of its shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_waits_for_the_replica_of_its_own_primary() {
    let Some(mut cluster) = RedisCluster::start(3, 1) else {
        return;
    };
    let urls = cluster.urls();
    let env = [("REDIS_URL", urls.as_str()), ("REDIS_WAIT_REPLICAS", "1")];
    let a = Server::start("fresh_token", &env).await;
    let issuer = issuer();
    let alone = cluster.primary_of("authx:sub:alone");
    let elsewhere = (0..)
        .map(|i| format!("elsewhere-{i}"))
        .find(|sub| cluster.primary_of(&format!("authx:sub:{sub}")) != alone)
        .unwrap();
    // The replica of `alone`'s primary gone: that primary holds its slots
    // without anybody to copy its writes to.
    cluster.kill(cluster.replica_of("authx:sub:alone"));
    let replica_gone = (0..200).any(|_| {
        let gone = cluster
            .cli(alone, &["INFO", "replication"])
            .contains("connected_slaves:0");
        if !gone {
            std::thread::sleep(Duration::from_millis(25));
        }
        gone
    });
    assert!(replica_gone, "the primary still counts its killed replica");
    let kept = issuer.token_pair(&elsewhere).issue().unwrap();
    let res = a.post("/logout").bearer(&kept.access_token).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let unsafe_logout = issuer.token_pair("alone").issue().unwrap();
    let res = a
        .post("/logout")
        .bearer(&unsafe_logout.access_token)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

/// The local view on one Redis node, in process: it goes live, answers,
/// sees another process's logout, steps aside while Redis is gone (503, never
/// a stale answer) and comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_view_steps_aside_while_redis_is_gone() {
    let Some(mut redis) = support::Redis::start() else {
        return;
    };
    let store = tower_authx::RedisStore::connect(&redis.url())
        .await
        .unwrap()
        .local_view(1000);
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .revocation_store(store.clone()),
    )
    .unwrap();
    // Another instance, asking Redis every time.
    let other = AuthX::new(
        AuthXConfig::from_secret(SECRET).unwrap().revocation_store(
            tower_authx::RedisStore::connect(&redis.url())
                .await
                .unwrap(),
        ),
    )
    .unwrap();
    let claims = |authx: &AuthX, token: &str| -> tower_authx::Claims {
        authx
            .verify_offline(token, &tower_authx::Requirement::access())
            .unwrap()
    };
    let pair = authx.token_pair("viewed").issue().unwrap();
    let mine = claims(&authx, &pair.access_token);
    assert!(authx.check_revocation(&mine).await.is_ok());
    let start = Instant::now();
    while !store.local_view_is_live() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the feed never came up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(authx.check_revocation(&mine).await.is_ok());
    other
        .revoke(&claims(&other, &pair.access_token))
        .await
        .unwrap();
    let start = Instant::now();
    while authx.check_revocation(&mine).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the logout never arrived"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("another process's logout seen after {:?}", start.elapsed());

    let live = authx.token_pair("still-live").issue().unwrap();
    let live = claims(&authx, &live.access_token);
    assert!(authx.check_revocation(&live).await.is_ok());
    redis.kill();
    let start = Instant::now();
    while store.local_view_is_live() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the feed never noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        authx.check_revocation(&live).await,
        Err(tower_authx::AuthError::StoreUnavailable)
    );
    redis.restart();
    let start = Instant::now();
    while authx.check_revocation(&live).await.is_err() || !store.local_view_is_live() {
        assert!(start.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One URL that is a cluster node (a managed cluster's single endpoint) is
/// taken as the cluster: subjects on every primary are logged out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_url_of_a_cluster_means_the_cluster() {
    let Some(cluster) = RedisCluster::start(3, 0) else {
        return;
    };
    let one = format!("redis://127.0.0.1:{}", cluster.ports[0]);
    let server = Server::start("fresh_token", &[("REDIS_URL", one.as_str())]).await;
    let issuer = issuer();
    for i in 0..12 {
        let pair = issuer.token_pair(format!("one-url-{i}")).issue().unwrap();
        assert_eq!(status(&server, &pair.access_token).await, StatusCode::OK);
        let res = server
            .post("/logout")
            .bearer(&pair.access_token)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        until_refused(&server, &pair.access_token, Duration::from_secs(5)).await;
    }
    let primaries: std::collections::HashSet<u16> = (0..12)
        .map(|i| cluster.primary_of(&format!("authx:sub:one-url-{i}")))
        .collect();
    assert_eq!(primaries.len(), 3, "the subjects span every primary");
}

/// A partial partition: the node the feed is subscribed on stops hearing one
/// primary (`CLUSTER FORGET` there). The feed stops hearing that primary's
/// beats and the view steps aside: a logout written on that primary is
/// refused within seconds, not served from memory until `max_age`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_view_steps_aside_when_its_node_stops_hearing_a_primary() {
    let Some(cluster) = RedisCluster::start(3, 0) else {
        return;
    };
    let urls = cluster.urls();
    // The feed subscribes on the first node named.
    let feed_port = cluster.ports[0];
    let store = tower_authx::RedisStore::cluster(urls.split(','))
        .unwrap()
        .local_view(1000);
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .revocation_store(store.clone()),
    )
    .unwrap();
    // A subject whose hash lives on another primary than the feed's node.
    let subject = (0..)
        .map(|i| format!("far-{i}"))
        .find(|s| cluster.primary_of(&format!("authx:sub:{s}")) != feed_port)
        .unwrap();
    let far = cluster.primary_of(&format!("authx:sub:{subject}"));
    // Another instance writing straight to that primary (its own cluster
    // client would follow the partition's confusion of slot maps instead).
    let other = AuthX::new(AuthXConfig::from_secret(SECRET).unwrap().revocation_store(
        tower_authx::RedisStore::new(&format!("redis://127.0.0.1:{far}")).unwrap(),
    ))
    .unwrap();
    let token = authx.access_token(&subject).fresh(true).issue().unwrap();
    let verify = |authx: &AuthX| -> tower_authx::Claims {
        authx
            .verify_offline(&token, &tower_authx::Requirement::access())
            .unwrap()
    };
    let mine = verify(&authx);
    // The first check starts the view and its feed.
    assert!(authx.check_revocation(&mine).await.is_ok());
    let start = Instant::now();
    while !store.local_view_is_live() {
        assert!(start.elapsed() < Duration::from_secs(10), "no feed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Kept in the view.
    assert!(authx.check_revocation(&mine).await.is_ok());
    assert!(authx.check_revocation(&mine).await.is_ok());

    let far_id = cluster.cli(far, &["CLUSTER", "MYID"]).trim().to_owned();
    cluster.cli(feed_port, &["CLUSTER", "FORGET", &far_id]);
    other.revoke(&verify(&other)).await.unwrap();
    let start = Instant::now();
    while authx.check_revocation(&mine).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "the view kept answering while its node did not hear a primary"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "a logout on a primary the feed's node stopped hearing, refused after {:?}",
        start.elapsed()
    );
    assert_eq!(
        authx.check_revocation(&mine).await,
        Err(tower_authx::AuthError::Revoked)
    );
}
