//! [`EndWithCredential`]: a guarded response that is a stream (server-sent
//! events, a gRPC server stream, any long body) ends when the credential that
//! opened it does (its `exp` plus its issuer's leeway, or its revocation),
//! instead of running for hours after; a WebSocket's handler gets a
//! [`LiveCredential`] to close the connection then, and to renew it in band.
//! Opt-in per route, inside a guard.

mod body;
mod live;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use body::CredentialBody;
use body::Ending;
pub use live::{LiveCredential, Renewal};

use crate::authx::AuthX;
use crate::claims::{Claims, NoExtra};
pub use crate::stream::Ended;
use crate::stream::{Credential, Slot};

/// Ends each response stream when the credential its request was admitted
/// with ends: at its expiry (`exp` plus its issuer's leeway), or when the
/// revocation store announces that its token, session or subject was revoked
/// (a logout here, or on another instance through Redis). gRPC ends with
/// trailers `grpc-status: 16` (UNAUTHENTICATED) and a message a client can
/// act on, server-sent events with a last `credential-ended` event, any other
/// body by its end. A WebSocket's handler finds a [`LiveCredential`] in the
/// request's extensions: close the socket when it ends (code 1008), and renew
/// it in band.
///
/// Place it inside a guard of the same `AuthX` (it reads the claims the guard
/// admitted); a request without them is served unchanged. One schedule per
/// `AuthX` serves every such layer: it looks at the deadlines four times a
/// second (a stream ends within a quarter of a second of its credential's
/// expiry) and asks the store about a subject's streams only when a change of
/// that subject is announced.
///
/// ```
/// # use tower_authx::{AuthX, AuthXConfig, RequireAuthLayer};
/// # use tower_authx::layer::EndWithCredentialLayer;
/// # let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32])?)?;
/// let events = tower::ServiceBuilder::new()
///     .layer(RequireAuthLayer::new(authx.clone()))
///     .layer(EndWithCredentialLayer::new(&authx));
/// # let _ = events; Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EndWithCredentialLayer<E = NoExtra> {
    authx: AuthX,
    claims: PhantomData<fn() -> E>,
}

impl<E> Clone for EndWithCredentialLayer<E> {
    fn clone(&self) -> Self {
        EndWithCredentialLayer {
            authx: self.authx.clone(),
            claims: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for EndWithCredentialLayer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndWithCredentialLayer")
            .finish_non_exhaustive()
    }
}

impl EndWithCredentialLayer<NoExtra> {
    /// Streams of requests admitted by `authx`'s guards end with their
    /// credential (each issuer's leeway read from `authx`'s rules).
    pub fn new(authx: &AuthX) -> Self {
        // Made now, so the guards keep what they require from now on, and
        // (within a runtime) listening to the store from now on.
        authx.pipeline().streams().start();
        EndWithCredentialLayer {
            authx: authx.clone(),
            claims: PhantomData,
        }
    }
}

impl<E> EndWithCredentialLayer<E> {
    /// Reads the guard's claims as `Claims<E2>` (the guard's own type).
    pub fn with_claims<E2>(self) -> EndWithCredentialLayer<E2> {
        EndWithCredentialLayer {
            authx: self.authx,
            claims: PhantomData,
        }
    }
}

impl<S, E> Layer<S> for EndWithCredentialLayer<E> {
    type Service = EndWithCredential<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        EndWithCredential {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`EndWithCredentialLayer`] makes.
pub struct EndWithCredential<S, E = NoExtra> {
    inner: S,
    layer: EndWithCredentialLayer<E>,
}

impl<S: Clone, E> Clone for EndWithCredential<S, E> {
    fn clone(&self) -> Self {
        EndWithCredential {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, E> std::fmt::Debug for EndWithCredential<S, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndWithCredential")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, E, ReqB, ResB> Service<Request<ReqB>> for EndWithCredential<S, E>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    E: Send + Sync + 'static,
{
    type Response = Response<CredentialBody<ResB>>;
    type Error = S::Error;
    type Future = EndWithCredentialFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let pipeline = self.layer.authx.pipeline();
        let slot = request
            .extensions()
            .get::<Claims<E>>()
            .filter(|claims| claims.verified_by.admitted_by(pipeline.id))
            .map(|claims| pipeline.streams().watch(Credential::of(claims)));
        if let Some(slot) = &slot {
            let live = LiveCredential::new(slot.clone(), &self.layer.authx, &request);
            request.extensions_mut().insert(live);
        }
        EndWithCredentialFuture {
            inner: self.inner.call(request),
            slot,
        }
    }
}

#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService, E> tonic::server::NamedService for EndWithCredential<S, E> {
    const NAME: &'static str = S::NAME;
}

pin_project! {
    /// The future of [`EndWithCredential`]: the inner response, its body
    /// bound to the credential.
    pub struct EndWithCredentialFuture<F> {
        #[pin]
        inner: F,
        slot: Option<Arc<Slot>>,
    }
}

impl<F: std::fmt::Debug> std::fmt::Debug for EndWithCredentialFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndWithCredentialFuture")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F, B, Err> Future for EndWithCredentialFuture<F>
where
    F: Future<Output = Result<Response<B>, Err>>,
{
    type Output = Result<Response<CredentialBody<B>>, Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let ending = Ending::of(response.headers());
        let slot = this.slot.take();
        Poll::Ready(Ok(
            response.map(|body| CredentialBody::new(body, slot, ending))
        ))
    }
}
