//! Tokens in a JSON body (AuthX's `json` location) in process: read once by
//! `JsonTokenLayer` and handed on byte for byte; the order with the other
//! locations; the refresh member; oversized, non-JSON and malformed bodies.
//! Pipelining over TCP is in dev/tests/axum.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::layer::{EitherBody, JsonTokenLayer};
use tower_authx::{AuthX, AuthXConfig, Claims, RequireAuthLayer, TokenLocation};

const SECRET: &[u8] = b"json-body-tests-secret-of-32byte";

fn authx(locations: &[TokenLocation]) -> AuthX {
    AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .token_location(locations.iter().copied()),
    )
    .unwrap()
}

/// Sends `req` through `JsonTokenLayer` and `guard` to a service that echoes
/// the body it received and names the subject in a header.
async fn send<B>(
    authx: &AuthX,
    guard: RequireAuthLayer,
    req: Request<B>,
) -> (StatusCode, String, String)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Debug,
{
    let echo = service_fn(|req: Request<EitherBody<B>>| async move {
        let sub = req
            .extensions()
            .get::<Claims>()
            .map(|c| c.sub.clone())
            .unwrap_or_default();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let mut res = Response::new(Full::new(body));
        res.headers_mut().insert("x-sub", sub.parse().unwrap());
        Ok::<_, Infallible>(res)
    });
    let service = JsonTokenLayer::new(authx.clone())
        .max_body(1024)
        .layer(guard.layer(echo));
    let res = service.oneshot(req).await.unwrap();
    let status = res.status();
    let sub = res
        .headers()
        .get("x-sub")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, sub, String::from_utf8_lossy(&body).into_owned())
}

fn json(body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post("/orders")
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

#[tokio::test]
async fn a_token_in_the_json_body_is_taken_and_the_body_reaches_the_service_byte_for_byte() {
    let authx = authx(&[TokenLocation::Json]);
    let token = authx.access_token("alice").issue().unwrap();
    let body =
        format!("{{\"item\": \"book\",\n \"access_token\": \"{token}\", \"n\": [1, 2.5e3]}}");
    let (status, sub, echoed) = send(
        &authx,
        RequireAuthLayer::new(authx.clone()),
        json(body.clone()),
    )
    .await;
    assert_eq!((status, sub.as_str()), (StatusCode::OK, "alice"));
    assert_eq!(echoed, body, "unchanged");
    // With parameters and in another case, still JSON.
    let req = Request::post("/")
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    assert_eq!(
        send(&authx, RequireAuthLayer::new(authx.clone()), req)
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_refresh_member_on_refresh_routes_and_the_configured_keys() {
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .token_location([TokenLocation::Json])
            .json_keys("jwt", "refresh_jwt"),
    )
    .unwrap();
    let pair = authx.token_pair("alice").issue().unwrap();
    let body = format!(
        r#"{{"jwt":"{}","refresh_jwt":"{}"}}"#,
        pair.access_token, pair.refresh_token
    );
    assert_eq!(
        send(
            &authx,
            RequireAuthLayer::new(authx.clone()),
            json(body.clone())
        )
        .await
        .0,
        StatusCode::OK
    );
    let refresh = RequireAuthLayer::refresh(authx.clone());
    let (status, _, echoed) = send(&authx, refresh, json(body)).await;
    assert_eq!(status, StatusCode::OK, "{echoed}");
    // The default key is not read any more.
    let body = format!(r#"{{"access_token":"{}"}}"#, pair.access_token);
    assert_eq!(
        send(&authx, RequireAuthLayer::new(authx.clone()), json(body))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn locations_keep_their_order_and_a_bad_body_is_refused_only_when_reached() {
    let authx = authx(&[TokenLocation::Headers, TokenLocation::Json]);
    let token = authx.access_token("alice").issue().unwrap();
    // The header first: a body the application may refuse itself is its own.
    let req = Request::post("/")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{not json")))
        .unwrap();
    let (status, _, echoed) = send(&authx, RequireAuthLayer::new(authx.clone()), req).await;
    assert_eq!((status, echoed.as_str()), (StatusCode::OK, "{not json"));
    // Reached, a body that cannot hold a token is a 400.
    for bad in [
        "{not json".to_owned(),
        "[]".to_owned(),
        r#"{"access_token": 7}"#.to_owned(),
        format!(r#"{{"access_token":"{token}","access_token":"{token}"}}"#),
        format!(r#"{{"access_token":"{token}"}} trailing"#),
    ] {
        let (status, _, answer) = send(
            &authx,
            RequireAuthLayer::new(authx.clone()),
            json(bad.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }
    // No token anywhere: AuthX's words for both places.
    let (status, _, answer) = send(&authx, RequireAuthLayer::new(authx.clone()), json("{}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer.contains("Missing token in json data"), "{answer}");
    // A token in a body that is not JSON is not read.
    let req = Request::post("/")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(format!(
            r#"{{"access_token":"{token}"}}"#
        ))))
        .unwrap();
    assert_eq!(
        send(&authx, RequireAuthLayer::new(authx.clone()), req)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_oversized_json_body_is_413_whether_declared_or_streamed() {
    let authx = authx(&[TokenLocation::Json]);
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(2000));
    let (status, _, answer) = send(
        &authx,
        RequireAuthLayer::new(authx.clone()),
        json(big.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    // Without Content-Length, in chunks.
    let chunks = big
        .into_bytes()
        .chunks(100)
        .map(Bytes::copy_from_slice)
        .collect();
    let req = Request::post("/")
        .header("content-type", "application/json")
        .body(Chunks(chunks))
        .unwrap();
    assert_eq!(
        send(&authx, RequireAuthLayer::new(authx.clone()), req)
            .await
            .0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn without_the_json_location_bodies_stream_through_untouched() {
    let authx = authx(&[TokenLocation::Headers]);
    let token = authx.access_token("alice").issue().unwrap();
    let big = "x".repeat(5000); // past max_body: never read
    let req = Request::post("/")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(big.clone())))
        .unwrap();
    let (status, _, echoed) = send(&authx, RequireAuthLayer::new(authx.clone()), req).await;
    assert_eq!((status, echoed.len()), (StatusCode::OK, big.len()));
}

/// A body of unknown length, sent in chunks.
struct Chunks(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

/// Issue 43, item 6: JSON bodies are read only on the routes that take a
/// token in them (`only_paths`), and by default at most 64 KiB of them: a
/// stalled or large body on any other route (a login, a 404) is never held
/// for the token.
#[tokio::test]
async fn bodies_are_read_only_on_the_routes_named_and_within_64_kib() {
    let authx = authx(&[TokenLocation::Json]);
    let token = authx.access_token("alice").issue().unwrap();
    let body = format!("{{\"access_token\": \"{token}\"}}");
    let echo = service_fn(|req: Request<EitherBody<Full<Bytes>>>| async move {
        let sub = req
            .extensions()
            .get::<Claims>()
            .map(|c| c.sub.clone())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(sub))))
    });
    let layer = JsonTokenLayer::new(authx.clone()).only_paths(["/refresh", "/sessions/"]);
    let service = layer.layer(RequireAuthLayer::any_type(authx.clone()).layer(echo));
    let post = |path: &str, body: String| {
        Request::post(path)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    for (path, read) in [
        ("/refresh", true),
        ("/sessions/7", true),
        ("/refresh/x", false),
        ("/login", false),
        ("/nowhere", false),
    ] {
        let res = service
            .clone()
            .oneshot(post(path, body.clone()))
            .await
            .unwrap();
        let expected = if read {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(res.status(), expected, "{path}");
    }
    // The default bound: 64 KiB.
    assert_eq!(tower_authx::layer::DEFAULT_MAX_JSON_BODY, 64 * 1024);
    let padded = format!(
        "{{\"access_token\": \"{token}\", \"pad\": \"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let res = service
        .clone()
        .oneshot(post("/refresh", padded))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
