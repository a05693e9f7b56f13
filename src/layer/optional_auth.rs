//! [`OptionalAuth`]: optional authentication. A request without any
//! credential goes in anonymously; one with a credential goes in only with a
//! valid access token.
//!
//! A guard of its own rather than a flag on a requirement: a requirement with
//! scopes or freshness that let anonymous requests through would read as an
//! admin gate and open to anyone. This type carries no requirement at all.

use tower_layer::Layer;

use super::RequireAuthLayer;
use crate::authx::AuthX;
use crate::claims::NoExtra;
use crate::policy::Admission;

/// Applies [`OptionalAuth`]: verifies an access token when one is sent, and
/// lets requests without any credential through without claims (a present
/// but bad, revoked or wrongly typed token is still refused). axum handlers
/// read `Option<Claims>`.
///
/// ```
/// # use tower_authx::{AuthX, AuthXConfig, OptionalAuthLayer};
/// let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32])?)?;
/// let maybe_signed_in = OptionalAuthLayer::new(authx);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// No requirement can be made optional: an "optional admin gate" does not
/// compile.
///
/// ```compile_fail
/// # use tower_authx::Requirement;
/// let admin = Requirement::access().all_scopes(["admin"]).optional();
/// ```
#[must_use]
#[derive(Clone, Debug)]
pub struct OptionalAuthLayer<E = NoExtra>(RequireAuthLayer<E>);

super::guard_service! {
    /// A service guarded by [`OptionalAuthLayer`]: anonymous requests reach
    /// `S` without claims, authenticated ones with their verified claims.
    OptionalAuth
}

impl OptionalAuthLayer<NoExtra> {
    /// Optional authentication with `authx`'s access tokens.
    pub fn new(authx: AuthX) -> Self {
        OptionalAuthLayer(RequireAuthLayer::admitting(authx, Admission::Optional))
    }
}

impl<E> OptionalAuthLayer<E> {
    /// Reads your own claim type `E2` too; the extensions then hold a `Claims<E2>`.
    pub fn with_claims<E2>(self) -> OptionalAuthLayer<E2> {
        OptionalAuthLayer(self.0.with_claims())
    }
}

impl<S> OptionalAuth<S, NoExtra> {
    /// Guards `inner` with optional authentication.
    pub fn new(inner: S, authx: AuthX) -> Self {
        OptionalAuthLayer::new(authx).layer(inner)
    }
}

impl<S, E> Layer<S> for OptionalAuthLayer<E> {
    type Service = OptionalAuth<S, E>;

    fn layer(&self, inner: S) -> OptionalAuth<S, E> {
        OptionalAuth(self.0.layer(inner))
    }
}
