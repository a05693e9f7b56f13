//! Issue 41: a guarded response stream ends when its credential expires or
//! is revoked, with the protocol's own signal, and a WebSocket's handle ends
//! and renews in band (feature `streams`).
#![cfg(feature = "streams")]

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::layer::{EndWithCredentialLayer, Ended, LiveCredential, Renewal};
use tower_authx::{AuthX, AuthXConfig, NumericDate, RequireAuthLayer};

/// A stream that says hello once, then never ends by itself.
struct Forever(bool);

impl Body for Forever {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 {
            return Poll::Pending;
        }
        self.0 = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            b"data: hello\n\n",
        )))))
    }
}

/// The frames of a stream of `content_type`, opened with a token that lives
/// two seconds, until it ends (at most ten seconds): data and trailers, and
/// when it ended.
async fn frames(content_type: &'static str) -> (Vec<Frame<Bytes>>, f64, f64) {
    let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32]).unwrap()).unwrap();
    let (token, exp) = two_second_token(&authx);
    let stream = service_fn(move |_req: Request<Full<Bytes>>| async move {
        let mut response = Response::new(Forever(false));
        response
            .headers_mut()
            .insert("content-type", content_type.parse().unwrap());
        Ok::<_, Infallible>(response)
    });
    let service = RequireAuthLayer::new(authx.clone())
        .layer(EndWithCredentialLayer::new(&authx).layer(stream));
    let request = Request::get("/events")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let mut body = service.oneshot(request).await.unwrap().into_body();
    let mut frames = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap());
        }
    })
    .await
    .expect("the stream ended");
    (frames, exp, NumericDate::now().as_secs_f64())
}

#[tokio::test]
async fn server_sent_events_end_with_an_event_that_says_why() {
    let (frames, exp, ended) = frames("text/event-stream").await;
    let data: Vec<String> = frames
        .iter()
        .filter_map(|f| f.data_ref())
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert_eq!(data[0], "data: hello\n\n");
    let last = data.last().unwrap();
    assert!(last.starts_with("event: credential-ended\n"), "{last:?}");
    assert!(last.contains("\"error\":\"invalid_token\""), "{last:?}");
    assert!(ended >= exp, "not before the credential's end");
}

#[tokio::test]
async fn a_grpc_stream_ends_with_unauthenticated_trailers() {
    let (frames, exp, ended) = frames("application/grpc").await;
    let trailers = frames.last().unwrap().trailers_ref().expect("trailers");
    assert_eq!(trailers["grpc-status"], "16");
    assert!(
        trailers["grpc-message"]
            .to_str()
            .unwrap()
            .contains("authenticate again")
    );
    assert!(ended >= exp);
}

#[tokio::test]
async fn any_other_stream_just_ends() {
    let (frames, exp, ended) = frames("application/octet-stream").await;
    assert_eq!(frames.len(), 1, "the hello, then the end");
    assert!(ended >= exp);
}

/// A request no guard admitted (no claims) is served as it is: the layer
/// ends nothing it cannot date.
#[tokio::test]
async fn without_claims_a_stream_is_left_alone() {
    let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32]).unwrap()).unwrap();
    let stream = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"whole"))))
    });
    let service = EndWithCredentialLayer::new(&authx).layer(stream);
    let body = service
        .oneshot(Request::get("/").body(Full::default()).unwrap())
        .await
        .unwrap()
        .into_body();
    assert_eq!(body.collect().await.unwrap().to_bytes(), "whole");
}

/// A guarded SSE service of `authx` (a stream that never ends by itself),
/// and the handle the layer left in the request, sent out by the handler.
fn events(
    authx: &AuthX,
    live: tokio::sync::mpsc::UnboundedSender<LiveCredential>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<
        tower_authx::layer::EitherBody<tower_authx::layer::CredentialBody<Forever>>,
    >,
    Error = Infallible,
> + Clone {
    RequireAuthLayer::new(authx.clone()).layer(events_inner(authx, live))
}

/// [`events`] without its guard.
fn events_inner(
    authx: &AuthX,
    live: tokio::sync::mpsc::UnboundedSender<LiveCredential>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<tower_authx::layer::CredentialBody<Forever>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send {
    let stream = service_fn(move |req: Request<Full<Bytes>>| {
        let live = live.clone();
        async move {
            if let Some(handle) = req.extensions().get::<LiveCredential>() {
                let _ = live.send(handle.clone());
            }
            let mut response = Response::new(Forever(false));
            response
                .headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            Ok::<_, Infallible>(response)
        }
    });
    EndWithCredentialLayer::new(authx).layer(stream)
}

fn bearer(token: &str) -> Request<Full<Bytes>> {
    Request::get("/events")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

/// The data of `body` until it ends (at most `within`), or `None` if it
/// had not ended by then.
async fn until_end<B: Body<Data = Bytes> + Unpin>(body: &mut B, within: Duration) -> Option<String>
where
    B::Error: std::fmt::Debug,
{
    let mut text = String::new();
    tokio::time::timeout(within, async {
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.unwrap().data_ref() {
                text.push_str(&String::from_utf8_lossy(data));
            }
        }
    })
    .await
    .ok()?;
    Some(text)
}

/// A logout (the memory store, one instance) ends the session's open
/// streams within a second, and only them: another session of the same
/// subject and another subject stream on.
#[tokio::test]
async fn a_logout_ends_that_sessions_streams_within_a_second() {
    let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32]).unwrap()).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let service = events(&authx, tx);
    let alice = authx.token_pair("alice").issue().unwrap();
    let alice_elsewhere = authx.token_pair("alice").issue().unwrap();
    let bob = authx.token_pair("bob").issue().unwrap();
    let mut bodies = Vec::new();
    for token in [
        &alice.access_token,
        &alice_elsewhere.access_token,
        &bob.access_token,
    ] {
        let response = service.clone().oneshot(bearer(token)).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        body.frame().await.unwrap().unwrap(); // the hello
        bodies.push(body);
    }
    let claims = authx
        .verify::<tower_authx::NoExtra>(&alice.access_token, &tower_authx::Requirement::access())
        .await
        .unwrap();
    authx.revoke(&claims).await.unwrap();
    let ended = until_end(&mut bodies[0], Duration::from_secs(1))
        .await
        .expect("the logged-out session's stream ended within a second");
    assert!(ended.starts_with("event: credential-ended\n"), "{ended:?}");
    assert!(ended.contains("\"reason\":\"revoked\""), "{ended:?}");
    for other in &mut bodies[1..] {
        assert!(
            until_end(other, Duration::from_millis(600)).await.is_none(),
            "another session's stream goes on"
        );
    }
}

/// A WebSocket's handle: renewed in band with a token of the same session
/// it lives on; one of another subject or another session is refused and
/// ends it, as does a token a new request would not pass (not fresh on a
/// fresh-only route).
#[tokio::test]
async fn a_renewal_extends_the_same_session_and_anything_else_ends_it() {
    let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32]).unwrap()).unwrap();
    let open = |token: String, fresh_only: bool| {
        let authx = authx.clone();
        async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let stream = upgrade_handler(tx);
            let inner = EndWithCredentialLayer::new(&authx).layer(stream);
            let response = if fresh_only {
                tower_authx::RequireFreshLayer::new(authx.clone())
                    .layer(inner)
                    .oneshot(bearer(&token))
                    .await
                    .unwrap()
            } else {
                RequireAuthLayer::new(authx.clone())
                    .layer(inner)
                    .oneshot(bearer(&token))
                    .await
                    .unwrap()
            };
            assert_eq!(response.status(), 200);
            rx.recv()
                .await
                .unwrap()
                .expect("a LiveCredential for the handler")
        }
    };
    let session = "session-1";
    let short = |sub: &str, fam: &str, fresh: bool, secs: u64| {
        authx
            .access_token(sub)
            .fam(fam)
            .fresh(fresh)
            .lifetime(Duration::from_secs(secs))
            .issue()
            .unwrap()
    };

    // Same subject and session: the end moves to the new token's.
    let live = open(short("alice", session, false, 60), false).await;
    let before = live.expires();
    let renewal =
        Renewal::parse(&Renewal::new(short("alice", session, false, 600), None).to_message())
            .expect("the documented message shape");
    live.renew::<tower_authx::NoExtra>(&renewal).await.unwrap();
    assert!(live.expires().as_secs_f64() > before.as_secs_f64() + 500.0);
    assert_eq!(live.has_ended(), None);

    for (refused, fresh_only, token) in [
        (
            "another subject",
            false,
            short("mallory", session, false, 600),
        ),
        (
            "another session",
            false,
            short("alice", "session-2", false, 600),
        ),
        (
            "not fresh on a fresh-only route",
            true,
            short("alice", session, false, 600),
        ),
        ("garbage", false, "abc.def.ghi".to_owned()),
    ] {
        let live = open(short("alice", session, true, 60), fresh_only).await;
        let error = live
            .renew::<tower_authx::NoExtra>(&Renewal::new(token, None))
            .await
            .expect_err(refused);
        let ended = tokio::time::timeout(Duration::from_secs(1), live.ended())
            .await
            .expect("ended at once");
        assert_eq!(ended, Ended::RenewalRefused, "{refused}: {error}");
        assert_eq!(ended.close_code(), 1008);
    }

    // An application's own messages are not renewals.
    for message in [
        "hello",
        "{\"type\":\"chat\",\"access_token\":\"x\"}",
        "{\"type\":\"authx.renew\"}",
    ] {
        assert!(Renewal::parse(message).is_none(), "{message}");
    }
}

/// The handle of a connection whose token expires ends by itself, with
/// `Expired`, within a second of `exp`.
#[tokio::test]
async fn a_handle_ends_at_expiry() {
    let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32]).unwrap()).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let service = events(&authx, tx);
    let (token, exp) = two_second_token(&authx);
    let response = service.oneshot(bearer(&token)).await.unwrap();
    let live = rx.recv().await.unwrap();
    drop(response); // a WebSocket's 101: the body ends, the handle lives on
    let ended = tokio::time::timeout(Duration::from_secs(5), live.ended())
        .await
        .expect("ended");
    assert_eq!(ended, Ended::Expired);
    let at = NumericDate::now().as_secs_f64();
    assert!(
        at >= exp && at < exp + 1.0,
        "ended {:.2} s after exp",
        at - exp
    );
}

/// A DPoP-bound connection renews with a token bound to the same key and a
/// fresh proof for the upgrade request's method and URL, checked as a new
/// request: without a proof, or with one already spent, it is refused.
#[tokio::test]
async fn a_dpop_bound_connection_renews_with_a_proof() {
    use crate::support::dpop::ProofKey;
    const BASE: &str = "https://api.example.com";
    let authx = AuthX::new(
        AuthXConfig::from_secret(crate::support::SECRET)
            .unwrap()
            .dpop(tower_authx::Dpop::new(BASE)),
    )
    .unwrap();
    let key = ProofKey::es256();
    let login = Request::post("/login")
        .header("dpop", key.proof("POST", &format!("{BASE}/login"), None))
        .body(())
        .unwrap();
    let bound = authx
        .dpop_key(tower_authx::RequestHead::of(&login))
        .await
        .unwrap()
        .unwrap();
    let session = "bound-session";
    let token = |secs| {
        authx
            .access_token("alice")
            .fam(session)
            .bound_to(&bound)
            .lifetime(Duration::from_secs(secs))
            .issue()
            .unwrap()
    };
    let open = || {
        let authx = authx.clone();
        let first = token(60);
        let proof = key.proof("GET", &format!("{BASE}/ws"), Some(&first));
        async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let stream = upgrade_handler(tx);
            let request = Request::get("/ws")
                .header("authorization", format!("DPoP {first}"))
                .header("dpop", proof)
                .body(Full::default())
                .unwrap();
            let response = RequireAuthLayer::new(authx.clone())
                .layer(EndWithCredentialLayer::new(&authx).layer(stream))
                .oneshot(request)
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            rx.recv().await.unwrap().unwrap()
        }
    };

    let live = open().await;
    let next = token(600);
    let proof = key.proof("GET", &format!("{BASE}/ws"), Some(&next));
    live.renew::<tower_authx::NoExtra>(&Renewal::new(next.clone(), Some(proof.clone())))
        .await
        .expect("a bound token with its proof");
    assert!(live.expires().as_secs_f64() > NumericDate::now().as_secs_f64() + 500.0);

    // Within the second: not checked, not refused; the connection goes on.
    let error = live
        .renew::<tower_authx::NoExtra>(&Renewal::new(next.clone(), Some(proof.clone())))
        .await
        .expect_err("a second renewal within the second");
    assert!(
        error.to_string().contains("one renewal a second"),
        "{error}"
    );
    assert_eq!(live.has_ended(), None);

    // The same proof again, later: a replay, refused, and the connection ends.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let error = live
        .renew::<tower_authx::NoExtra>(&Renewal::new(next.clone(), Some(proof)))
        .await
        .expect_err("a spent proof");
    assert_eq!(live.has_ended(), Some(Ended::RenewalRefused), "{error}");

    // A bound token without a proof.
    let live = open().await;
    live.renew::<tower_authx::NoExtra>(&Renewal::new(token(600), None))
        .await
        .expect_err("a bound token without its proof");
    assert_eq!(live.has_ended(), Some(Ended::RenewalRefused));
}

/// A logout that lands between the guard's store check and the stream's
/// registration (simulated by a layer between them that revokes) still
/// ends the stream at once: the schedule remembers the last second's
/// announcements for streams that open after them.
#[tokio::test]
async fn a_revocation_just_before_the_stream_opens_still_ends_it() {
    let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32]).unwrap()).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let (ends, _) = {
        let inner = events_inner(&authx, tx);
        let revoking = {
            let authx = authx.clone();
            service_fn(move |req: Request<Full<Bytes>>| {
                let (authx, inner) = (authx.clone(), inner.clone());
                async move {
                    let claims = req
                        .extensions()
                        .get::<tower_authx::Claims>()
                        .unwrap()
                        .clone();
                    authx.revoke(&claims).await.unwrap();
                    inner.oneshot(req).await
                }
            })
        };
        (RequireAuthLayer::new(authx.clone()).layer(revoking), ())
    };
    let token = authx.token_pair("alice").issue().unwrap().access_token;
    let response = ends.oneshot(bearer(&token)).await.unwrap();
    assert_eq!(response.status(), 200, "admitted before the logout");
    let mut body = response.into_body();
    let ended = until_end(&mut body, Duration::from_secs(1))
        .await
        .expect("ended within a second");
    assert!(ended.contains("\"reason\":\"revoked\""), "{ended:?}");
}

/// A WebSocket route's handler, in short: it answers at once and sends out
/// the `LiveCredential` the layer left (`None` if there was none).
fn upgrade_handler(
    tx: tokio::sync::mpsc::UnboundedSender<Option<LiveCredential>>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send {
    service_fn(move |req: Request<Full<Bytes>>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(req.extensions().get::<LiveCredential>().cloned());
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }
    })
}

/// An access token of alice's that lives two seconds, and its `exp`.
fn two_second_token(authx: &AuthX) -> (String, f64) {
    let token = authx
        .access_token("alice")
        .lifetime(Duration::from_secs(2))
        .issue()
        .unwrap();
    let exp = crate::support::payload_of(&token)["exp"].as_f64().unwrap();
    (token, exp)
}
