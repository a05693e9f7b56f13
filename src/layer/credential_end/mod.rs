//! [`EndWithCredential`]: a guarded response that is a stream (server-sent
//! events, a gRPC server stream, any long body) ends when the credential that
//! opened it expires (its `exp` plus its issuer's leeway), instead of running
//! for hours after. Opt-in per route, inside a guard.

mod body;
mod schedule;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use body::CredentialBody;
use body::Ending;
use schedule::{Schedule, Slot};

use crate::authx::AuthX;
use crate::claims::{Claims, NoExtra, NumericDate};

/// Ends each response stream when the credential its request was admitted
/// with expires: gRPC with trailers `grpc-status: 16` (UNAUTHENTICATED) and a
/// message a client can act on, server-sent events with a last
/// `credential-ended` event, any other body by its end. Place it inside a
/// guard of the same `AuthX` (it reads the claims the guard left); a request
/// without them is served unchanged. One schedule per layer wakes every
/// stream, four times a second: a stream ends within a quarter of a second
/// of its credential's end.
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
    schedule: Arc<Schedule>,
    leeway: Arc<HashMap<Option<String>, Duration>>,
    claims: PhantomData<fn() -> E>,
}

impl<E> Clone for EndWithCredentialLayer<E> {
    fn clone(&self) -> Self {
        EndWithCredentialLayer {
            schedule: self.schedule.clone(),
            leeway: self.leeway.clone(),
            claims: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for EndWithCredentialLayer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndWithCredentialLayer")
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl EndWithCredentialLayer<NoExtra> {
    /// Streams of requests admitted by `authx`'s guards end with their
    /// credential (each issuer's leeway read from `authx`'s rules).
    pub fn new(authx: &AuthX) -> Self {
        let leeway = authx
            .rules()
            .into_iter()
            .map(|rules| (rules.issuer, rules.leeway))
            .collect();
        EndWithCredentialLayer {
            schedule: Arc::default(),
            leeway: Arc::new(leeway),
            claims: PhantomData,
        }
    }
}

impl<E> EndWithCredentialLayer<E> {
    /// Reads the guard's claims as `Claims<E2>` (the guard's own type).
    pub fn with_claims<E2>(self) -> EndWithCredentialLayer<E2> {
        EndWithCredentialLayer {
            schedule: self.schedule,
            leeway: self.leeway,
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

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let deadline = request.extensions().get::<Claims<E>>().map(|claims| {
            let leeway = self
                .layer
                .leeway
                .get(&claims.iss)
                .or_else(|| self.layer.leeway.get(&None))
                .copied()
                .unwrap_or_default();
            NumericDate::from_secs_f64(claims.exp.as_secs_f64() + leeway.as_secs_f64())
        });
        EndWithCredentialFuture {
            inner: self.inner.call(request),
            slot: deadline.map(|deadline| Watched {
                slot: self.layer.schedule.add(deadline),
                _schedule: self.layer.schedule.clone(),
            }),
        }
    }
}

pin_project! {
    /// The future of [`EndWithCredential`]: the inner response, its body
    /// bound to the credential.
    pub struct EndWithCredentialFuture<F> {
        #[pin]
        inner: F,
        slot: Option<Watched>,
    }
}

/// A stream's end, and the schedule that sets it: a stream keeps its
/// schedule running after the service that opened it is gone.
struct Watched {
    slot: Arc<Slot>,
    /// Held, never read: it keeps the schedule's task alive.
    _schedule: Arc<Schedule>,
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
