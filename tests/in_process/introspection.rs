//! Opaque tokens by introspection (RFC 7662), over TCP against an
//! authorization server in this process that answers as scripted and counts
//! its calls: every refusal path (inactive, down, slow, not 200, oversized,
//! malformed, another issuer, not an access token), the cache, single flight
//! and the bound on calls, the three client authentications, and the stages
//! after (audience, binding, scopes). The real provider (oidc-provider) is in
//! dev/tests/e2e_oidc.rs.
#![cfg(feature = "remote-keys")]

use crate::support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use support::{now, private_key};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{
    Algorithm, AuthError, AuthX, AuthXConfig, Claims, ClientAuth, IntrospectedTokens,
    Introspection, InvalidToken, Issuer, NoExtra, RemoteJwks, RequireAuthLayer, RequireScopesLayer,
    Requirement,
};

const ISS: &str = "https://as.example";

/// What the server answers: status, content type, body.
type Answer = (u16, &'static str, String);

/// How the server answers one introspection request (its form and headers).
type Script = Arc<dyn Fn(&Form) -> Answer + Send + Sync>;

/// An introspection request as the server saw it.
#[derive(Clone, Debug, Default)]
struct Form {
    fields: Vec<(String, String)>,
    authorization: Option<String>,
    accept: Option<String>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The authorization server: `/jwks` (the issuer's keys) and `/introspect`.
struct AuthorizationServer {
    base: String,
    calls: Arc<AtomicUsize>,
    script: Arc<Mutex<Script>>,
    delay: Arc<Mutex<Duration>>,
    seen: Arc<Mutex<Vec<Form>>>,
}

impl AuthorizationServer {
    async fn start(jwks: String, script: Script) -> AuthorizationServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = AuthorizationServer {
            base,
            calls: Arc::new(AtomicUsize::new(0)),
            script: Arc::new(Mutex::new(script)),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let (calls, script, delay, seen) = (
            server.calls.clone(),
            server.script.clone(),
            server.delay.clone(),
            server.seen.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (calls, script, delay, seen, jwks) = (
                    calls.clone(),
                    script.clone(),
                    delay.clone(),
                    seen.clone(),
                    jwks.clone(),
                );
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (calls, script, delay, seen, jwks) = (
                                calls.clone(),
                                script.clone(),
                                delay.clone(),
                                seen.clone(),
                                jwks.clone(),
                            );
                            async move {
                                if req.uri().path() == "/jwks" {
                                    return Ok::<_, Infallible>(Response::new(Full::new(
                                        Bytes::from(jwks),
                                    )));
                                }
                                calls.fetch_add(1, Ordering::SeqCst);
                                let header = |name: &str| {
                                    req.headers()
                                        .get(name)
                                        .map(|v| v.to_str().unwrap().to_owned())
                                };
                                let (authorization, accept) =
                                    (header("authorization"), header("accept"));
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let body = String::from_utf8(body.to_vec()).unwrap();
                                let fields = body
                                    .split('&')
                                    .filter(|f| !f.is_empty())
                                    .map(|f| {
                                        let (n, v) = f.split_once('=').unwrap();
                                        (decode(n), decode(v))
                                    })
                                    .collect();
                                let form = Form {
                                    fields,
                                    authorization,
                                    accept,
                                };
                                seen.lock().unwrap().push(form.clone());
                                let wait = *delay.lock().unwrap();
                                tokio::time::sleep(wait).await;
                                let script = script.lock().unwrap().clone();
                                let (status, content_type, body) = script(&form);
                                let mut res = Response::new(Full::new(Bytes::from(body)));
                                *res.status_mut() = StatusCode::from_u16(status).unwrap();
                                res.headers_mut()
                                    .insert("content-type", content_type.parse().unwrap());
                                Ok(res)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    fn answer(&self, script: impl Fn(&Form) -> Answer + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn endpoint(&self) -> String {
        format!("{}/introspect", self.base)
    }

    fn issuer(&self, introspection: Introspection) -> Issuer {
        Issuer::new(
            ISS,
            RemoteJwks::new(&format!("{}/jwks", self.base)).unwrap(),
        )
        .audience("https://api.example")
        .introspection(introspection)
    }

    fn introspection(&self) -> Introspection {
        Introspection::at(
            &self.endpoint(),
            ClientAuth::secret_basic("rs", "rs-secret"),
        )
        .unwrap()
    }

    fn authx(&self, introspection: Introspection) -> AuthX {
        AuthX::new(AuthXConfig::from_issuers([self.issuer(introspection)])).unwrap()
    }
}

/// An active answer: `sub` alice, scope `read`, for the API, an hour left.
fn active() -> Value {
    json!({
        "active": true,
        "sub": "alice",
        "client_id": "app",
        "scope": "read",
        "aud": "https://api.example",
        "iss": ISS,
        "exp": now() + 3600,
        "iat": now(),
        "token_type": "Bearer",
    })
}

fn json_answer(value: Value) -> Answer {
    (200, "application/json", value.to_string())
}

/// A server that knows one token, `opaque-alice`, as [`active`].
async fn server() -> AuthorizationServer {
    let signer = AuthX::new(
        AuthXConfig::new(private_key(Algorithm::ES256, "ec256_private.pem")).issuer(ISS),
    )
    .unwrap();
    AuthorizationServer::start(
        signer.jwks().to_owned(),
        Arc::new(|form: &Form| match form.get("token") {
            Some("opaque-alice") => json_answer(active()),
            _ => json_answer(json!({"active": false})),
        }),
    )
    .await
}

fn bearer(token: &str) -> Request<Full<Bytes>> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

type Echo = tower::util::ServiceFn<
    fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
>;

/// A service that answers the verified subject.
fn echo() -> Echo {
    fn answer(
        req: Request<Full<Bytes>>,
    ) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
        let sub = req
            .extensions()
            .get::<Claims>()
            .map(|c| c.sub.clone())
            .unwrap_or_default();
        std::future::ready(Ok(Response::new(Full::new(Bytes::from(sub)))))
    }
    service_fn(answer as fn(_) -> _)
}

/// The status, `detail` (or body) and headers of a request bearing `token`
/// through `service`.
async fn status<S>(service: S, token: &str) -> (StatusCode, String, http::HeaderMap)
where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<tower_authx::layer::EitherBody<Full<Bytes>>>,
            Error = Infallible,
        >,
{
    let res = service.oneshot(bearer(token)).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    let detail = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or(text);
    (status, detail, headers)
}

async fn guarded(authx: &AuthX, token: &str) -> (StatusCode, String, http::HeaderMap) {
    status(RequireAuthLayer::new(authx.clone()).layer(echo()), token).await
}

#[tokio::test]
async fn an_active_opaque_token_becomes_its_claims_and_the_request_is_the_rfcs() {
    let server = server().await;
    let authx = server.authx(server.introspection());
    let (code, subject, _) = guarded(&authx, "opaque-alice").await;
    assert_eq!((code, subject.as_str()), (StatusCode::OK, "alice"));
    let form = server.seen.lock().unwrap()[0].clone();
    assert_eq!(form.get("token"), Some("opaque-alice"));
    assert_eq!(form.get("token_type_hint"), Some("access_token"));
    let basic = base64::engine::general_purpose::STANDARD.encode("rs:rs-secret");
    assert_eq!(form.authorization, Some(format!("Basic {basic}")));
    assert_eq!(form.get("client_secret"), None, "the secret goes once");

    // The claims are a JWT's: scopes guard as they would.
    let read = RequireScopesLayer::all(authx.clone(), ["read"]).layer(echo());
    assert_eq!(status(read, "opaque-alice").await.0, StatusCode::OK);
    let write = RequireScopesLayer::all(authx.clone(), ["write"]).layer(echo());
    assert_eq!(status(write, "opaque-alice").await.0, StatusCode::FORBIDDEN);
    // And AuthX::verify asks as the layer does.
    let claims: Claims = authx
        .verify("opaque-alice", &Requirement::access())
        .await
        .unwrap();
    assert_eq!(claims.iss.as_deref(), Some(ISS));
}

#[tokio::test]
async fn an_inactive_token_is_refused_as_invalid() {
    let server = server().await;
    let authx = server.authx(server.introspection());
    let (code, detail, headers) = guarded(&authx, "opaque-nobody").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(detail.contains("not active"), "{detail}");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(
        authx
            .verify::<tower_authx::NoExtra>("opaque-nobody", &Requirement::access())
            .await,
        Err(AuthError::InvalidToken(InvalidToken::Inactive))
    );
}

#[tokio::test]
async fn whatever_goes_wrong_at_the_server_is_503_never_401_nor_200() {
    let server = server().await;
    let authx = server.authx(server.introspection().timeout(Duration::from_millis(300)));
    let broken: Vec<(&str, Answer)> = vec![
        ("a 500", (500, "application/json", active().to_string())),
        (
            "a 401 (our credentials refused)",
            (401, "application/json", "{}".into()),
        ),
        ("not JSON", (200, "application/json", "<html>".into())),
        (
            "another content type",
            (200, "text/html", active().to_string()),
        ),
        (
            "oversized",
            (200, "application/json", {
                let mut big = active();
                big["padding"] = "x".repeat(100_000).into();
                big.to_string()
            }),
        ),
        (
            "active as a string",
            json_answer(json!({"active": "true", "sub": "alice"})),
        ),
        (
            "a member twice",
            (
                200,
                "application/json",
                r#"{"active":false,"active":true,"sub":"alice","token_type":"Bearer"}"#.into(),
            ),
        ),
    ];
    for (what, answer) in broken {
        server.answer(move |_| answer.clone());
        let (code, _, headers) = guarded(&authx, "opaque-alice").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert!(headers.contains_key("retry-after"), "{what}");
    }
    // Slow past the timeout.
    server.answer(|_| json_answer(active()));
    *server.delay.lock().unwrap() = Duration::from_secs(2);
    assert_eq!(
        guarded(&authx, "opaque-alice").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    *server.delay.lock().unwrap() = Duration::ZERO;
    assert_eq!(
        guarded(&authx, "opaque-alice").await.0,
        StatusCode::OK,
        "and back"
    );

    // Nobody listening.
    let port = support::free_port();
    let down = AuthX::new(AuthXConfig::from_issuers([Issuer::new(
        ISS,
        RemoteJwks::new(&format!("{}/jwks", server.base)).unwrap(),
    )
    .audience("https://api.example")
    .introspection(
        Introspection::at(
            &format!("http://127.0.0.1:{port}/introspect"),
            ClientAuth::secret_basic("rs", "rs-secret"),
        )
        .unwrap(),
    )]))
    .unwrap();
    assert_eq!(
        guarded(&down, "opaque-alice").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn an_answer_about_another_issuer_audience_or_kind_of_token_is_refused() {
    let server = server().await;
    let authx = server.authx(server.introspection());
    let refused: Vec<(&str, Value)> = vec![
        ("another issuer", json!({"iss": "https://evil.example"})),
        ("another audience", json!({"aud": "https://other.example"})),
        ("a refresh token", json!({"token_type": "refresh_token"})),
        ("no token_type", json!({"token_type": null})),
        ("expired by its exp", json!({"exp": now() - 120})),
        ("a subject of the wrong type", json!({"sub": 7})),
    ];
    for (what, change) in refused {
        let mut answer = active();
        for (name, value) in change.as_object().unwrap() {
            if value.is_null() {
                answer.as_object_mut().unwrap().remove(name);
            } else {
                answer[name] = value.clone();
            }
        }
        server.answer(move |_| json_answer(answer.clone()));
        let (code, detail, _) = guarded(&authx, "opaque-alice").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{what}: {detail}");
    }
    // Without iss the issuer asked vouches; without sub the client speaks.
    let mut answer = active();
    answer.as_object_mut().unwrap().remove("iss");
    answer.as_object_mut().unwrap().remove("sub");
    server.answer(move |_| json_answer(answer.clone()));
    assert_eq!(guarded(&authx, "opaque-alice").await.1, "app");
    // A server that never types its answers, when said so.
    let untyped = server.authx(
        server
            .introspection()
            .danger_untyped_answers_are_access_tokens(),
    );
    let mut answer = active();
    answer.as_object_mut().unwrap().remove("token_type");
    server.answer(move |_| json_answer(answer.clone()));
    assert_eq!(guarded(&untyped, "opaque-alice").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_cached_answer_serves_until_its_time_is_up_and_no_longer() {
    let server = server().await;
    let cached = server.authx(server.introspection().cache(Duration::from_secs(2)));
    let uncached = server.authx(server.introspection());
    assert_eq!(guarded(&cached, "opaque-alice").await.0, StatusCode::OK);
    assert_eq!(guarded(&cached, "opaque-alice").await.0, StatusCode::OK);
    assert_eq!(
        server.calls(),
        1,
        "the second request is served from the cache"
    );
    // Synchronous verification sees the cache too.
    assert!(
        cached
            .verify_offline::<tower_authx::NoExtra>("opaque-alice", &Requirement::access())
            .is_ok()
    );
    assert_eq!(
        uncached
            .verify_offline::<tower_authx::NoExtra>("opaque-alice", &Requirement::access())
            .unwrap_err()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "verify_offline cannot call"
    );

    // Revoked at the server: refused at once without a cache ...
    server.answer(|_| json_answer(json!({"active": false})));
    assert_eq!(
        guarded(&uncached, "opaque-alice").await.0,
        StatusCode::UNAUTHORIZED
    );
    // ... and once the entry ends with one.
    assert_eq!(guarded(&cached, "opaque-alice").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        guarded(&cached, "opaque-alice").await.0,
        StatusCode::UNAUTHORIZED
    );
    // An inactive answer is never cached: the token is asked about each time.
    let before = server.calls();
    assert_eq!(
        guarded(&cached, "opaque-alice").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.calls(), before + 1);
}

#[tokio::test]
async fn an_entry_never_outlives_its_token() {
    let server = server().await;
    let authx = server.authx(server.introspection().cache(Duration::from_secs(3600)));
    let mut answer = active();
    answer["exp"] = json!(now() + 2);
    server.answer(move |_| json_answer(answer.clone()));
    assert_eq!(guarded(&authx, "opaque-alice").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let before = server.calls();
    assert_eq!(
        guarded(&authx, "opaque-alice").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.calls(),
        before + 1,
        "asked again, not served from the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_with_one_new_token_make_one_call() {
    let server = server().await;
    *server.delay.lock().unwrap() = Duration::from_millis(300);
    let authx = server.authx(server.introspection());
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let authx = authx.clone();
        tasks.push(tokio::spawn(async move {
            guarded(&authx, "opaque-alice").await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(server.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_tokens_stay_within_the_bound_on_calls() {
    let server = server().await;
    *server.delay.lock().unwrap() = Duration::from_millis(20);
    let per_second = 50;
    let authx = server.authx(
        server
            .introspection()
            .max_calls_per_second(per_second)
            .max_in_flight(8),
    );
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for batch in 0..50 {
        let authx = authx.clone();
        tasks.push(tokio::spawn(async move {
            let mut counts = (0, 0);
            for i in 0..200 {
                match guarded(&authx, &format!("random-{batch}-{i}")).await.0 {
                    StatusCode::UNAUTHORIZED => counts.0 += 1,
                    StatusCode::SERVICE_UNAVAILABLE => counts.1 += 1,
                    other => panic!("{other}"),
                }
            }
            counts
        }));
    }
    let (mut refused, mut shed) = (0, 0);
    for task in tasks {
        let (r, s) = task.await.unwrap();
        refused += r;
        shed += s;
    }
    let seconds = started.elapsed().as_secs() + 1;
    let calls = server.calls();
    println!("{calls} calls in {seconds} s; {refused} refused as inactive, {shed} answered 503");
    assert_eq!(refused + shed, 10_000);
    assert_eq!(
        refused, calls,
        "every call's token was refused; the rest shed"
    );
    assert!(
        calls as u64 <= u64::from(per_second) * seconds,
        "{calls} calls in {seconds} s"
    );
    assert!(shed > 0);
}

#[tokio::test]
async fn jwts_of_the_issuer_are_verified_locally_unless_all_tokens_are_introspected() {
    let server = server().await;
    let signer = AuthX::new(
        AuthXConfig::new(private_key(Algorithm::ES256, "ec256_private.pem"))
            .issuer(ISS)
            .audience("https://api.example"),
    )
    .unwrap();
    let jwt = signer.access_token("bob").issue().unwrap();
    let local = server.authx(server.introspection());
    let (code, subject, _) = guarded(&local, &jwt).await;
    assert_eq!((code, subject.as_str()), (StatusCode::OK, "bob"));
    assert_eq!(
        server.calls(),
        0,
        "a JWS is verified with the issuer's keys"
    );
    // A JWS naming an issuer nobody trusts is refused without a call.
    let stranger = AuthX::new(
        AuthXConfig::new(private_key(Algorithm::ES256, "ec256_private.pem"))
            .issuer("https://evil.example"),
    )
    .unwrap()
    .access_token("mallory")
    .issue()
    .unwrap();
    assert_eq!(guarded(&local, &stranger).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.calls(), 0);

    let all = server.authx(server.introspection().tokens(IntrospectedTokens::All));
    server.answer(|form| match form.get("token") {
        Some(_) => json_answer(json!({"active": false})),
        None => unreachable!(),
    });
    assert_eq!(
        guarded(&all, &jwt).await.0,
        StatusCode::UNAUTHORIZED,
        "revoked at the issuer"
    );
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn bound_answers_bind_as_jwts_do() {
    let server = server().await;
    let authx = server.authx(server.introspection());
    for cnf in [
        json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
    ] {
        let mut answer = active();
        answer["cnf"] = cnf.clone();
        server.answer(move |_| json_answer(answer.clone()));
        let (code, detail, _) = guarded(&authx, "opaque-alice").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{cnf}: {detail}");
    }
}

#[tokio::test]
async fn client_secret_post_and_private_key_jwt_authenticate_the_client() {
    let server = server().await;
    let post = server.authx(
        Introspection::at(&server.endpoint(), ClientAuth::secret_post("rs", "p+s&=")).unwrap(),
    );
    assert_eq!(guarded(&post, "opaque-alice").await.0, StatusCode::OK);
    let form = server.seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (form.get("client_id"), form.get("client_secret")),
        (Some("rs"), Some("p+s&="))
    );
    assert_eq!(form.authorization, None);

    let key = private_key(Algorithm::ES256, "ec256_private.pem");
    let jwt = server.authx(
        Introspection::at(
            &server.endpoint(),
            ClientAuth::private_key_jwt("rs", key).unwrap(),
        )
        .unwrap(),
    );
    assert_eq!(guarded(&jwt, "opaque-alice").await.0, StatusCode::OK);
    let form = server.seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        form.get("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    // The assertion verifies with the client's public key, and says what
    // RFC 7523 asks.
    let verifier = AuthX::new(
        AuthXConfig::new(private_key(Algorithm::ES256, "ec256_private.pem"))
            .issuer("rs")
            .audience(server.endpoint()),
    )
    .unwrap();
    let assertion = form.get("client_assertion").unwrap();
    let claims: Claims<Value> = verifier
        .verify_offline(assertion, &Requirement::any_type())
        .unwrap();
    assert_eq!(claims.sub, "rs");
    assert!(claims.jti.is_some());
    assert!(claims.exp.as_secs_f64() - now() as f64 <= 61.0);
}

#[test]
fn a_misconfigured_introspection_is_refused_at_construction() {
    let client = || ClientAuth::secret_basic("rs", "s");
    assert!(
        Introspection::at("http://as.example/introspect", client()).is_err(),
        "plain http beyond loopback"
    );
    assert!(Introspection::at("ftp://127.0.0.1/x", client()).is_err());
    // Discovered, but the issuer was not: nothing to call.
    let issuer = Issuer::new(ISS, RemoteJwks::new("https://as.example/jwks").unwrap())
        .introspection(Introspection::discovered(client()));
    let error = AuthX::new(AuthXConfig::from_issuers([issuer])).unwrap_err();
    assert!(
        error.to_string().contains("introspection_endpoint"),
        "{error}"
    );
}

#[tokio::test]
async fn what_can_be_refused_locally_never_reaches_the_server() {
    let server = server().await;
    let authx = server.authx(server.introspection());
    // Longer than any source takes: refused, also through AuthX::verify.
    let long = "a".repeat(tower_authx::DEFAULT_MAX_TOKEN_LEN + 1);
    assert_eq!(
        authx
            .verify::<tower_authx::NoExtra>(&long, &Requirement::access())
            .await,
        Err(AuthError::InvalidToken(InvalidToken::TooLong))
    );
    // Where DPoP is required, a bearer request is refused before the call.
    let config = AuthXConfig::from_issuers([server.issuer(server.introspection())])
        .dpop(tower_authx::Dpop::new("https://api.example").required(true));
    let dpop_only = AuthX::new(config).unwrap();
    let (code, detail, _) = guarded(&dpop_only, "opaque-alice").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{detail}");
    assert_eq!(server.calls(), 0);
}

/// A signed answer (RFC 9701) made with `key`: `header` and `claims` as
/// given, `token_introspection` the answer.
fn signed(key: &support::dpop::ProofKey, header: Value, claims: Value) -> Answer {
    (
        200,
        "application/token-introspection+jwt",
        key.sign(&header, &claims),
    )
}

fn signed_claims(answer: Value) -> Value {
    json!({"iss": ISS, "aud": "rs", "iat": now(), "token_introspection": answer})
}

#[tokio::test]
async fn signed_answers_are_taken_only_signed_by_the_issuer_for_us() {
    let server = server().await;
    let authx = server.authx(server.introspection().signed_answers());
    let issuer_key = support::dpop::ProofKey::es256(); // the key the issuer's JWKS serves
    let typ = json!({"alg": "ES256", "typ": "token-introspection+jwt"});

    server.answer({
        let (key, typ) = (support::dpop::ProofKey::es256(), typ.clone());
        move |_| signed(&key, typ.clone(), signed_claims(active()))
    });
    let (code, subject, _) = guarded(&authx, "opaque-alice").await;
    assert_eq!((code, subject.as_str()), (StatusCode::OK, "alice"));
    let accept = server.seen.lock().unwrap()[0].accept.clone();
    assert_eq!(
        accept.as_deref(),
        Some("application/token-introspection+jwt")
    );

    // Addressed to the resource the issuer's tokens are for (as
    // oidc-provider writes it): ours too.
    server.answer({
        let (key, typ) = (support::dpop::ProofKey::es256(), typ.clone());
        move |_| {
            let claims = json!({"iss": ISS, "aud": ["https://api.example"], "iat": now(), "token_introspection": active()});
            signed(&key, typ.clone(), claims)
        }
    });
    assert_eq!(guarded(&authx, "opaque-alice").await.0, StatusCode::OK);

    // Inactive, signed: refused as any inactive token.
    server.answer({
        let (key, typ) = (support::dpop::ProofKey::es256(), typ.clone());
        move |_| signed(&key, typ.clone(), signed_claims(json!({"active": false})))
    });
    assert_eq!(
        guarded(&authx, "opaque-alice").await.0,
        StatusCode::UNAUTHORIZED
    );

    // Anything else is not an answer: 503.
    let mut wrong: Vec<(&str, Answer)> = vec![
        ("a plain JSON answer", json_answer(active())),
        (
            "signed by another key",
            signed(
                &support::dpop::ProofKey::rs256(),
                json!({"alg": "RS256", "typ": "token-introspection+jwt"}),
                signed_claims(active()),
            ),
        ),
        (
            "typed as a token",
            signed(
                &issuer_key,
                json!({"alg": "ES256", "typ": "JWT"}),
                signed_claims(active()),
            ),
        ),
        (
            "for another client",
            signed(
                &issuer_key,
                typ.clone(),
                json!({"iss": ISS, "aud": "someone-else", "iat": now(), "token_introspection": active()}),
            ),
        ),
        (
            "from another issuer",
            signed(
                &issuer_key,
                typ.clone(),
                json!({"iss": "https://evil.example", "aud": "rs", "iat": now(), "token_introspection": active()}),
            ),
        ),
        (
            "without iat",
            signed(
                &issuer_key,
                typ.clone(),
                json!({"iss": ISS, "aud": "rs", "token_introspection": active()}),
            ),
        ),
    ];
    let (_, _, jws) = signed(&issuer_key, typ.clone(), signed_claims(active()));
    let mut tampered = jws.clone();
    tampered.insert(jws.find('.').unwrap() + 3, 'A');
    wrong.push((
        "tampered",
        (200, "application/token-introspection+jwt", tampered),
    ));
    for (what, answer) in wrong {
        server.answer(move |_| answer.clone());
        let (code, detail, _) = guarded(&authx, "opaque-alice").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{what}: {detail}");
    }
}

/// Issue 38, finding 5: AuthX's wildcards belong to AuthX's own `scopes`.
/// Another issuer's `orders:*` is an opaque scope name (a user's consent may
/// grant it under any name): it covers `orders:write` only for an issuer
/// whose operator opted in by name.
#[tokio::test]
async fn another_issuers_wildcard_scope_is_an_opaque_name_unless_it_opts_in() {
    let server = server().await;
    server.answer(|_| {
        let mut answer = active();
        answer["scope"] = json!("orders:* read");
        json_answer(answer)
    });
    let write = Requirement::access().all_scopes(["orders:write"]);
    let authx = server.authx(server.introspection());
    let refused = authx.verify::<NoExtra>("opaque-alice", &write).await;
    assert_eq!(refused.unwrap_err().kind(), "insufficient_scope");
    let read = Requirement::access().all_scopes(["read"]);
    assert!(authx.verify::<NoExtra>("opaque-alice", &read).await.is_ok());

    let opted_in = AuthX::new(AuthXConfig::from_issuers([server
        .issuer(server.introspection())
        .scope_wildcards()]))
    .unwrap();
    assert!(
        opted_in
            .verify::<NoExtra>("opaque-alice", &write)
            .await
            .is_ok()
    );
}

/// Issue 38, finding 3: an answer without `sub` speaks for its client (RFC
/// 9068 2.2), and says so: a client registered as `alice` is not the user
/// alice.
#[tokio::test]
async fn an_answer_without_sub_is_a_clients_token_not_a_users() {
    let server = server().await;
    server.answer(|_| {
        let mut answer = active();
        answer.as_object_mut().unwrap().remove("sub");
        answer["client_id"] = json!("alice");
        json_answer(answer)
    });
    let authx = server.authx(server.introspection());
    let claims: Claims = authx
        .verify("opaque-alice", &Requirement::access())
        .await
        .unwrap();
    assert_eq!(claims.sub, "alice");
    assert!(claims.is_client());
    assert_eq!(
        authx.sessions(&claims).await.unwrap_err().status(),
        StatusCode::FORBIDDEN
    );
    // With a user behind it, it is the user's.
    let user = AuthX::new(AuthXConfig::from_issuers([
        server.issuer(server.introspection())
    ]))
    .unwrap();
    server.answer(|_| json_answer(active()));
    let claims: Claims = user
        .verify("opaque-alice", &Requirement::access())
        .await
        .unwrap();
    assert!(!claims.is_client());
}

/// Issue 38, finding 2: an opaque token goes to exactly one introspection
/// endpoint, chosen by configuration. Two issuers that introspect opaque
/// tokens without a rule are a configuration error; with prefixes, issuer
/// B's authorization server never sees A's tokens, and a token neither
/// takes is refused without a call.
#[tokio::test]
async fn an_opaque_token_goes_to_exactly_one_introspection_endpoint() {
    const ISS_B: &str = "https://b.example";
    let a = server().await;
    let b = server().await;
    b.answer(|form: &Form| match form.get("token") {
        Some("b_bob") => {
            let mut answer = active();
            answer["sub"] = json!("bob");
            answer["iss"] = json!(ISS_B);
            json_answer(answer)
        }
        _ => json_answer(json!({"active": false})),
    });
    a.answer(|form: &Form| match form.get("token") {
        Some("a_alice") => json_answer(active()),
        _ => json_answer(json!({"active": false})),
    });
    let issuer_b = |introspection: Introspection| {
        Issuer::new(ISS_B, RemoteJwks::new(&format!("{}/jwks", b.base)).unwrap())
            .audience("https://api.example")
            .introspection(introspection)
    };
    let introspection_b =
        || Introspection::at(&b.endpoint(), ClientAuth::secret_basic("rs", "rs-secret")).unwrap();
    // No rule: refused at configuration, naming the fix.
    let error = AuthX::new(AuthXConfig::from_issuers([
        a.issuer(a.introspection()),
        issuer_b(introspection_b()),
    ]))
    .unwrap_err()
    .to_string();
    assert!(error.contains("opaque_tokens_prefixed"), "{error}");
    // Overlapping prefixes too.
    let error = AuthX::new(AuthXConfig::from_issuers([
        a.issuer(a.introspection().opaque_tokens_prefixed("a_")),
        issuer_b(introspection_b().opaque_tokens_prefixed("a_b")),
    ]))
    .unwrap_err()
    .to_string();
    assert!(error.contains("overlap"), "{error}");

    let authx = AuthX::new(AuthXConfig::from_issuers([
        a.issuer(a.introspection().opaque_tokens_prefixed("a_")),
        issuer_b(introspection_b().opaque_tokens_prefixed("b_")),
    ]))
    .unwrap();
    let (code, subject, _) = guarded(&authx, "a_alice").await;
    assert_eq!((code, subject.as_str()), (StatusCode::OK, "alice"));
    let (code, subject, _) = guarded(&authx, "b_bob").await;
    assert_eq!((code, subject.as_str()), (StatusCode::OK, "bob"));
    assert_eq!((a.calls(), b.calls()), (1, 1));
    let seen_by_b: Vec<_> = b
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|f| f.get("token").map(str::to_owned))
        .collect();
    assert_eq!(seen_by_b, [Some("b_bob".to_owned())], "B saw A's token");
    // A's token that A says is inactive is not then tried at B.
    let (code, _, _) = guarded(&authx, "a_unknown").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!((a.calls(), b.calls()), (2, 1));
    // A token no rule takes: refused as malformed, no call at all.
    let (code, detail, _) = guarded(&authx, "c_carol").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(detail.contains("no issuer introspects"), "{detail}");
    assert_eq!((a.calls(), b.calls()), (2, 1));

    // Issue 43, item 8: with A hung, B's tokens do not wait behind it (a
    // token is never tried at one issuer after another): 40 of B's
    // requests are all answered while A's one request is still waiting.
    *a.delay.lock().unwrap() = Duration::from_secs(3);
    let hung = {
        let authx = authx.clone();
        tokio::spawn(async move { guarded(&authx, "a_alice").await.0 })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b_requests: Vec<_> = (0..40)
        .map(|_| {
            let authx = authx.clone();
            tokio::spawn(async move { guarded(&authx, "b_bob").await.0 })
        })
        .collect();
    for request in b_requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert!(!hung.is_finished(), "B's requests waited for A's hung call");
    *a.delay.lock().unwrap() = Duration::ZERO;
    let _ = hung.await;

    // One issuer for opaque tokens, the other introspecting its JWTs only,
    // is a rule too.
    let b_before = b.calls();
    let authx = AuthX::new(AuthXConfig::from_issuers([
        a.issuer(a.introspection()),
        issuer_b(introspection_b().tokens(IntrospectedTokens::Jwts)),
    ]))
    .unwrap();
    let (code, _, _) = guarded(&authx, "b_bob").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(
        b.calls(),
        b_before,
        "an opaque token went to the JWT-only issuer"
    );
}

/// Issue 43, item 1: made-up opaque tokens flooding from one client address
/// spend that client's share of the introspection budget, not everyone's:
/// another client's uncached token is still introspected.
#[tokio::test]
async fn one_clients_flood_of_made_up_tokens_spends_its_share_not_everyones() {
    let server = server().await;
    let authx = server.authx(
        server
            .introspection()
            .max_calls_per_second(16)
            .max_in_flight(8),
    );
    let from = |addr: &str, token: &str| {
        let mut request = bearer(token);
        let peer: std::net::SocketAddr = addr.parse().unwrap();
        request.extensions_mut().insert(peer);
        request
    };
    let guard = RequireAuthLayer::new(authx.clone()).layer(echo());
    let mut shed = 0;
    let flood = std::time::Instant::now();
    for i in 0..50 {
        let res = guard
            .clone()
            .oneshot(from("203.0.113.7:40000", &format!("made-up-{i}")))
            .await
            .unwrap();
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            shed += 1;
        }
    }
    // Every request not shed made a call; the client's share is 2 a second
    // (16 / 8), in however many seconds the flood took.
    let seconds = flood.elapsed().as_secs() + 1;
    assert_eq!(shed + server.calls(), 50);
    assert!(
        server.calls() as u64 <= 2 * seconds,
        "{} calls for the flood in {seconds} s",
        server.calls()
    );
    // Another client, in the same second: its token is asked about.
    let res = guard
        .clone()
        .oneshot(from("198.51.100.9:50000", "opaque-alice"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
