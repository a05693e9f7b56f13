//! [`RequireFresh`]: a fresh access token, or the RFC 9470 step-up challenge.
//!
//! It is [`RequireAuth`] with the fresh requirement: one middleware, one future.

use tower_layer::Layer;

use super::{RequireAuth, RequireAuthLayer};
use crate::authx::AuthX;
use crate::claims::NoExtra;
use crate::policy::Requirement;

/// Applies [`RequireFresh`]: a fresh access token (`"fresh": true`, a `fresh`
/// NumericDate not yet past, or an `auth_time` within the configured `max_age`).
///
/// Stacked inside a [`RequireAuthLayer`], it reuses the claims the outer layer
/// verified instead of checking the signature again.
#[must_use]
#[derive(Clone, Debug)]
pub struct RequireFreshLayer<E = NoExtra>(RequireAuthLayer<E>);

/// A service guarded by [`RequireFreshLayer`].
pub type RequireFresh<S, E = NoExtra> = RequireAuth<S, E>;

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

impl<S, E> Layer<S> for RequireFreshLayer<E> {
    type Service = RequireFresh<S, E>;

    fn layer(&self, inner: S) -> RequireFresh<S, E> {
        self.0.layer(inner)
    }
}
