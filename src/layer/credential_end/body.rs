//! A response body that ends when the credential that opened it does, with
//! the protocol's own signal.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use std::sync::Arc;

use crate::stream::{Ended, Slot};

/// How a stream says that it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// gRPC: trailers with `grpc-status` 16 (UNAUTHENTICATED) and a message.
    Grpc,
    /// Server-sent events: a last event that says why, then the end.
    Sse,
    /// Anything else: the end of the body.
    Plain,
}

impl Ending {
    /// The ending for a response of `headers`' content type.
    pub(super) fn of(headers: &HeaderMap) -> Ending {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("application/grpc") {
            Ending::Grpc
        } else if content_type.starts_with("text/event-stream") {
            Ending::Sse
        } else {
            Ending::Plain
        }
    }
}

/// The SSE event that ends a stream.
fn sse_event(why: Ended) -> Bytes {
    Bytes::from(format!(
        "event: credential-ended\ndata: {{\"error\":\"invalid_token\",\"reason\":\"{}\",\"error_description\":\"{}\"}}\n\n",
        why.as_str(),
        why.reason()
    ))
}

fn grpc_trailers(why: Ended) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("16"));
    trailers.insert("grpc-message", HeaderValue::from_static(why.reason()));
    trailers
}

pin_project! {
    /// The body of a response behind [`EndWithCredentialLayer`](super::EndWithCredentialLayer):
    /// the inner body's frames until the credential ends, then the
    /// protocol's signal and the end.
    pub struct CredentialBody<B> {
        #[pin]
        inner: B,
        slot: Option<Arc<Slot>>,
        ending: Ending,
        done: bool,
    }
}

impl<B> CredentialBody<B> {
    pub(super) fn new(inner: B, slot: Option<Arc<Slot>>, ending: Ending) -> Self {
        CredentialBody {
            inner,
            slot,
            ending,
            done: false,
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for CredentialBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialBody")
            .field("inner", &self.inner)
            .field("ending", &self.ending)
            .finish_non_exhaustive()
    }
}

impl<B: Body<Data = Bytes>> Body for CredentialBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Some(why) = this.slot.as_ref().and_then(|slot| slot.ended(cx.waker())) {
            *this.done = true;
            *this.slot = None;
            return Poll::Ready(match this.ending {
                Ending::Grpc => Some(Ok(Frame::trailers(grpc_trailers(why)))),
                Ending::Sse => Some(Ok(Frame::data(sse_event(why)))),
                Ending::Plain => None,
            });
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(None) => {
                // The response is over: the stream leaves the schedule.
                *this.done = true;
                *this.slot = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // It may end early: no exact length.
        let mut hint = SizeHint::new();
        if let Some(upper) = self.inner.size_hint().upper() {
            hint.set_upper(upper + 512);
        }
        hint
    }
}
