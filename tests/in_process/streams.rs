//! Issue 41, first part: a guarded response stream ends when its credential
//! expires, with the protocol's own signal (feature `streams`).
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
use tower_authx::layer::EndWithCredentialLayer;
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
    let token = authx
        .access_token("alice")
        .lifetime(Duration::from_secs(2))
        .issue()
        .unwrap();
    let exp = crate::support::payload_of(&token)["exp"].as_f64().unwrap();
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
