//! The layers: [`RequireAuth`], [`RequireFresh`] and [`RequireScopes`], in tower-http's shape
//! (`Layer` → `Service` → hand-written `ResponseFuture`, body type kept).
//!
//! A guarded request takes one way: token from its location → verify → policy →
//! revocation store → claims into the extensions → inner service. Any failure
//! short-circuits into the configured rejection; the inner service is never called.

mod body;
mod future;
mod require_auth;
mod require_fresh;
mod require_scopes;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use require_auth::{RequireAuth, RequireAuthLayer};
pub use require_fresh::{RequireFresh, RequireFreshLayer};
pub use require_scopes::{RequireScopes, RequireScopesLayer};

use std::future::Future;
use std::pin::Pin;

use http::Request;
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::authx::AuthX;
use crate::claims::{Claims, NumericDate};
use crate::error::AuthError;
use crate::policy::Requirement;
use crate::request::RequestHead;
use crate::revocation::StoreFuture;

/// What extra-claims types must be to travel in request extensions.
pub trait ClaimsExtra: DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: DeserializeOwned + Clone + Send + Sync + 'static> ClaimsExtra for T {}

/// What a request waits for before its fate is known.
pub(crate) enum Pending {
    /// A network revocation store's answer.
    Revocation(StoreFuture<bool>),
    /// A refetch of the issuer's JWKS; then the request is authorized again.
    Keys(Pin<Box<dyn Future<Output = ()> + Send>>),
}

/// `authorize` for one claims type, as the response future calls it again.
pub(crate) type Authorize<B> =
    fn(&AuthX, &Requirement, &mut Request<B>, bool) -> Result<Option<Pending>, AuthError>;

/// Verifies the request's token (or reuses claims an outer layer verified) and
/// stores the claims in the extensions. What cannot be known at once (a network
/// store's answer, keys to fetch) comes back to be awaited; keys are fetched at
/// most once per request (`may_fetch_keys`).
fn authorize<E: ClaimsExtra, B>(
    authx: &AuthX,
    requirement: &Requirement,
    req: &mut Request<B>,
    may_fetch_keys: bool,
) -> Result<Option<Pending>, AuthError> {
    if let Some(claims) = req.extensions().get::<Claims<E>>()
        && req.extensions().get::<VerifiedBy>() == Some(&VerifiedBy::new::<E>(authx))
    {
        // Verified (and checked against the store) by an outer layer built
        // from this very AuthX: one request, one signature check, one store
        // lookup. Claims put there by anyone else are verified again.
        authx.check(claims, requirement, NumericDate::now())?;
        return Ok(None);
    }
    let claims = match authx.authenticate::<E>(head(req), requirement) {
        Ok(claims) => claims,
        Err(AuthError::MissingToken) if requirement.is_optional() => {
            req.extensions_mut().insert(Anonymous);
            return Ok(None);
        }
        Err(error) if may_fetch_keys => {
            return match authx.key_refetch(&error, head(req)) {
                Some(refetch) => Ok(Some(Pending::Keys(refetch))),
                None => Err(error),
            };
        }
        Err(error) => return Err(authx.after_refetch(error)),
    };
    // After the signature and the claims, never before: an unauthenticated
    // caller cannot make us reach the store.
    let pending = match authx.revocation_check(&claims).now_or_later() {
        Ok(answer) => {
            authx.revocation_verdict(answer)?;
            None
        }
        Err(pending) => Some(Pending::Revocation(pending)),
    };
    req.extensions_mut().insert(claims);
    req.extensions_mut().insert(VerifiedBy::new::<E>(authx));
    Ok(pending)
}

/// Which [`AuthX`] verified the `Claims<E>` in the extensions, so an inner
/// guard reuses only what its own keys, issuer, audience and store vouched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct VerifiedBy {
    authx: u64,
    claims: std::any::TypeId,
}

impl VerifiedBy {
    fn new<E: 'static>(authx: &AuthX) -> Self {
        VerifiedBy {
            authx: authx.id(),
            claims: std::any::TypeId::of::<E>(),
        }
    }
}

fn head<B>(req: &Request<B>) -> RequestHead<'_> {
    RequestHead::of(req)
}

/// A CORS preflight and nothing else: `OPTIONS` with `Origin` and one
/// `Access-Control-Request-Method`, no credential, no content type and no body.
/// Anything that a service behind the guard could take for a real call (a gRPC
/// request, which tonic serves whatever the method; a body) is guarded as usual.
fn is_cors_preflight<B: http_body::Body>(req: &Request<B>) -> bool {
    use http::header::{
        ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, ORIGIN,
        TRANSFER_ENCODING,
    };
    let headers = req.headers();
    req.method() == http::Method::OPTIONS
        && headers.contains_key(ORIGIN)
        && headers
            .get_all(ACCESS_CONTROL_REQUEST_METHOD)
            .iter()
            .count()
            == 1
        && !headers.contains_key(AUTHORIZATION)
        && !headers.contains_key(COOKIE)
        && !headers.contains_key(CONTENT_TYPE)
        && !headers.contains_key(TRANSFER_ENCODING)
        && headers.get_all(CONTENT_LENGTH).iter().all(|v| v == "0")
        && (req.body().is_end_stream() || req.body().size_hint().exact() == Some(0))
}

fn call_guarded<S, E, B>(
    inner: &mut S,
    authx: &AuthX,
    requirement: &Requirement,
    mut req: Request<B>,
) -> ResponseFuture<S, B>
where
    S: Service<Request<B>> + Clone,
    E: ClaimsExtra,
    B: http_body::Body,
{
    if authx.passes_preflights() && is_cors_preflight(&req) {
        // Browsers send preflights without credentials; a CORS layer inside the
        // guard must see them to answer them.
        return ResponseFuture::inner(inner.call(req));
    }
    match authorize::<E, B>(authx, requirement, &mut req, true) {
        Ok(None) => ResponseFuture::inner(inner.call(req)),
        Ok(Some(pending)) => {
            // Take the service that was polled ready; leave a clone for the next
            // request (tower's clone-and-swap).
            let clone = inner.clone();
            let ready = std::mem::replace(inner, clone);
            let retry = Retry {
                authx: authx.clone(),
                requirement: requirement.clone(),
                authorize: authorize::<E, B>,
            };
            ResponseFuture::waiting(pending, ready, req, retry)
        }
        Err(error) => ResponseFuture::rejected(authx.reject(&error, head(&req))),
    }
}

/// What the response future needs to finish authorizing a parked request.
pub(crate) struct Retry<B> {
    pub(crate) authx: AuthX,
    pub(crate) requirement: Requirement,
    pub(crate) authorize: Authorize<B>,
}

/// Left in the extensions by an optional guard that found no credential, so
/// extractors can tell "no token" from "no guard".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymous;

#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService, E> tonic::server::NamedService for RequireAuth<S, E> {
    const NAME: &'static str = S::NAME;
}

/// A guard with a name of its own around [`RequireAuth`] (its requirement set
/// by its constructors): the same service, a type that cannot be built weaker.
macro_rules! guard_service {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<S, E = $crate::claims::NoExtra>(super::RequireAuth<S, E>);

        impl<S, E> $name<S, E> {
            /// The wrapped service.
            pub fn get_ref(&self) -> &S {
                self.0.get_ref()
            }

            /// The wrapped service, mutably.
            pub fn get_mut(&mut self) -> &mut S {
                self.0.get_mut()
            }

            /// Unwraps the service.
            pub fn into_inner(self) -> S {
                self.0.into_inner()
            }
        }

        impl<S: Clone, E> Clone for $name<S, E> {
            fn clone(&self) -> Self {
                $name(self.0.clone())
            }
        }

        impl<S: std::fmt::Debug, E> std::fmt::Debug for $name<S, E> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl<S, E, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for $name<S, E>
        where
            super::RequireAuth<S, E>: tower_service::Service<
                http::Request<ReqBody>,
                Response = http::Response<super::ResponseBody<ResBody>>,
            >,
        {
            type Response = http::Response<super::ResponseBody<ResBody>>;
            type Error = <super::RequireAuth<S, E> as tower_service::Service<
                http::Request<ReqBody>,
            >>::Error;
            type Future = <super::RequireAuth<S, E> as tower_service::Service<
                http::Request<ReqBody>,
            >>::Future;

            fn poll_ready(
                &mut self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                self.0.poll_ready(cx)
            }

            fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
                self.0.call(req)
            }
        }

        #[cfg(feature = "tonic")]
        impl<S: tonic::server::NamedService, E> tonic::server::NamedService for $name<S, E> {
            const NAME: &'static str = S::NAME;
        }
    };
}
pub(crate) use guard_service;
