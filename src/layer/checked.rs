//! [`CheckedFuture`]: the response future of a layer that must finish an
//! asynchronous check before its inner service may run (`ToolScopes`
//! reading the body, `LoadUser` loading the user): the check, then the inner
//! service's future, or the check's refusal. Nothing is boxed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::EitherBody;

pin_project! {
    /// Response future of a layer that checks a request before calling its
    /// inner service `S` with request `R`: the check `C` yields the request
    /// to call with, or the refusal to send.
    pub struct CheckedFuture<S, R, C>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, R, C>
    where
        S: Service<R>,
    {
        Checking { #[pin] check: C, service: Option<S> },
        Calling { #[pin] future: S::Future },
        Refused { response: Option<Response<Bytes>> },
    }
}

impl<S: Service<R>, R, C> CheckedFuture<S, R, C> {
    /// `check` first, then `service` (the one polled ready).
    pub(crate) fn checking(check: C, service: S) -> Self {
        CheckedFuture {
            state: State::Checking {
                check,
                service: Some(service),
            },
        }
    }

    /// The inner service's call, with nothing left to check.
    pub(crate) fn calling(future: S::Future) -> Self {
        CheckedFuture {
            state: State::Calling { future },
        }
    }

    /// A refusal known at once.
    pub(crate) fn refused(response: Response<Bytes>) -> Self {
        CheckedFuture {
            state: State::Refused {
                response: Some(response),
            },
        }
    }
}

impl<S, R, C, ResBody> Future for CheckedFuture<S, R, C>
where
    S: Service<R, Response = Response<ResBody>>,
    C: Future<Output = Result<R, Response<Bytes>>>,
{
    type Output = Result<Response<EitherBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(EitherBody::inner)));
                }
                StateProj::Refused { response } => {
                    let response = response.take().unwrap_or_default();
                    return Poll::Ready(Ok(response.map(EitherBody::rejection)));
                }
                StateProj::Checking { check, service } => {
                    let checked = ready!(check.poll(cx));
                    let Some(mut service) = service.take() else {
                        unreachable!("a finished check is handled once");
                    };
                    match checked {
                        Ok(request) => State::Calling {
                            future: service.call(request),
                        },
                        Err(response) => State::Refused {
                            response: Some(response),
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl<S: Service<R>, R, C> fmt::Debug for CheckedFuture<S, R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedFuture").finish_non_exhaustive()
    }
}
