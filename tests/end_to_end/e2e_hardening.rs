//! What an outside review found (issue 11), each checked over real TCP against
//! the example it concerns. Guards built every public way are in
//! tests/in_process/guards.rs; the store's bounds in tests/in_process/revocation.rs; hostile keys in
//! tests/in_process/keys.rs; the tonic example's findings in dev/tests/e2e_tonic.rs.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use http::StatusCode;
#[cfg(feature = "redis")]
use support::Redis;
use support::{SECRET, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
#[cfg(feature = "redis")]
use tower_authx::{AuthX, AuthXConfig};

/// Sends raw bytes on one connection and reads until the server closes it or
/// `limit` passes; what came back.
#[cfg(feature = "axum")]
async fn raw(addr: &str, request: &[u8], limit: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn one_user_rotating_and_logging_out_in_a_loop_cannot_take_logout_from_others() {
    let server = Server::start("fresh_token", &[]).await;
    let (_, first_refresh) = server.login().await;
    let mut refresh = first_refresh.clone();
    for _ in 0..200 {
        let res = server.post("/refresh").bearer(&refresh).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        refresh = res.json()["refresh_token"].as_str().unwrap().to_owned();
    }
    for _ in 0..200 {
        let (access, _) = server.login().await;
        let res = server.post("/logout").bearer(&access).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }
    // Reuse detection still works for the very first refresh token.
    let res = server.post("/refresh").bearer(&first_refresh).send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    // Another user's logout works and holds.
    let other = server.login_as("user2", "password2").await["fresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server.get("/protected").bearer(&other).send().await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.post("/logout").bearer(&other).send().await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.get("/protected").bearer(&other).send().await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[cfg(feature = "redis")]
fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_redis_is_refused_at_start_and_fails_closed_at_run_time() {
    let Some(redis) = Redis::start() else { return };
    assert_eq!(
        redis_cli(
            &redis,
            &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]
        ),
        "OK"
    );
    let output = tokio::process::Command::new(support::example_path("fresh_token"))
        .env("PORT", "0")
        .env("JWT_SECRET_KEY", SECRET)
        .env("REDIS_URL", redis.url())
        .stdout(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("noeviction"), "{stderr}");

    // A store made lazily fails closed: guarded requests are 503, never let through.
    let store = tower_authx::RedisStore::new(&redis.url()).unwrap();
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .revocation_store(store),
    )
    .unwrap();
    let token = authx.access_token("u").fresh(true).issue().unwrap();
    let claims: tower_authx::Claims = authx
        .verify_offline(&token, &tower_authx::Requirement::access())
        .unwrap();
    assert_eq!(
        authx.check_revocation(&claims).await,
        Err(tower_authx::AuthError::StoreUnavailable)
    );
    assert_eq!(
        redis_cli(&redis, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
        "OK"
    );
    let store = tower_authx::RedisStore::connect(&redis.url())
        .await
        .unwrap();
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .revocation_store(store),
    )
    .unwrap();
    assert_eq!(authx.check_revocation(&claims).await, Ok(()));
}

#[cfg(all(feature = "redis", feature = "axum"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_example_is_refused_by_the_axum_example() {
    // The tonic example's side of this is in dev/tests/e2e_tonic.rs.
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    // Redis on every request: refused elsewhere at once (no local view).
    let env = [
        ("REDIS_URL", url.as_str()),
        ("JWT_VERIFIED_CACHE", "1000"),
        ("REDIS_LOCAL_VIEW", "0"),
    ];
    let hyper = Server::start("fresh_token", &env).await;
    let axum = Server::start("axum", &env).await;
    let (access, _) = hyper.login().await;
    // Seen (and cached) before the logout.
    assert_eq!(
        axum.get("/protected").bearer(&access).send().await.status,
        StatusCode::OK
    );
    assert_eq!(
        hyper.post("/logout").bearer(&access).send().await.status,
        StatusCode::OK
    );
    assert_eq!(
        axum.get("/protected").bearer(&access).send().await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn every_example_refuses_a_bad_shared_setting_instead_of_ignoring_it() {
    for example in ["fresh_token", "axum"] {
        let output = tokio::process::Command::new(support::example_path(example))
            .env("PORT", "0")
            .env("JWT_SECRET_KEY", SECRET)
            .env("JWT_VERIFIED_CACHE", "lots")
            .stdout(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(
            !output.status.success(),
            "{example} ignored JWT_VERIFIED_CACHE"
        );
    }
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn a_body_that_never_comes_costs_the_examples_a_408_not_a_connection() {
    for example in ["fresh_token", "axum"] {
        let server = Server::start(example, &[]).await;
        let request = format!(
            "POST /login HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 60\r\n\r\n",
            server.addr
        );
        let reply = raw(&server.addr, request.as_bytes(), Duration::from_secs(30)).await;
        assert!(reply.starts_with("HTTP/1.1 408"), "{example}: {reply}");
    }
}

#[tokio::test]
async fn at_the_descriptor_limit_the_accept_loop_backs_off_and_logs_rarely() {
    // The example under a limit of 24 descriptors, then 60 connections at once.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 24 && exec {}",
            support::example_path("fresh_token").display()
        ))
        .env("PORT", "0")
        .env("JWT_SECRET_KEY", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("the example started");
        if let Some(addr) = line.strip_prefix("listening on http://") {
            break addr.to_owned();
        }
    };
    let mut held = Vec::new();
    for _ in 0..60 {
        if let Ok(stream) = TcpStream::connect(&addr).await {
            held.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(held);
    // Still serving once descriptors are free again.
    let server = Server::at(addr);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.get("/").send().await.status, StatusCode::OK);
    child.start_kill().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let reports = stderr
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(
        (1..=6).contains(&reports),
        "{reports} accept-failure lines in about 4 s:\n{stderr}"
    );
}

#[tokio::test]
async fn grpc_lookalike_content_types_get_a_json_refusal_not_a_200() {
    let server = Server::start("fresh_token", &[]).await;
    for content_type in [
        "application/grpcXYZ",
        "application/grpc-webby",
        "application/grpc+",
    ] {
        let res = server
            .post("/refresh")
            .header("content-type", content_type)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{content_type}");
        assert!(res.headers.get("grpc-status").is_none(), "{content_type}");
        assert!(!res.detail().is_empty(), "{content_type}");
    }
    // A real gRPC content type on a GET is no gRPC call either.
    let res = server
        .get("/protected")
        .header("content-type", "application/grpc")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    // A real gRPC call gets a gRPC refusal.
    let res = server
        .post("/refresh")
        .header("content-type", "application/grpc+proto")
        .send()
        .await;
    assert_eq!(res.headers["grpc-status"], "16");
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn cookie_login_takes_json_only() {
    let server = Server::start("axum", &[("JWT_COOKIE_SECURE", "false")]).await;
    let body = r#"{"username":"user1","password":"password1"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut call = server.post("/login/cookie").body(body);
        if let Some(content_type) = content_type {
            call = call.header("content-type", content_type);
        }
        let res = call.send().await;
        assert_eq!(
            res.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert!(res.headers.get("set-cookie").is_none(), "{content_type:?}");
    }
    let res = server
        .post("/login/cookie")
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.headers.get("set-cookie").is_some());
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn answers_that_carry_tokens_are_never_cached() {
    for example in ["fresh_token", "axum"] {
        let server = Server::start(example, &[]).await;
        let res = server
            .post("/login")
            .header("content-type", "application/json")
            .body(r#"{"username":"user1","password":"password1"}"#)
            .send()
            .await;
        assert_eq!(res.headers["cache-control"], "no-store", "{example} /login");
        assert_eq!(res.headers["pragma"], "no-cache", "{example} /login");
        let json = res.json();
        for token in ["fresh_token", "refresh_token"] {
            let token = json[token].as_str().unwrap();
            let res = server.post("/refresh").bearer(token).send().await;
            assert_eq!(res.status, StatusCode::OK, "{example}");
            assert_eq!(
                res.headers["cache-control"], "no-store",
                "{example} /refresh"
            );
        }
    }
}

/// One client address holding idle connections cannot fill the examples'
/// connection cap: past its own share its connections are closed at once,
/// and a client from another address is served without waiting.
#[tokio::test]
async fn one_client_address_cannot_hold_every_connection() {
    let server = Server::start(
        "fresh_token",
        &[
            ("MAX_CONNECTIONS", "32"),
            ("MAX_CONNECTIONS_PER_CLIENT", "4"),
        ],
    )
    .await;
    let port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    // 40 idle connections from 127.0.0.1, more than the whole cap.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut still_open = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await {
            Err(_) => still_open += 1,   // nothing yet: held open
            Ok(Ok(0)) | Ok(Err(_)) => {} // closed by the server
            Ok(Ok(_)) => panic!("an idle connection got an answer"),
        }
    }
    assert!(still_open <= 4, "{still_open} idle connections held");
    // Another client address (loopback is a /8) gets in at once.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = tokio::time::timeout(
        Duration::from_secs(2),
        socket.connect(format!("127.0.0.1:{port}").parse().unwrap()),
    )
    .await
    .expect("connect")
    .unwrap();
    other
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), other.read_to_end(&mut reply))
        .await
        .expect("served without waiting")
        .unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

/// A connection from `ip` to the server at `port`.
async fn connect_from(ip: &str, port: u16) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap()
}

/// One request on a kept-alive connection; the status line and body, or
/// why none came within `limit`.
async fn exchange(
    stream: &mut TcpStream,
    request: &str,
    limit: Duration,
) -> Result<String, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let read = async {
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!(
                    "closed after {:?}",
                    String::from_utf8_lossy(&reply)
                ));
            }
            reply.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&reply).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return Ok(text);
                }
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| "no answer in time".to_owned())?
}

/// Many addresses holding idle connections past the examples' cap (20
/// addresses, each at its own share) do not lock a new client out: at the
/// cap, the connections that never sent a request go first, and a client
/// that authenticated keeps its kept-alive connection throughout.
#[tokio::test]
async fn idle_connections_from_many_addresses_make_room_and_the_authenticated_keep_theirs() {
    let server = Server::start(
        "fresh_token",
        &[
            ("MAX_CONNECTIONS", "64"),
            ("MAX_CONNECTIONS_PER_CLIENT", "8"),
        ],
    )
    .await;
    let port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    let token = server.login_fresh().await;
    let protected =
        format!("GET /protected HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n");
    let mut kept = connect_from("127.0.0.200", port).await;
    let first = exchange(&mut kept, &protected, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // 20 addresses x 8 idle connections: 160, past the cap of 64.
    let mut idle = Vec::new();
    for address in 1..=20 {
        for _ in 0..8 {
            idle.push(connect_from(&format!("127.0.0.{address}"), port).await);
        }
    }
    let flooded = std::time::Instant::now();
    let mut answered = 0;
    for probe in 0..5 {
        let mut fresh = tokio::time::timeout(
            Duration::from_secs(3),
            connect_from(&format!("127.0.0.{}", 100 + probe), port),
        )
        .await
        .expect("connect");
        match exchange(&mut fresh, &protected, Duration::from_secs(3)).await {
            Ok(reply) if reply.starts_with("HTTP/1.1 200") => answered += 1,
            other => eprintln!("probe {probe}: {other:?}"),
        }
    }
    eprintln!("{answered} of 5 probes answered in {:?}", flooded.elapsed());
    assert_eq!(
        answered, 5,
        "a new client was locked out by idle connections"
    );
    // The authenticated connection kept its place (and is still kept alive).
    let again = exchange(&mut kept, &protected, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    drop(idle);
}

/// Issue 43, item 6, over TCP: 256 connections each stalled inside a JSON
/// body (on a route that takes a token from it, on `/login`, and on a 404)
/// hold what a token request needs and no more: the fresh_token example
/// with the `json` location grows by well under 1 MiB a connection (before:
/// 272 MiB for 256).
#[tokio::test]
async fn stalled_json_bodies_hold_little_memory_per_connection() {
    let server = Server::start(
        "fresh_token",
        &[
            ("JWT_TOKEN_LOCATION", "headers,json"),
            ("MAX_CONNECTIONS_PER_CLIENT", "1024"),
        ],
    )
    .await;
    let Some(before) = server.resident_kib() else {
        support::skipped("no /proc: the server's memory cannot be read");
        return;
    };
    let part = vec![b' '; 48 * 1024];
    let mut stalled = Vec::new();
    for n in 0..256 {
        let path = ["/protected", "/login", "/nowhere"][n % 3];
        let mut stream = TcpStream::connect(&server.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 61440\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // Most of a body under the 64 KiB bound, then nothing: a client
        // that stalls.
        let _ = stream.write_all(&part).await;
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = server.resident_kib().unwrap();
    let per_connection = after.saturating_sub(before) / 256;
    println!(
        "256 stalled JSON bodies: {before} KiB before, {after} KiB after, {per_connection} KiB a connection"
    );
    assert!(
        per_connection < 256,
        "{per_connection} KiB held a stalled connection"
    );
    drop(stalled);
}
