//! The response future of a guarded service: the inner service's future, a
//! rejection that is ready at once, or a wait (a network revocation store's
//! answer, a JWKS refetch) before the inner service is called. A hand-written
//! state machine; only what is awaited is boxed, and only when it is not ready
//! at once.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::EitherBody;
use crate::authx::AuthX;
use crate::observe::{Observation, Outcome};
use crate::pipeline::{ClaimsExtra, Pending};
use crate::policy::Requirement;
use crate::request::RequestHead;

pin_project! {
    /// Response future of [`RequireAuth`](super::RequireAuth) and the layers
    /// built on it.
    pub struct ResponseFuture<S, B, E = crate::claims::NoExtra>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
        // The claims type the request is verified into, once keys arrive.
        _claims: PhantomData<fn() -> E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Inner { #[pin] future: S::Future },
        // A CORS preflight handed in: only a CORS answer may come back.
        Preflight { #[pin] future: S::Future, refusal: Option<Response<Bytes>> },
        Rejected { response: Option<Response<Bytes>> },
        // Boxed: rare (a network store, a key refetch), and large; unboxed it
        // would make every request's future larger to move.
        Waiting { waiting: Box<Waiting<S, B>> },
    }
}

struct Waiting<S, B> {
    pending: Pending,
    // The service that was polled ready, and the request.
    parked: Option<(S, Request<B>)>,
    authx: AuthX,
    requirement: Requirement,
    observation: Option<Observation>,
}

impl<S: Service<Request<B>>, B, E> ResponseFuture<S, B, E> {
    fn new(state: State<S, B>) -> Self {
        ResponseFuture {
            state,
            _claims: PhantomData,
        }
    }

    pub(crate) fn inner(future: S::Future) -> Self {
        Self::new(State::Inner { future })
    }

    pub(crate) fn preflight(future: S::Future, refusal: Response<Bytes>) -> Self {
        Self::new(State::Preflight {
            future,
            refusal: Some(refusal),
        })
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self::new(State::Rejected {
            response: Some(response),
        })
    }

    pub(crate) fn waiting(
        pending: Pending,
        service: S,
        request: Request<B>,
        authx: AuthX,
        requirement: Requirement,
        observation: Observation,
    ) -> Self {
        Self::new(State::Waiting {
            waiting: Box::new(Waiting {
                pending,
                parked: Some((service, request)),
                authx,
                requirement,
                observation: Some(observation),
            }),
        })
    }
}

impl<S, B, E, ResBody> Future for ResponseFuture<S, B, E>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    E: ClaimsExtra,
{
    type Output = Result<Response<EitherBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Inner { future } => {
                    let res = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(res.map(EitherBody::inner)));
                }
                StateProj::Preflight { future, refusal } => {
                    let res = ready!(future.poll(cx))?;
                    if res
                        .headers()
                        .contains_key(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
                    {
                        return Poll::Ready(Ok(res.map(EitherBody::inner)));
                    }
                    tracing::warn!(
                        status = %res.status(),
                        "tower-authx: pass_cors_preflight is on but the service inside the guard \
                         answered a preflight without Access-Control-Allow-Origin (not a CORS \
                         layer?): refused instead"
                    );
                    let refusal = refusal
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(refusal.map(EitherBody::rejection)));
                }
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(EitherBody::rejection)));
                }
                StateProj::Waiting { waiting } => {
                    let Waiting {
                        pending,
                        parked,
                        authx,
                        requirement,
                        observation,
                    } = &mut **waiting;
                    let pipeline = authx.pipeline();
                    let notes = &observation
                        .as_ref()
                        .expect("ResponseFuture polled after completion")
                        .notes;
                    let (_, request) = parked
                        .as_mut()
                        .expect("ResponseFuture polled after completion");
                    let verdict = ready!(pending.poll_continue::<E, B>(
                        cx,
                        pipeline,
                        requirement,
                        request,
                        notes
                    ));
                    let (mut service, request) = parked
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match verdict {
                        Ok(None) => {
                            if let Some(observation) = observation.take() {
                                observation.finish(pipeline, super::admitted::<E, B>(&request));
                            }
                            State::Inner {
                                future: service.call(request),
                            }
                        }
                        Ok(Some(next)) => State::Waiting {
                            waiting: Box::new(Waiting {
                                pending: next,
                                parked: Some((service, request)),
                                authx: authx.clone(),
                                requirement: requirement.clone(),
                                observation: observation.take(),
                            }),
                        },
                        Err(error) => {
                            if let Some(observation) = observation.take() {
                                observation.finish(pipeline, Outcome::Refused(&error));
                            }
                            State::Rejected {
                                response: Some(authx.reject_for(
                                    &error,
                                    RequestHead::of(&request),
                                    Some(requirement),
                                )),
                            }
                        }
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl<S: Service<Request<B>>, B, E> std::fmt::Debug for ResponseFuture<S, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
