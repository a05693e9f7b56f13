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
use crate::error::{AuthError, RequestHead};
use crate::policy::Requirement;
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
    if let Some(claims) = req.extensions().get::<Claims<E>>() {
        // Verified (and checked against the store) by an outer layer of ours:
        // one request, one signature check, one store lookup.
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
    let pending = match authx
        .revocation_check(&claims)
        .map(StoreFuture::now_or_later)
    {
        None => None,
        Some(Ok(answer)) => {
            authx.revocation_verdict(answer)?;
            None
        }
        Some(Err(pending)) => Some(Pending::Revocation(pending)),
    };
    req.extensions_mut().insert(claims);
    Ok(pending)
}

fn head<B>(req: &Request<B>) -> RequestHead<'_> {
    RequestHead {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
    }
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
{
    if authx.passes_as_preflight(&req) {
        // Browsers send preflights without credentials; refusing them breaks CORS.
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
