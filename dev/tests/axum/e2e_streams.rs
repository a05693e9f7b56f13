//! The axum example's `GET /events` (SSE) and `GET /ws` (WebSocket echo)
//! over TCP with real clients (curl, Python's `websockets`, npm `ws`): each ends with
//! the protocol's own signal within a second of the token's end, at expiry
//! or on a logout (here, or on another instance through Redis and Redis
//! Cluster), and a WebSocket renews in band (issue 41).

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, Redis, RedisCluster, Server};

/// How long the tokens of these tests live: with a login just after a
/// whole second (`exp` is in whole seconds), three full seconds, so a
/// client that starts slowly on a loaded machine still opens its stream a
/// second or two before the end.
const LIFETIME: &str = "3";

/// `exp` of `token`, as a float.
fn exp_of(token: &str) -> f64 {
    support::payload_of(token)["exp"].as_f64().unwrap()
}

/// curl reading `/events` with `token` until the stream ends (at most 20 s):
/// its events (name, data) and when it ended.
async fn events(server: &Server, token: &str) -> (Vec<(String, Value)>, f64) {
    let output = tokio::time::timeout(
        Duration::from_secs(25),
        tokio::process::Command::new("curl")
            .args(["-sN", "--max-time", "20", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("http://{}/events", server.addr))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl finished")
    .expect("curl runs");
    let ended = support::now_f64();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let events = text
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            };
            let data = serde_json::from_str(&field("data:")).unwrap_or(Value::Null);
            (field("event:"), data)
        })
        .collect();
    (events, ended)
}

/// Python's `websockets` on `/ws` with `token`, running `steps` (see
/// `tests/interop/stream_clients.py`): one JSON line per event.
async fn websocket(server: &Server, token: &str, steps: &[String]) -> Vec<Value> {
    support::stream_client("ws", &format!("ws://{}/ws", server.addr), token, steps).await
}

/// npm `ws` on `/ws` with `token` (`tests/oidc/ws_client.mjs`), renewing
/// with `renew` when given; `None` (a visible skip) without node, which CI
/// does not allow.
async fn node_websocket(server: &Server, token: &str, renew: Option<&str>) -> Option<Vec<Value>> {
    let Some(dir) = support::oidc_packages() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs node and tests/oidc's packages"
        );
        support::skipped("no node for npm ws (tests/oidc)");
        return None;
    };
    let mut command = tokio::process::Command::new("node");
    command
        .arg(dir.join("ws_client.mjs"))
        .arg(format!("ws://{}/ws", server.addr))
        .arg(token)
        .args(renew);
    Some(support::json_lines(command).await)
}

fn closing(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|l| l.get("closed").is_some())
        .unwrap_or_else(|| panic!("never closed: {lines:?}"))
}

/// Tokens that expire two to three seconds after the stream opens: `/events` ends
/// with a `credential-ended` event, `/ws` with close 1008, each within a
/// second of `exp` (the example's leeway is 0).
#[tokio::test]
async fn sse_and_websocket_end_within_a_second_of_expiry() {
    if support::python().is_none() {
        return;
    }
    let server = Server::start("axum", &[("ACCESS_TOKEN_LIFETIME_SECS", LIFETIME)]).await;
    let into_second = support::now_f64().fract();
    tokio::time::sleep(Duration::from_secs_f64(1.0 - into_second)).await;
    let (token, _) = server.login().await;
    let exp = exp_of(&token);
    let (sse, ws, node) = tokio::join!(
        events(&server, &token),
        websocket(&server, &token, &[]),
        node_websocket(&server, &token, None),
    );

    let (events, ended) = sse;
    assert!(events.len() >= 2, "ticks before the end: {events:?}");
    assert_eq!(events[0].0, "tick");
    assert_eq!(events[0].1["sub"], "user1");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "credential-ended", "{events:?}");
    assert_eq!(data["reason"], "expired");
    assert_eq!(data["error"], "invalid_token");
    assert!(
        ended >= exp && ended < exp + 1.0,
        "SSE ended {:.2} s after exp",
        ended - exp
    );

    // Python's websockets and npm ws alike.
    for ws in [Some(ws), node].iter().flatten() {
        assert_eq!(ws[0]["opened"], true, "opened before the end: {ws:?}");
        assert_eq!(ws[1]["echo"], "hello", "{ws:?}");
        let closed = closing(ws);
        assert_eq!(closed["closed"], 1008, "{ws:?}");
        assert!(closed["reason"].as_str().unwrap().contains("expired"));
        let at = closed["at"].as_f64().unwrap();
        assert!(
            at >= exp && at < exp + 1.0,
            "WebSocket closed {:.2} s after exp",
            at - exp
        );
    }

    // Counted, by reason; none left open.
    #[cfg(feature = "metrics")]
    {
        let scrape = server.get("/metrics").send().await.text();
        let value = |line: &str| {
            scrape
                .lines()
                .find(|l| l.starts_with(line))
                .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        };
        let ended = value("authx_streams_ended_total{reason=\"expired\"}");
        assert_eq!(ended, Some(3.0), "SSE and two WebSockets: {scrape}");
        assert_eq!(value("authx_streams_open "), Some(0.0), "{scrape}");
    }

    // Refused before the upgrade without a token, or with the expired one.
    let refused = websocket(&server, "not-a-token", &[]).await;
    assert_eq!(refused[0]["refused"], 401, "{refused:?}");
    let refused = websocket(&server, &token, &[]).await;
    assert_eq!(refused[0]["refused"], 401, "{refused:?}");
}

/// In-band renewal: a token of the same session (from `/refresh`) carries
/// the connection past the first token's end; one of another subject
/// closes it at once with 1008.
#[tokio::test]
async fn a_websocket_renewed_in_band_outlives_its_first_token() {
    if support::python().is_none() {
        return;
    }
    let server = Server::start("axum", &[("ACCESS_TOKEN_LIFETIME_SECS", "6")]).await;
    let (token, refresh) = server.login().await;
    let stranger = server.login_as("user2", "password2").await["fresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The session's next access token, made three seconds later: it ends
    // three seconds after the first (`exp` is in whole seconds).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let renewed = server.post("/refresh").bearer(&refresh).send().await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let exp = exp_of(&token);
    assert!(exp_of(&renewed) > exp + 2.0);

    // Renewed, then closed at the renewed token's end, not the first's.
    let lines = websocket(
        &server,
        &token,
        &[
            format!("renew={renewed}"),
            format!("renew={renewed}"),
            "echo".into(),
        ],
    )
    .await;
    let renewals: Vec<&Value> = lines.iter().filter_map(|l| l.get("renewal")).collect();
    assert_eq!(renewals.len(), 2, "{lines:?}");
    assert_eq!(renewals[0]["type"], "authx.renewed", "{lines:?}");
    assert_eq!(renewals[0]["exp"].as_f64().unwrap(), exp_of(&renewed));
    // The second within the second: not checked, the socket goes on.
    assert_eq!(renewals[1]["type"], "authx.renewal_deferred", "{lines:?}");
    let closed = closing(&lines);
    assert_eq!(closed["closed"], 1008);
    let at = closed["at"].as_f64().unwrap();
    assert!(
        at > exp + 0.5,
        "outlived the first token: {:.2} s after its exp",
        at - exp
    );
    assert!(at < exp_of(&renewed) + 1.0, "ended with the renewed token");

    // Another subject's token: closed at once, with the renewal's refusal
    // (Python's websockets, and npm ws).
    let (token, _) = server.login().await;
    let python = websocket(&server, &token, &[format!("renew={stranger}")]).await;
    let node = node_websocket(&server, &token, Some(&stranger)).await;
    for lines in [Some(python), node].iter().flatten() {
        let closed = closing(lines);
        assert_eq!(closed["closed"], 1008, "{lines:?}");
        assert!(
            closed["reason"]
                .as_str()
                .unwrap()
                .contains("renewal was refused")
        );
        assert!(
            closed["at"].as_f64().unwrap() < exp_of(&token) - 0.5,
            "before the token's end"
        );
    }
}

/// A logout on the same instance (the memory store) ends that session's
/// open WebSocket and event stream within a second.
#[tokio::test]
async fn a_logout_ends_open_streams_on_the_same_instance() {
    if support::python().is_none() {
        return;
    }
    let server = Server::start("axum", &[]).await;
    logout_ends_streams(&server, &server).await;
}

/// A logout on instance A ends the stream on instance B within a second:
/// both on one Redis (the store's feed announces it to B).
#[tokio::test]
async fn a_logout_on_one_instance_ends_streams_on_another_through_redis() {
    let Some(redis) = Redis::start() else { return };
    if support::python().is_none() {
        return;
    }
    let url = redis.url();
    let a = Server::start("axum", &[("REDIS_URL", &url)]).await;
    let b = Server::start("axum", &[("REDIS_URL", &url)]).await;
    logout_ends_streams(&a, &b).await;
}

/// The same through a Redis Cluster (three primaries).
#[tokio::test]
async fn a_logout_on_one_instance_ends_streams_on_another_through_redis_cluster() {
    let Some(cluster) = RedisCluster::start(3, 0) else {
        return;
    };
    if support::python().is_none() {
        return;
    }
    let urls = cluster.urls();
    let a = Server::start("axum", &[("REDIS_URL", &urls)]).await;
    let b = Server::start("axum", &[("REDIS_URL", &urls)]).await;
    logout_ends_streams(&a, &b).await;
}

/// Opens `/events` and `/ws` on `b` with one session, and another session's
/// `/events`; logs the first out on `a` after a second: both of its streams
/// end within a second, saying "revoked"; the other session's streams on.
async fn logout_ends_streams(a: &Server, b: &Server) {
    let (token, _) = a.login().await;
    let (other, _) = a.login().await;
    let logout = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let status = a.post("/logout").bearer(&token).send().await.status;
        (status, support::now_f64())
    };
    let (sse, ws, (status, logged_out), still) = tokio::join!(
        events(b, &token),
        websocket(b, &token, &[]),
        logout,
        tokio::time::timeout(Duration::from_secs(4), events(b, &other)),
    );
    assert_eq!(status, 200);
    let (events, ended) = sse;
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "credential-ended", "{events:?}");
    assert_eq!(data["reason"], "revoked");
    assert!(
        ended - logged_out < 1.0,
        "SSE ended {:.2} s after the logout",
        ended - logged_out
    );
    let closed = closing(&ws);
    assert_eq!(closed["closed"], 1008, "{ws:?}");
    assert!(closed["reason"].as_str().unwrap().contains("revoked"));
    let at = closed["at"].as_f64().unwrap();
    assert!(
        at - logged_out < 1.0,
        "WebSocket closed {:.2} s after the logout",
        at - logged_out
    );
    assert!(still.is_err(), "the other session's stream goes on");
}

/// An upgraded WebSocket keeps its connection's place under
/// `MAX_CONNECTIONS` until it closes: three open sockets on a server of
/// three leave a fourth client unserved, served once they close. Released
/// at the upgrade, one user could hold any number.
#[tokio::test]
async fn open_websockets_count_against_the_connection_cap() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let Some(python) = support::python() else {
        return;
    };
    let server = Server::start(
        "axum",
        &[
            ("MAX_CONNECTIONS", "3"),
            ("MAX_CONNECTIONS_PER_CLIENT", "3"),
        ],
    )
    .await;
    let (token, _) = server.login().await;
    let curl = |timeout: &'static str| {
        let url = format!("http://{}/", server.addr);
        async move {
            tokio::process::Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    timeout,
                ])
                .arg(url)
                .output()
                .await
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap()
        }
    };
    // Three sockets, opened in one process that holds them until its stdin
    // closes (the login's connection is gone first: the server is at its cap
    // with the three alone).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut holder = tokio::process::Command::new(python)
        .arg(support::repo_root().join("tests/interop/hold_websockets.py"))
        .args([format!("ws://{}/ws", server.addr), token, "3".into()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let opened = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the sockets opened in time")
        .unwrap();
    assert_eq!(opened.as_deref(), Some("open 3"));
    assert_eq!(curl("1").await, "000", "a fourth connection is not served");
    drop(holder.stdin.take()); // the holder lets go of its sockets
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("alive 3"),
        "all three stayed open meanwhile"
    );
    holder.wait().await.unwrap();
    assert_eq!(curl("5").await, "200", "served once they closed");
}
