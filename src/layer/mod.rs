//! The layers: [`RequireAuth`], [`RequireFresh`] and [`RequireScopes`], in tower-http's shape
//! (`Layer` → `Service` → hand-written `ResponseFuture`, body type kept).
//!
//! A guarded request takes one way: token from the header → verify → policy →
//! claims into the extensions → inner service. Any failure short-circuits into the
//! configured rejection; the inner service is never called.

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

use http::Request;
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::authx::AuthX;
use crate::claims::{Claims, NumericDate};
use crate::error::{AuthError, RequestHead};
use crate::policy::Requirement;

/// What extra-claims types must be to travel in request extensions.
pub trait ClaimsExtra: DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: DeserializeOwned + Clone + Send + Sync + 'static> ClaimsExtra for T {}

/// Verifies the request's token (or reuses claims an outer layer verified) and
/// stores the claims in the extensions.
fn authorize<E: ClaimsExtra, B>(
    authx: &AuthX,
    requirement: &Requirement,
    req: &mut Request<B>,
) -> Result<(), AuthError> {
    if let Some(claims) = req.extensions().get::<Claims<E>>() {
        // Verified by an outer layer of ours: one request, one signature check.
        return authx.check(claims, requirement, NumericDate::now());
    }
    match authx.authenticate::<E>(head(req), requirement) {
        Ok(claims) => {
            req.extensions_mut().insert(claims);
            Ok(())
        }
        Err(AuthError::MissingToken) if requirement.is_optional() => {
            req.extensions_mut().insert(Anonymous);
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Left in the extensions by an optional guard that found no credential, so
/// extractors can tell "no token" from "no guard".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymous;

#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService, E> tonic::server::NamedService for RequireAuth<S, E> {
    const NAME: &'static str = S::NAME;
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
) -> ResponseFuture<S::Future>
where
    S: Service<Request<B>>,
    E: ClaimsExtra,
{
    if authx.passes_as_preflight(&req) {
        // Browsers send preflights without credentials; refusing them breaks CORS.
        return ResponseFuture::inner(inner.call(req));
    }
    match authorize::<E, B>(authx, requirement, &mut req) {
        Ok(()) => ResponseFuture::inner(inner.call(req)),
        Err(error) => ResponseFuture::rejected(authx.reject(&error, head(&req))),
    }
}
