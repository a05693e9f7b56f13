//! tonic over real TCP: a real tonic client against `examples/tonic_server.rs`
//! for every outcome, and a whole-server layer with scopes in process.
#![cfg(feature = "tonic")]

#[path = "../../examples/shared/greeter.rs"]
mod greeter;
#[path = "../../tests/support/mod.rs"]
mod support;

use greeter::{GreeterServer, HelloReply, HelloRequest, say_hello};
use support::{SECRET, Server};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tower_authx::{AuthX, AuthXConfig, Claims, RequireScopesLayer};

fn authx() -> AuthX {
    AuthX::new(AuthXConfig::from_secret(SECRET).unwrap()).unwrap()
}

async fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

async fn check(channel: &Channel, token: Option<&str>) -> Result<i32, Status> {
    let request = with_token(
        HealthCheckRequest {
            service: String::new(),
        },
        token,
    );
    Ok(HealthClient::new(channel.clone())
        .check(request)
        .await?
        .into_inner()
        .status)
}

async fn hello(channel: &Channel, token: Option<&str>) -> Result<String, Status> {
    let request = with_token(
        HelloRequest {
            name: "world".into(),
        },
        token,
    );
    Ok(say_hello(channel.clone(), request)
        .await?
        .into_inner()
        .message)
}

#[tokio::test]
async fn every_outcome_against_the_example() {
    let server = Server::start("tonic_server", &[]).await;
    let channel = channel(&server.addr).await;
    let authx = authx();
    let fresh = authx.access_token("user1").fresh(true).issue().unwrap();
    let stale = authx.access_token("user1").issue().unwrap();
    let refresh = authx.refresh_token("user1").issue().unwrap();

    // No token: UNAUTHENTICATED on both services, with AuthX's wording.
    for status in [
        check(&channel, None).await.unwrap_err(),
        hello(&channel, None).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(
            status.message(),
            "Missing 'Bearer' in 'Authorization' header."
        );
    }
    // A bad token, a foreign one, a refresh token.
    let foreign = AuthX::new(AuthXConfig::from_secret([3u8; 32]).unwrap())
        .unwrap()
        .access_token("user1")
        .fresh(true)
        .issue()
        .unwrap();
    for (token, message) in [
        ("garbage", "Invalid token: a JWT has three segments"),
        (foreign.as_str(), "Signature verification failed"),
        (
            refresh.as_str(),
            "'access' token required, 'refresh' token received",
        ),
    ] {
        let status = check(&channel, Some(token)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), message, "{token}");
    }
    // Health takes any access token.
    assert_eq!(
        check(&channel, Some(&stale)).await.unwrap(),
        ServingStatus::Serving as i32
    );
    // SayHello needs a fresh one, and names the caller.
    let status = hello(&channel, Some(&stale)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "Fresh token required");
    assert_eq!(
        hello(&channel, Some(&fresh)).await.unwrap(),
        "Hello world, from user1!"
    );
    // One HTTP/2 connection served all of it.
}

#[tokio::test]
async fn a_whole_server_layer_with_scopes_answers_permission_denied() {
    let authx = authx();
    let greeter = GreeterServer::new(|request: Request<HelloRequest>| {
        let sub = request
            .extensions()
            .get::<Claims>()
            .map(|c| c.sub.clone())
            .unwrap_or_default();
        Ok(HelloReply {
            message: format!("hi {sub}"),
        })
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(RequireScopesLayer::all(authx.clone(), ["greet"]))
            .add_service(greeter)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = channel(&addr).await;

    let unscoped = authx.access_token("u").scopes(["read"]).issue().unwrap();
    let status = hello(&channel, Some(&unscoped)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "Missing required scopes: ['greet']. Provided: ['read']"
    );

    let status = hello(&channel, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let scoped = authx.access_token("u").scopes(["greet"]).issue().unwrap();
    assert_eq!(hello(&channel, Some(&scoped)).await.unwrap(), "hi u");
}

/// A tonic server in this process whose Greeter (answering "hi") is behind
/// `RequireFresh` or `RequireAuth`; its address.
async fn serve_greeter(authx: AuthX, fresh: bool) -> String {
    let greeter = GreeterServer::new(|_request: Request<HelloRequest>| {
        Ok(HelloReply {
            message: "hi".into(),
        })
    });
    let mut server = tonic::transport::Server::builder();
    let router = if fresh {
        server.add_service(tower::Layer::layer(
            &tower_authx::RequireFreshLayer::new(authx),
            greeter,
        ))
    } else {
        server.add_service(tower::Layer::layer(
            &tower_authx::RequireAuthLayer::new(authx),
            greeter,
        ))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

#[tokio::test]
async fn a_custom_json_rejection_leaves_grpc_calls_a_grpc_status() {
    // The hook writes JSON for HTTP clients; gRPC calls must still get
    // UNAUTHENTICATED, with the message, or every gRPC client breaks.
    let config =
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .on_reject(|refusal: tower_authx::Refusal<'_>| {
                let body = serde_json::json!({"error": refusal.detail}).to_string();
                refusal.with_body(http::HeaderValue::from_static("application/json"), body)
            });
    let authx = AuthX::new(config).unwrap();
    let addr = serve_greeter(authx.clone(), true).await;
    let channel = channel(&addr).await;
    let status = hello(&channel, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        status.message(),
        "Missing 'Bearer' in 'Authorization' header."
    );
    let stale = authx.access_token("u").issue().unwrap();
    let status = hello(&channel, Some(&stale)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "Fresh token required");
}

#[tokio::test]
async fn a_grpc_hook_can_reshape_grpc_refusals() {
    let config = AuthXConfig::from_secret(SECRET).unwrap().on_grpc_reject(
        |refusal: tower_authx::Refusal<'_>| {
            let mut res = refusal.response;
            res.headers_mut().insert(
                "grpc-message",
                http::HeaderValue::from_static("log in first"),
            );
            res
        },
    );
    let authx = AuthX::new(config).unwrap();
    let addr = serve_greeter(authx, false).await;
    let status = hello(&channel(&addr).await, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "log in first");
}

#[tokio::test]
async fn a_grpc_call_dressed_as_a_cors_preflight_is_refused_by_the_tonic_example() {
    use tower::ServiceExt;
    let server = Server::start("tonic_server", &[]).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // An empty HealthCheckRequest, framed: no compression, length 0.
    let frame = bytes::Bytes::from_static(&[0, 0, 0, 0, 0]);
    let request = http::Request::builder()
        .method("OPTIONS")
        .uri(format!(
            "http://{}/grpc.health.v1.Health/Check",
            server.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .body(tonic::body::Body::new(http_body_util::Full::new(frame)))
        .unwrap();
    let res = channel.oneshot(request).await.unwrap();
    // Not a POST, so no gRPC call: refused as HTTP, and Health never ran.
    assert_eq!(
        res.status(),
        http::StatusCode::UNAUTHORIZED,
        "{:?}",
        res.headers()
    );
    assert!(res.headers().get("grpc-status").is_none());
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_another_instance_is_refused_by_the_tonic_example() {
    let Some(redis) = support::Redis::start() else {
        return;
    };
    let url = redis.url();
    let tonic = Server::start(
        "tonic_server",
        &[
            ("REDIS_URL", url.as_str()),
            ("JWT_VERIFIED_CACHE", "1000"),
            ("REDIS_LOCAL_VIEW", "0"),
        ],
    )
    .await;
    // Another instance of the service: same secret, same Redis.
    let elsewhere = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .revocation_store(tower_authx::RedisStore::connect(&url).await.unwrap()),
    )
    .unwrap();
    let pair = elsewhere.token_pair("user1").issue().unwrap();
    let channel = channel(&tonic.addr).await;
    // Seen (and cached) before the logout.
    assert!(check(&channel, Some(&pair.access_token)).await.is_ok());
    let claims: Claims = elsewhere
        .verify_offline(&pair.access_token, &tower_authx::Requirement::access())
        .unwrap();
    elsewhere.revoke(&claims).await.unwrap();
    let refused = check(&channel, Some(&pair.access_token)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

/// DPoP over gRPC: the proof travels in the `dpop` metadata, `htm` is POST
/// and `htu` the method's path; refusals stay gRPC statuses.
#[tokio::test]
async fn dpop_bound_tokens_over_grpc() {
    use support::dpop::ProofKey;
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .dpop(tower_authx::Dpop::new("http://grpc.example")),
    )
    .unwrap();
    let key = ProofKey::es256();
    let login = key.proof("POST", "http://grpc.example/login", None);
    let login = http::Request::post("/login")
        .header("dpop", login)
        .body(())
        .unwrap();
    let bound = authx
        .dpop_key(tower_authx::RequestHead::of(&login))
        .await
        .unwrap()
        .unwrap();
    let token = authx.access_token("u").bound_to(&bound).issue().unwrap();
    let addr = serve_greeter(authx, false).await;
    let channel = channel(&addr).await;
    let url = "http://grpc.example/helloworld.Greeter/SayHello";
    let call = |scheme: &str, proof: Option<String>| {
        let mut request = Request::new(HelloRequest {
            name: "world".into(),
        });
        let metadata = request.metadata_mut();
        metadata.insert(
            "authorization",
            format!("{scheme} {token}").parse().unwrap(),
        );
        if let Some(proof) = proof {
            metadata.insert("dpop", proof.parse().unwrap());
        }
        say_hello(channel.clone(), request)
    };
    let proof = key.proof("POST", url, Some(&token));
    let reply = call("DPoP", Some(proof.clone())).await.unwrap();
    assert_eq!(reply.into_inner().message, "hi");
    for (why, scheme, proof) in [
        ("replayed", "DPoP", Some(proof)),
        ("as Bearer", "Bearer", None),
        ("no proof", "DPoP", None),
        (
            "another key",
            "DPoP",
            Some(ProofKey::ed25519().proof("POST", url, Some(&token))),
        ),
    ] {
        let status = call(scheme, proof).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{why}: {status:?}");
    }
}

/// Silent connections from many addresses past the tonic example's cap (20
/// addresses at their share, 80 for 64 places) do not lock a new client out (the ones that never spoke go first), and a
/// client already talking keeps its HTTP/2 connection.
#[tokio::test]
async fn silent_connections_make_room_for_a_new_grpc_client() {
    let server = Server::start(
        "tonic_server",
        &[
            ("MAX_CONNECTIONS", "64"),
            ("MAX_CONNECTIONS_PER_CLIENT", "4"),
        ],
    )
    .await;
    let port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    let fresh = authx().access_token("user1").fresh(true).issue().unwrap();
    let talking = channel(&server.addr).await;
    assert!(hello(&talking, Some(&fresh)).await.is_ok());
    let mut silent = Vec::new();
    for address in 1..=20 {
        for _ in 0..4 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(format!("127.0.0.{address}:0").parse().unwrap())
                .unwrap();
            silent.push(
                socket
                    .connect(format!("127.0.0.1:{port}").parse().unwrap())
                    .await
                    .unwrap(),
            );
        }
    }
    // A new client (its own address: 127.0.0.1 is not among the silent).
    let newcomer = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let channel = channel(&server.addr).await;
        hello(&channel, Some(&fresh)).await
    })
    .await
    .expect("a new client was locked out by silent connections");
    assert_eq!(newcomer.unwrap(), "Hello world, from user1!");
    assert_eq!(
        hello(&talking, Some(&fresh)).await.unwrap(),
        "Hello world, from user1!"
    );
    drop(silent);
}

/// Issue 40: `TokenExchangeLayer` in front of a tonic channel. A gateway
/// calls a guarded gRPC service on its caller's behalf with a token
/// exchanged at @jmondi/oauth2-server (tests/oidc/jmondi_exchange.mjs); the
/// service takes only tokens in which the gateway acts, and refuses the
/// caller's own.
#[cfg(feature = "remote-keys")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_channel_calls_on_the_callers_behalf_with_an_exchanged_token() {
    use tower_authx::exchange::{Caller, ExchangeConfig, TokenExchange};
    use tower_authx::{ClientAuth, Requirement};

    const ISSUER: &str = "https://authx.example";
    const ORDERS: &str = "https://orders.example";
    let Some((_node, server)) = support::jmondi_exchange(SECRET, ISSUER).await else {
        return;
    };

    let users = AuthX::new(AuthXConfig::from_secret(SECRET).unwrap().issuer(ISSUER)).unwrap();
    let orders = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .issuer(ISSUER)
            .audience(ORDERS),
    )
    .unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let guard = orders
        .guard(Requirement::access().actor("gateway"))
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(tower::Layer::layer(&guard, health))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = channel(&addr).await;

    let exchange = TokenExchange::new(
        ExchangeConfig::at(
            &format!("{server}/token"),
            ClientAuth::secret_basic("gateway", "gateway-secret"),
        )
        .unwrap()
        .audience(ORDERS)
        .act_as_client(None),
    )
    .unwrap();
    let mut client = HealthClient::new(
        tower::ServiceBuilder::new()
            .layer(exchange.layer())
            .service(channel.clone()),
    );
    let token = users.access_token("alice").issue().unwrap();
    let claims: Claims = users
        .verify_offline(&token, &Requirement::access())
        .unwrap();
    let mut request = Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request
        .extensions_mut()
        .insert(Caller::new(&token, &claims));
    let status = client.check(request).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);
    // The caller's own token, sent as it is: refused.
    let status = check(&channel, Some(&token)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // No caller on the request: nothing is sent.
    let request = Request::new(HealthCheckRequest {
        service: String::new(),
    });
    let status = client.check(request).await.unwrap_err();
    assert!(status.message().contains("no caller"), "{status:?}");
}

/// `grpc.health.v1.Health/Watch` from Python's `grpcio` with a token that
/// ends a few seconds after the call: SERVING, then UNAUTHENTICATED (with
/// why) within a second of `exp`; a logout on another instance (Redis)
/// ends another Watch within a second of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_watch_ends_unauthenticated_with_its_token() {
    let Some(redis) = support::Redis::start() else {
        return;
    };
    if support::python().is_none() {
        return;
    }
    let url = redis.url();
    let tonic = Server::start("tonic_server", &[("REDIS_URL", url.as_str())]).await;
    let elsewhere = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .revocation_store(tower_authx::RedisStore::connect(&url).await.unwrap()),
    )
    .unwrap();
    let short = elsewhere
        .access_token("user1")
        // Long enough for grpcio to start on a loaded machine.
        .lifetime(std::time::Duration::from_secs(4))
        .issue()
        .unwrap();
    let exp = support::payload_of(&short)["exp"].as_f64().unwrap();
    let pair = elsewhere.token_pair("user1").issue().unwrap();
    let logout = async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let claims: Claims = elsewhere
            .verify_offline(&pair.access_token, &tower_authx::Requirement::access())
            .unwrap();
        let at = support::now_f64();
        elsewhere.revoke(&claims).await.unwrap();
        at
    };
    let (expiring, revoked, logged_out) = tokio::join!(
        support::stream_client("grpc", &tonic.addr, &short, &[]),
        support::stream_client("grpc", &tonic.addr, &pair.access_token, &[]),
        logout,
    );
    for (lines, from, why) in [
        (&expiring, exp, "expired"),
        (&revoked, logged_out, "revoked"),
    ] {
        assert_eq!(lines[0]["status"], 1, "SERVING first: {lines:?}");
        let end = lines.last().unwrap();
        assert_eq!(end["ended"], "UNAUTHENTICATED", "{lines:?}");
        assert!(end["details"].as_str().unwrap().contains(why), "{end}");
        let at = end["at"].as_f64().unwrap();
        assert!(
            at >= from && at < from + 1.0,
            "{why}: ended {:.2} s after",
            at - from
        );
    }
}
