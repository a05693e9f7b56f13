//! [`LoadUser`]: the application's user for the verified claims (AuthX's
//! `set_subject_getter`, flask-jwt-extended's `user_lookup_loader`), loaded
//! after every check and put into the request's extensions as a [`User`].
//! An unknown user is refused (401, or 403 when configured), a loader that
//! fails is 503: a request never reaches the service without its user. Once
//! per request: a user already loaded by an outer `LoadUser` is kept.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{CheckedFuture, EitherBody};
use crate::authx::AuthX;
use crate::claims::{Claims, NoExtra};
use crate::error::AuthError;
use crate::request::RequestHead;

/// The loaded user, in the request's extensions (and, with the `axum`
/// feature, an extractor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User<U>(pub U);

/// Why a loader could not answer (its database is down, ...): the request is
/// refused with 503, and the cause is logged, never sent.
#[derive(Debug)]
pub struct LoadError(pub Box<dyn std::error::Error + Send + Sync>);

impl<T: Into<Box<dyn std::error::Error + Send + Sync>>> From<T> for LoadError {
    fn from(error: T) -> Self {
        LoadError(error.into())
    }
}

/// What an unknown user gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnknownUser {
    /// 401 `invalid_token`: the token speaks for nobody (the default).
    #[default]
    Unauthorized,
    /// 403: authenticated, but not a user of this service.
    Forbidden,
}

/// Applies [`LoadUser`] with `loader`: a function from the verified claims to
/// a future of `Ok(Some(user))`, `Ok(None)` (unknown) or `Err` (cannot say).
/// Put it inside a guard, whose verified claims it reads.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_authx::layer::{LoadUserLayer, User};
/// # use tower_authx::{AuthX, AuthXConfig, RequireAuthLayer};
/// # let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32])?)?;
///
/// #[derive(Clone)]
/// struct Account { name: String }
///
/// let service = ServiceBuilder::new()
///     .layer(RequireAuthLayer::new(authx.clone()))
///     .layer(LoadUserLayer::new(authx, |claims: &tower_authx::Claims| {
///         let sub = claims.sub.clone();
///         async move { Ok(Some(Account { name: sub })) } // your database here
///     }))
///     .service_fn(|req: http::Request<String>| async move {
///         let User(account) = req.extensions().get::<User<Account>>().unwrap().clone();
///         Ok::<_, std::convert::Infallible>(http::Response::new(account.name))
///     });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LoadUserLayer<F, E = NoExtra> {
    authx: AuthX,
    loader: F,
    unknown: UnknownUser,
    clients: bool,
    _claims: PhantomData<fn() -> E>,
}

impl<F, E> LoadUserLayer<F, E> {
    /// Loads with `loader` from the guard's `Claims<E>` (the default claims
    /// type unless the guard reads your own).
    pub fn new<Fut, U>(authx: AuthX, loader: F) -> Self
    where
        F: Fn(&Claims<E>) -> Fut,
        Fut: Future<Output = Result<Option<U>, LoadError>>,
    {
        LoadUserLayer {
            authx,
            loader,
            unknown: UnknownUser::default(),
            clients: false,
            _claims: PhantomData,
        }
    }

    /// Hands a client's own token ([`Claims::is_client`]: no user behind
    /// it) to the loader too (default: refused as an unknown user before the
    /// loader runs, as its `sub` names a client, which may have chosen an id
    /// equal to a user's name).
    #[must_use]
    pub fn accept_clients(mut self) -> Self {
        self.clients = true;
        self
    }

    /// What an unknown user gets (default: 401).
    #[must_use]
    pub fn unknown_user(mut self, answer: UnknownUser) -> Self {
        self.unknown = answer;
        self
    }
}

impl<F: Clone, E> Clone for LoadUserLayer<F, E> {
    fn clone(&self) -> Self {
        LoadUserLayer {
            authx: self.authx.clone(),
            loader: self.loader.clone(),
            unknown: self.unknown,
            clients: self.clients,
            _claims: PhantomData,
        }
    }
}

impl<F, E> fmt::Debug for LoadUserLayer<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadUserLayer")
            .field("unknown", &self.unknown)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

impl<S, F: Clone, E> Layer<S> for LoadUserLayer<F, E> {
    type Service = LoadUser<S, F, E>;

    fn layer(&self, inner: S) -> LoadUser<S, F, E> {
        LoadUser {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose requests carry their [`User`], loaded by
/// [`LoadUserLayer`]'s loader.
pub struct LoadUser<S, F, E = NoExtra> {
    inner: S,
    layer: LoadUserLayer<F, E>,
}

impl<S: Clone, F: Clone, E> Clone for LoadUser<S, F, E> {
    fn clone(&self) -> Self {
        LoadUser {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, F, E> fmt::Debug for LoadUser<S, F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadUser")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, Fut, U, E, B, ResBody> Service<Request<B>> for LoadUser<S, F, E>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    F: Fn(&Claims<E>) -> Fut,
    Fut: Future<Output = Result<Option<U>, LoadError>>,
    U: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    type Response = Response<EitherBody<ResBody>>;
    type Error = S::Error;
    type Future = CheckedFuture<S, Request<B>, LoadingUser<Fut, B, U>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The service polled ready goes with this request.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        if req.extensions().get::<User<U>>().is_some() {
            // An outer LoadUser loaded it: once per request.
            return CheckedFuture::calling(service.call(req));
        }
        let Some(claims) = req.extensions().get::<Claims<E>>() else {
            tracing::warn!(
                "tower-authx: LoadUser found no verified claims; put it inside a guard \
                 (RequireAuthLayer) built with the same claims type"
            );
            let refusal = self
                .layer
                .authx
                .reject(&AuthError::MissingToken, RequestHead::of(&req));
            return CheckedFuture::refused(refusal);
        };
        if claims.is_client() && !self.layer.clients {
            let unknown = AuthError::UnknownUser {
                forbidden: self.layer.unknown == UnknownUser::Forbidden,
            };
            let refusal = self.layer.authx.reject(&unknown, RequestHead::of(&req));
            return CheckedFuture::refused(refusal);
        }
        let loading = LoadingUser {
            loading: (self.layer.loader)(claims),
            request: Some(req),
            authx: self.layer.authx.clone(),
            unknown: self.layer.unknown,
            _user: PhantomData,
        };
        CheckedFuture::checking(loading, service)
    }
}

pin_project! {
    /// What [`LoadUser`] does before its service runs: awaits the loader,
    /// then hands on the request with its [`User`], or the refusal.
    pub struct LoadingUser<Fut, B, U> {
        #[pin]
        loading: Fut,
        request: Option<Request<B>>,
        authx: AuthX,
        unknown: UnknownUser,
        _user: PhantomData<fn() -> U>,
    }
}

impl<Fut, B, U> Future for LoadingUser<Fut, B, U>
where
    Fut: Future<Output = Result<Option<U>, LoadError>>,
    U: Clone + Send + Sync + 'static,
{
    type Output = Result<Request<B>, Response<bytes::Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let loaded = ready!(this.loading.poll(cx));
        let Some(mut req) = this.request.take() else {
            unreachable!("a loaded user is handled once");
        };
        let error = match loaded {
            Ok(Some(user)) => {
                req.extensions_mut().insert(User(user));
                return Poll::Ready(Ok(req));
            }
            Ok(None) => AuthError::UnknownUser {
                forbidden: *this.unknown == UnknownUser::Forbidden,
            },
            Err(LoadError(cause)) => {
                tracing::warn!(error = %cause, "tower-authx: the user could not be loaded");
                AuthError::UserUnavailable
            }
        };
        Poll::Ready(Err(this.authx.reject(&error, RequestHead::of(&req))))
    }
}

impl<Fut, B, U> fmt::Debug for LoadingUser<Fut, B, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadingUser").finish_non_exhaustive()
    }
}
