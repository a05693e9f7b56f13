//! [`RequireFresh`]: a fresh access token, or the RFC 9470 step-up challenge.
//!
//! A type of its own around [`RequireAuth`](super::RequireAuth) with the fresh requirement, so
//! every way to build it (`RequireFresh::new`, the layer, `ServiceBuilder`)
//! requires freshness: the name never builds a weaker guard.

use tower_layer::Layer;

use super::RequireAuthLayer;
use crate::authx::AuthX;
use crate::claims::NoExtra;
use crate::policy::Requirement;

/// Applies [`RequireFresh`]: a fresh access token (`"fresh": true`, a `fresh`
/// NumericDate not yet past, or an `auth_time` within the configured `max_age`).
///
/// Stacked inside a [`RequireAuthLayer`] built from the same [`AuthX`], it
/// reuses the claims the outer layer verified instead of checking the
/// signature again.
#[must_use]
#[derive(Clone, Debug)]
pub struct RequireFreshLayer<E = NoExtra>(RequireAuthLayer<E>);

super::guard_service! {
    /// A service guarded by [`RequireFreshLayer`]: only a fresh access token
    /// reaches `S`.
    RequireFresh
}

impl RequireFreshLayer<NoExtra> {
    /// Requires a fresh access token.
    pub fn new(authx: AuthX) -> Self {
        RequireFreshLayer(RequireAuthLayer::with_requirement(
            authx,
            Requirement::fresh(),
        ))
    }
}

impl<E> RequireFreshLayer<E> {
    /// Reads your own claim type `E2` too; the extensions then hold a `Claims<E2>`.
    pub fn with_claims<E2>(self) -> RequireFreshLayer<E2> {
        RequireFreshLayer(self.0.with_claims())
    }
}

impl<S> RequireFresh<S, NoExtra> {
    /// Guards `inner`: only a fresh access token reaches it.
    pub fn new(inner: S, authx: AuthX) -> Self {
        RequireFreshLayer::new(authx).layer(inner)
    }
}

impl<S, E> Layer<S> for RequireFreshLayer<E> {
    type Service = RequireFresh<S, E>;

    fn layer(&self, inner: S) -> RequireFresh<S, E> {
        RequireFresh(self.0.layer(inner))
    }
}
