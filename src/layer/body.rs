//! A body that is either yours or a few bytes of ours: a guarded service's
//! response (the inner body, or a rejection's bytes), and a request whose
//! JSON body was read for its token (the bytes read, handed on whole, or the
//! body untouched). Your body type stays yours; nothing is boxed.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Either your body `B` or whole bytes of ours.
    pub struct EitherBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Whole { data: Option<Bytes> },
    }
}

impl<B> EitherBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        EitherBody {
            kind: Kind::Inner { body },
        }
    }

    /// Whole bytes of ours (a rejection, a body already read).
    pub(crate) fn whole(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        EitherBody {
            kind: Kind::Whole { data },
        }
    }

    pub(crate) fn rejection(data: Bytes) -> Self {
        EitherBody::whole(data)
    }
}

impl<B: Body<Data = Bytes>> Body for EitherBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Whole { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Whole { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Whole { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl<B> std::fmt::Debug for EitherBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Whole { .. } => "Whole",
        };
        f.debug_struct("EitherBody").field("kind", &kind).finish()
    }
}
