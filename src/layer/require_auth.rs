//! [`RequireAuth`]: a valid token of the required type, or a rejection.

use std::marker::PhantomData;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{ClaimsExtra, EitherBody, ResponseFuture, call_guarded};
use crate::authx::AuthX;
use crate::claims::NoExtra;
use crate::error::ConfigError;
use crate::policy::{Admission, Requirement};

/// Applies [`RequireAuth`]: by default, any valid access token.
///
/// ```
/// # use tower_authx::{AuthX, AuthXConfig, RequireAuthLayer};
/// let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32])?)?;
/// let guard = RequireAuthLayer::new(authx.clone());          // access tokens
/// let refresh = RequireAuthLayer::refresh(authx.clone());    // refresh tokens
/// let either = RequireAuthLayer::any_type(authx);            // access or refresh
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct RequireAuthLayer<E = NoExtra> {
    authx: AuthX,
    admission: Admission,
    _claims: PhantomData<fn() -> E>,
}

impl RequireAuthLayer<NoExtra> {
    /// Requires a valid access token, fresh or not.
    pub fn new(authx: AuthX) -> Self {
        Self::with_requirement(authx, Requirement::access())
    }

    /// Requires a valid refresh token (a `/refresh` route).
    pub fn refresh(authx: AuthX) -> Self {
        Self::with_requirement(authx, Requirement::refresh())
    }

    /// Requires a valid access or refresh token.
    pub fn any_type(authx: AuthX) -> Self {
        Self::with_requirement(authx, Requirement::any_type())
    }

    /// Requires whatever `requirement` says (every requirement needs a
    /// credential; optional authentication is
    /// [`OptionalAuthLayer`](super::OptionalAuthLayer)). Public callers go
    /// through [`AuthX::guard`], which refuses a requirement no token could
    /// meet; one that slipped through here would still refuse every request.
    pub(crate) fn with_requirement(authx: AuthX, requirement: Requirement) -> Self {
        Self::admitting(authx, Admission::Required(requirement))
    }

    pub(super) fn admitting(authx: AuthX, admission: Admission) -> Self {
        RequireAuthLayer {
            authx,
            admission,
            _claims: PhantomData,
        }
    }
}

/// The checked way to build a guard for a composed requirement (here, beside
/// the layer it builds).
impl AuthX {
    /// A guard for `requirement`, checked first: a rule that could never
    /// hold (an empty list) or that requires a wildcard scope (`admin:*` is
    /// granted, never required) is a configuration error here.
    ///
    /// ```
    /// # use tower_authx::{AuthX, AuthXConfig, Requirement, Rule};
    /// # let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32])?)?;
    /// let orders = authx.guard(Requirement::access().rule(Rule::any_of([
    ///     Rule::all_scopes(["orders:write"]),
    ///     Rule::any_role(["admin"]),
    /// ])))?;
    /// assert!(authx.guard(Requirement::access().all_scopes(["admin:*"])).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn guard(&self, requirement: Requirement) -> Result<RequireAuthLayer, ConfigError> {
        match requirement.flaw() {
            Some(flaw) => Err(ConfigError::new(flaw)),
            None => Ok(RequireAuthLayer::with_requirement(
                self.clone(),
                requirement,
            )),
        }
    }
}

impl<E> RequireAuthLayer<E> {
    /// Reads your own claim type `E2` too (flattened at the payload's top level);
    /// the extensions then hold a `Claims<E2>`.
    pub fn with_claims<E2>(self) -> RequireAuthLayer<E2> {
        RequireAuthLayer {
            authx: self.authx,
            admission: self.admission.clone(),
            _claims: PhantomData,
        }
    }
}

impl<E> Clone for RequireAuthLayer<E> {
    fn clone(&self) -> Self {
        RequireAuthLayer {
            authx: self.authx.clone(),
            admission: self.admission.clone(),
            _claims: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for RequireAuthLayer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireAuthLayer")
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}

impl<S, E> Layer<S> for RequireAuthLayer<E> {
    type Service = RequireAuth<S, E>;

    fn layer(&self, inner: S) -> RequireAuth<S, E> {
        RequireAuth {
            inner,
            authx: self.authx.clone(),
            admission: self.admission.clone(),
            _claims: PhantomData,
        }
    }
}

/// Middleware that verifies the bearer token, puts its
/// [`Claims<E>`](crate::claims::Claims) into the request's extensions, and answers the
/// configured rejection instead of calling `S` when it cannot.
pub struct RequireAuth<S, E = NoExtra> {
    inner: S,
    authx: AuthX,
    admission: Admission,
    _claims: PhantomData<fn() -> E>,
}

impl<S> RequireAuth<S, NoExtra> {
    /// Guards `inner` with `authx`'s access-token requirement.
    pub fn new(inner: S, authx: AuthX) -> Self {
        RequireAuthLayer::new(authx).layer(inner)
    }
}

impl<S, E> RequireAuth<S, E> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, E> Clone for RequireAuth<S, E> {
    fn clone(&self) -> Self {
        RequireAuth {
            inner: self.inner.clone(),
            authx: self.authx.clone(),
            admission: self.admission.clone(),
            _claims: PhantomData,
        }
    }
}

impl<S: std::fmt::Debug, E> std::fmt::Debug for RequireAuth<S, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireAuth")
            .field("inner", &self.inner)
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}

/// `S: Clone` because a network revocation store is awaited before `S` is
/// called: the ready service goes into the future and a clone stays behind.
impl<S, E, ReqBody, ResBody> Service<Request<ReqBody>> for RequireAuth<S, E>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: http_body::Body<Data = Bytes>,
    ReqBody: http_body::Body,
    E: ClaimsExtra,
{
    type Response = Response<EitherBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        call_guarded::<S, E, ReqBody>(&mut self.inner, &self.authx, &self.admission, req)
    }
}
