//! DPoP end to end: the fresh_token example over real TCP, driven by DPoP
//! clients nobody here wrote (panva's `dpop` on node, PyJWT in Python), and
//! two instances sharing one real `redis-server` for replay protection.

use crate::support;

use http::StatusCode;
use serde_json::json;
use support::dpop::{ProofClient, ProofKey};
use support::{Reply, Server};

/// `POST /login` as user1 with the `DPoP` proof `proof`.
async fn post_login(server: &Server, proof: &str) -> Reply {
    server
        .post("/login")
        .header("content-type", "application/json")
        .header("dpop", proof)
        .body(json!({"username": "user1", "password": "password1"}).to_string())
        .send()
        .await
}

/// A login with a proof: the pair is bound to the client's key.
async fn login(server: &Server, base: &str, client: &mut ProofClient) -> (String, String) {
    let proof = client
        .proof("POST", &format!("{base}/login"), None, None)
        .await;
    let res = post_login(server, &proof).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "{}: {}",
        client.name,
        res.text()
    );
    let json = res.json();
    assert_eq!(json["token_type"], "DPoP", "{}", client.name);
    let access = json["fresh_token"].as_str().unwrap().to_owned();
    // Our thumbprint of the client's key is the one the client computed.
    let claims = support::payload_of(&access);
    assert_eq!(claims["cnf"]["jkt"], client.jkt.as_str(), "{}", client.name);
    (access, json["refresh_token"].as_str().unwrap().to_owned())
}

/// A login as `user` (`userN`, whose password is `passwordN`) with a proof
/// by `key`, for the example at `base`: the fresh access token, bound to it.
#[cfg(feature = "redis")]
async fn dpop_login(server: &Server, base: &str, user: &str, key: &ProofKey) -> String {
    let res = server
        .post("/login")
        .header("content-type", "application/json")
        .header("dpop", key.proof("POST", &format!("{base}/login"), None))
        .body(json!({"username": user, "password": format!("password{}", &user[4..])}).to_string())
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()["fresh_token"].as_str().unwrap().to_owned()
}

async fn call(
    server: &Server,
    method: http::Method,
    path: &str,
    token: &str,
    proof: &str,
) -> Reply {
    server
        .request(method, path)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
}

/// The walkthrough of the DPoP guide (src/guide/dpop.md), with `client`.
async fn walkthrough(server: &Server, base: &str, client: &mut ProofClient) {
    let who = client.name.clone();
    let (access, refresh) = login(server, base, client).await;
    let url = format!("{base}/protected");
    let proof = client.proof("GET", &url, Some(&access), None).await;
    let res = call(server, http::Method::GET, "/protected", &access, &proof).await;
    assert_eq!(res.status, StatusCode::OK, "{who}: {}", res.text());
    assert_eq!(res.json()["username"], "user1", "{who}: {}", res.text());
    // The same proof again.
    let res = call(server, http::Method::GET, "/protected", &access, &proof).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{who}");
    assert!(
        res.challenge()
            .starts_with("DPoP error=\"invalid_dpop_proof\""),
        "{who}: {}",
        res.challenge()
    );
    // The token alone, as Bearer.
    let res = server.get("/protected").bearer(&access).send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{who}");
    // A proof for another route.
    let proof = client
        .proof(
            "GET",
            &format!("{base}/fresh-required"),
            Some(&access),
            None,
        )
        .await;
    let res = call(server, http::Method::GET, "/protected", &access, &proof).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{who}");
    // The login token is fresh.
    let proof = client
        .proof(
            "GET",
            &format!("{base}/fresh-required"),
            Some(&access),
            None,
        )
        .await;
    let res = call(
        server,
        http::Method::GET,
        "/fresh-required",
        &access,
        &proof,
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{who}: {}", res.text());
    // Rotation keeps the binding; the old refresh token is spent.
    let proof = client
        .proof("POST", &format!("{base}/refresh"), Some(&refresh), None)
        .await;
    let res = call(server, http::Method::POST, "/refresh", &refresh, &proof).await;
    assert_eq!(res.status, StatusCode::OK, "{who}: {}", res.text());
    assert_eq!(res.json()["token_type"], "DPoP", "{who}");
    let next = res.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        support::payload_of(&next)["cnf"]["jkt"],
        client.jkt.as_str()
    );
    let proof = client.proof("GET", &url, Some(&next), None).await;
    let res = call(server, http::Method::GET, "/protected", &next, &proof).await;
    assert_eq!(res.status, StatusCode::OK, "{who}");
    let proof = client
        .proof("POST", &format!("{base}/refresh"), Some(&refresh), None)
        .await;
    let res = call(server, http::Method::POST, "/refresh", &refresh, &proof).await;
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "{who}: reused refresh token"
    );
    // Another key cannot use the tokens.
    let thief = ProofKey::es256();
    let proof = thief.proof("GET", &url, Some(&next));
    let res = call(server, http::Method::GET, "/protected", &next, &proof).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{who}");
    assert!(
        res.challenge().starts_with("DPoP error=\"invalid_token\""),
        "{who}"
    );
}

#[tokio::test]
async fn node_and_python_clients_walk_through_the_example() {
    let server = Server::start("fresh_token", &[]).await;
    let base = format!("http://{}", server.addr);
    let mut clients = Vec::new();
    for alg in ["ES256", "Ed25519", "RS256", "PS256"] {
        clients.extend(ProofClient::node(alg).await);
    }
    clients.extend(ProofClient::python().await);
    for client in &mut clients {
        walkthrough(&server, &base, client).await;
    }
    // The seed's Bearer walkthrough is untouched.
    let access = server.login_fresh().await;
    assert_eq!(
        server.get("/protected").bearer(&access).send().await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_public_url_is_what_proofs_name() {
    let base = "https://api.example.test/v1";
    let server = Server::start("fresh_token", &[("PUBLIC_URL", base)]).await;
    let Some(mut client) = ProofClient::node("ES256").await else {
        return;
    };
    let (access, _) = login(&server, base, &mut client).await;
    let proof = client
        .proof("GET", &format!("{base}/protected"), Some(&access), None)
        .await;
    let res = call(&server, http::Method::GET, "/protected", &access, &proof).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // The address it listens on is not what clients address.
    let local = format!("http://{}/protected", server.addr);
    let proof = client.proof("GET", &local, Some(&access), None).await;
    let res = call(&server, http::Method::GET, "/protected", &access, &proof).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn server_nonces_over_tcp() {
    let secret = "a-nonce-secret-of-at-least-32-bytes!";
    let server = Server::start("fresh_token", &[("DPOP_NONCE_SECRET", secret)]).await;
    let base = format!("http://{}", server.addr);
    let Some(mut client) = ProofClient::node("ES256").await else {
        return;
    };
    // The login proof without a nonce: 401 use_dpop_nonce with the nonce.
    let proof = client
        .proof("POST", &format!("{base}/login"), None, None)
        .await;
    let res = post_login(&server, &proof).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    assert!(
        res.challenge().starts_with("DPoP error=\"use_dpop_nonce\""),
        "{}",
        res.challenge()
    );
    let nonce = res.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let proof = client
        .proof("POST", &format!("{base}/login"), None, Some(&nonce))
        .await;
    let res = post_login(&server, &proof).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let access = res.json()["fresh_token"].as_str().unwrap().to_owned();
    let url = format!("{base}/protected");
    let proof = client
        .proof("GET", &url, Some(&access), Some("not-our-nonce"))
        .await;
    let res = call(&server, http::Method::GET, "/protected", &access, &proof).await;
    assert!(
        res.challenge().starts_with("DPoP error=\"use_dpop_nonce\""),
        "{}",
        res.challenge()
    );
    let proof = client.proof("GET", &url, Some(&access), Some(&nonce)).await;
    let res = call(&server, http::Method::GET, "/protected", &access, &proof).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

/// A proof used on one instance is refused on the other: both remember proofs
/// in one Redis.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_proof_replayed_to_another_instance_is_refused() {
    let Some(redis) = support::Redis::start() else {
        return;
    };
    let url = redis.url();
    // Both instances are addressed by one public URL (a load balancer's).
    let base = "https://api.example.test";
    let env = [("REDIS_URL", url.as_str()), ("PUBLIC_URL", base)];
    let a = Server::start("fresh_token", &env).await;
    let b = Server::start("fresh_token", &env).await;
    let Some(mut client) = ProofClient::node("ES256").await else {
        return;
    };
    let (access, _) = login(&a, base, &mut client).await;
    let proof = client
        .proof("GET", &format!("{base}/protected"), Some(&access), None)
        .await;
    let res = call(&b, http::Method::GET, "/protected", &access, &proof).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    for server in [&a, &b] {
        let res = call(server, http::Method::GET, "/protected", &access, &proof).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
        assert_eq!(
            res.detail(),
            "Invalid DPoP proof: the proof was used before"
        );
    }
    // The login proof was spent in Redis too.
    let login_proof = client
        .proof("POST", &format!("{base}/login"), None, None)
        .await;
    for (server, status) in [(&a, StatusCode::OK), (&b, StatusCode::UNAUTHORIZED)] {
        let res = post_login(server, &login_proof).await;
        assert_eq!(res.status, status, "{}", res.text());
    }
}

/// The DPoP guide's walkthrough (a node client with panva's `dpop`) runs
/// unchanged against the example.
#[tokio::test]
async fn the_readme_dpop_walkthrough_runs_against_the_example() {
    let server = Server::start("fresh_token", &[]).await;
    if ProofClient::node("ES256").await.is_none() {
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/oidc/dpop_walkthrough.mjs"
    );
    let out = tokio::process::Command::new("node")
        .arg(script)
        .arg(format!("http://{}", server.addr))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok")).count(),
        9,
        "{stdout}"
    );
}

/// One account flooding two instances sharing Redis with proofs (a new key
/// per login) is answered 429 past its bound, alone: another account's DPoP
/// requests and its logout keep answering on either instance.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_one_account_proof_flood_is_refused_alone_over_tcp() {
    let Some(redis) = support::Redis::start() else {
        return;
    };
    let url = redis.url();
    let base = "https://api.example.test";
    let env = [
        ("REDIS_URL", url.as_str()),
        ("PUBLIC_URL", base),
        ("DPOP_PROOFS_PER_SUBJECT", "30"),
    ];
    let a = Server::start("fresh_token", &env).await;
    let b = Server::start("fresh_token", &env).await;
    let protected = format!("{base}/protected");
    let (mut accepted, mut refused) = (0, None);
    'flood: for key in [ProofKey::es256(), ProofKey::ed25519()] {
        let token = dpop_login(&a, base, "user1", &key).await;
        for i in 0..40 {
            let server = if i % 2 == 0 { &a } else { &b };
            let proof = key.proof("GET", &protected, Some(&token));
            let res = call(server, http::Method::GET, "/protected", &token, &proof).await;
            if res.status != StatusCode::OK {
                refused = Some(res);
                break 'flood;
            }
            accepted += 1;
        }
    }
    let refused = refused.expect("the flood was never refused");
    // 30 live proofs for user1 over both keys (a login's proof counts for
    // its key, not yet for an account).
    assert_eq!(accepted, 30, "{}", refused.text());
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    assert!(refused.headers.contains_key("retry-after"));

    // user2, on either instance: requests, then a logout that holds.
    let key = ProofKey::rs256();
    let token = dpop_login(&b, base, "user2", &key).await;
    for server in [&a, &b] {
        let proof = key.proof("GET", &protected, Some(&token));
        let res = call(server, http::Method::GET, "/protected", &token, &proof).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }
    let proof = key.proof("POST", &format!("{base}/logout"), Some(&token));
    let res = call(&a, http::Method::POST, "/logout", &token, &proof).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let proof = key.proof("GET", &protected, Some(&token));
    let res = call(&b, http::Method::GET, "/protected", &token, &proof).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
}

/// Issue 43, item 2, over TCP: one address logging in with a new key each
/// time (a login's proof has no account to bound it) is answered 429 past
/// its part of the logins' share of the memory replay store, while a client
/// from another address logs in and its DPoP requests keep answering 200,
/// all through the flood.
#[tokio::test]
async fn a_login_flood_with_a_new_key_each_time_is_refused_alone_over_tcp() {
    let base = "https://api.example.test";
    let server = Server::start("fresh_token", &[("PUBLIC_URL", base)]).await;
    let login = format!("{base}/login");
    let protected = format!("{base}/protected");
    let flood = {
        let addr = server.addr.clone();
        let login = login.clone();
        tokio::spawn(async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
            let mut sender = support::http1(stream).await;
            let (mut accepted, mut refused) = (0u32, 0u32);
            for _ in 0..1500 {
                let key = ProofKey::new_es256();
                let request = http::Request::post("/login")
                    .header("host", &addr)
                    .header("content-type", "application/json")
                    .header("dpop", key.proof("POST", &login, None))
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        json!({"username": "user1", "password": "password1"}).to_string(),
                    )))
                    .unwrap();
                let res = sender.send_request(request).await.unwrap();
                match res.status() {
                    StatusCode::OK => accepted += 1,
                    StatusCode::TOO_MANY_REQUESTS => refused += 1,
                    other => panic!("a login of the flood answered {other}"),
                }
                let _ = http_body_util::BodyExt::collect(res.into_body()).await;
            }
            (accepted, refused)
        })
    };
    // Another user, from 127.0.0.1, meanwhile: logins and requests.
    let mut answered = 0;
    while !flood.is_finished() {
        let key = ProofKey::new_es256();
        let res = server
            .post("/login")
            .header("content-type", "application/json")
            .header("dpop", key.proof("POST", &login, None))
            .body(json!({"username": "user2", "password": "password2"}).to_string())
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        let token = res.json()["fresh_token"].as_str().unwrap().to_owned();
        for _ in 0..5 {
            let proof = key.proof("GET", &protected, Some(&token));
            let res = call(&server, http::Method::GET, "/protected", &token, &proof).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
            answered += 1;
        }
    }
    let (accepted, refused) = flood.await.unwrap();
    println!(
        "flood: {accepted} logins accepted, {refused} refused (429); the other client: {answered} requests answered 200"
    );
    assert!(refused > 0, "the flood was never refused");
    assert!(accepted < 1500, "{accepted}");
}

/// Issue 43, item 3, over TCP: 8 connections flood the fresh_token example
/// with DPoP requests (each a new proof, written to Redis) while Redis has
/// 3 MiB of headroom; another user's logouts land during the flood and at
/// its end, the proofs stop at the line (503), and Redis stays below it. (A
/// DPoP-bound logout carries a proof: at the line it waits too, 503 with
/// `Retry-After`, as SECURITY.md says.)
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_flood_over_tcp_never_takes_a_logouts_room_in_redis() {
    let Some(redis) = support::Redis::start() else {
        return;
    };
    let url = redis.url();
    let base = "https://api.example.test";
    let env = [
        ("REDIS_URL", url.as_str()),
        ("PUBLIC_URL", base),
        ("DPOP_PROOFS_PER_SUBJECT", "1000000"),
    ];
    let server = Server::start("fresh_token", &env).await;
    // The bystander holds bearer tokens (a login without a proof).
    let bearer_login = || async {
        let res = server
            .post("/login")
            .header("content-type", "application/json")
            .body(json!({"username": "user2", "password": "password2"}).to_string())
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()["fresh_token"].as_str().unwrap().to_owned()
    };
    let server = &server;
    let logout = |token: String| async move { server.post("/logout").bearer(&token).send().await };
    let (during, after) = (bearer_login().await, bearer_login().await);
    let max = redis.memory("used_memory:") + 3 * 1024 * 1024;
    redis.cli(&["CONFIG", "SET", "maxmemory", &max.to_string()]);
    let protected = format!("{base}/protected");
    let mut flood = Vec::new();
    for _ in 0..8 {
        let key = ProofKey::new_es256();
        let token = dpop_login(server, base, "user1", &key).await;
        let (addr, protected) = (server.addr.clone(), protected.clone());
        flood.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut sender = support::http1(stream).await;
            let (mut accepted, mut waited) = (0u32, 0u32);
            while waited < 50 {
                let request = http::Request::get("/protected")
                    .header("host", &addr)
                    .header("authorization", format!("DPoP {token}"))
                    .header("dpop", key.proof("GET", &protected, Some(&token)))
                    .body(http_body_util::Full::<bytes::Bytes>::default())
                    .unwrap();
                let res = sender.send_request(request).await.unwrap();
                match res.status() {
                    StatusCode::OK => accepted += 1,
                    StatusCode::SERVICE_UNAVAILABLE => waited += 1,
                    other => panic!("a flood request answered {other}"),
                }
                let _ = http_body_util::BodyExt::collect(res.into_body()).await;
            }
            accepted
        }));
    }
    // The bystander's logout, while the flood runs.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let res = logout(during).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let mut accepted = 0;
    for worker in flood {
        accepted += worker.await.unwrap();
    }
    let used = redis.memory("used_memory:");
    println!(
        "{accepted} proofs accepted over TCP; Redis at {:.1}% of maxmemory",
        used as f64 * 100.0 / max as f64
    );
    assert!(
        (used as f64) < 0.9 * max as f64 + 64.0 * 1024.0,
        "proofs took the revocations' room: {used} of {max}"
    );
    // Another logout, at the line: it still lands, and holds.
    let res = logout(after.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = server.get("/protected").bearer(&after).send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
}
