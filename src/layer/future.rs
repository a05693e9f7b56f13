//! The response future of a guarded service: the inner service's future, a
//! rejection that is ready at once, or a wait (a network revocation store's
//! answer, a JWKS refetch) before the inner service is called. A hand-written
//! state machine; only what is awaited is boxed, and only when it is not ready
//! at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::ResponseBody;
use super::{Pending, Retry, head};

pin_project! {
    /// Response future of [`RequireAuth`](super::RequireAuth) and the layers
    /// built on it.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Inner { #[pin] future: S::Future },
        Rejected { response: Option<Response<Bytes>> },
        Waiting {
            pending: Pending,
            // The service that was polled ready, and the request.
            parked: Option<(S, Request<B>)>,
            retry: Retry<B>,
        },
    }
}

impl<S: Service<Request<B>>, B> ResponseFuture<S, B> {
    pub(crate) fn inner(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Inner { future },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn waiting(
        pending: Pending,
        service: S,
        request: Request<B>,
        retry: Retry<B>,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                pending,
                parked: Some((service, request)),
                retry,
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Inner { future } => {
                    let res = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Waiting {
                    pending,
                    parked,
                    retry,
                } => {
                    let verdict = match pending {
                        Pending::Revocation(check) => {
                            let answer = ready!(Pin::new(check).poll(cx));
                            retry.authx.revocation_verdict(answer).map(|()| None)
                        }
                        Pending::Keys(refetch) => {
                            ready!(refetch.as_mut().poll(cx));
                            let (_, request) = parked
                                .as_mut()
                                .expect("ResponseFuture polled after completion");
                            // Once more with the keys we now hold; no second fetch.
                            (retry.authorize)(&retry.authx, &retry.requirement, request, false)
                        }
                    };
                    let (mut service, request) = parked
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match verdict {
                        Ok(None) => State::Inner {
                            future: service.call(request),
                        },
                        Ok(Some(next)) => State::Waiting {
                            pending: next,
                            parked: Some((service, request)),
                            retry: Retry {
                                authx: retry.authx.clone(),
                                requirement: retry.requirement.clone(),
                                authorize: retry.authorize,
                            },
                        },
                        Err(error) => State::Rejected {
                            response: Some(retry.authx.reject(&error, head(&request))),
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl<S: Service<Request<B>>, B> std::fmt::Debug for ResponseFuture<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
