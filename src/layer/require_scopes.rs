//! [`RequireScopes`]: an access token carrying the route's scopes, or `403` with
//! RFC 6750's `insufficient_scope` challenge.
//!
//! A type of its own around [`RequireAuth`](super::RequireAuth) with a scope requirement; it has no
//! `new`, only [`all`](RequireScopes::all) and [`any`](RequireScopes::any), so
//! it cannot be built without the scopes it is named for. An empty scope list
//! refuses every request.

use tower_layer::Layer;

use super::RequireAuthLayer;
use crate::authx::AuthX;
use crate::claims::NoExtra;
use crate::policy::Requirement;

/// Applies [`RequireScopes`]: all of some scopes, or any one of them. A granted
/// `admin:*` covers `admin` and everything below it, as in AuthX.
///
/// ```
/// # use tower_authx::{AuthX, AuthXConfig, RequireScopesLayer};
/// # let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32])?)?;
/// let editors = RequireScopesLayer::all(authx.clone(), ["posts:read", "posts:write"]);
/// let staff = RequireScopesLayer::any(authx, ["admin", "support"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
#[derive(Clone, Debug)]
pub struct RequireScopesLayer<E = NoExtra>(RequireAuthLayer<E>);

super::guard_service! {
    /// A service guarded by [`RequireScopesLayer`]: only an access token with
    /// the required scopes reaches `S`.
    RequireScopes
}

impl RequireScopesLayer<NoExtra> {
    /// Requires an access token with every scope in `scopes`.
    ///
    /// # Panics
    ///
    /// When no token could ever meet it: `scopes` is empty, or names a
    /// wildcard (`admin:*` is granted, never required). A guard that refused
    /// everyone would hide the slip until the first request;
    /// [`AuthX::guard`] returns it as an error instead.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(authx: AuthX, scopes: I) -> Self {
        RequireScopesLayer(checked(
            authx,
            Requirement::access().all_scopes(scopes),
            "all",
        ))
    }

    /// Requires an access token with at least one scope in `scopes`.
    ///
    /// # Panics
    ///
    /// As [`all`](Self::all) does.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(authx: AuthX, scopes: I) -> Self {
        RequireScopesLayer(checked(
            authx,
            Requirement::access().any_scope(scopes),
            "any",
        ))
    }
}

/// The guard for `requirement`, which must be one a token could meet.
fn checked(authx: AuthX, requirement: Requirement, which: &str) -> RequireAuthLayer {
    if let Some(flaw) = requirement.flaw() {
        panic!("RequireScopesLayer::{which}: {flaw}");
    }
    RequireAuthLayer::with_requirement(authx, requirement)
}

impl<E> RequireScopesLayer<E> {
    /// Reads your own claim type `E2` too; the extensions then hold a `Claims<E2>`.
    pub fn with_claims<E2>(self) -> RequireScopesLayer<E2> {
        RequireScopesLayer(self.0.with_claims())
    }
}

impl<Svc> RequireScopes<Svc, NoExtra> {
    /// Guards `inner`: an access token with every scope in `scopes`.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(
        inner: Svc,
        authx: AuthX,
        scopes: I,
    ) -> Self {
        RequireScopesLayer::all(authx, scopes).layer(inner)
    }

    /// Guards `inner`: an access token with at least one scope in `scopes`.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(
        inner: Svc,
        authx: AuthX,
        scopes: I,
    ) -> Self {
        RequireScopesLayer::any(authx, scopes).layer(inner)
    }
}

impl<S, E> Layer<S> for RequireScopesLayer<E> {
    type Service = RequireScopes<S, E>;

    fn layer(&self, inner: S) -> RequireScopes<S, E> {
        RequireScopes(self.0.layer(inner))
    }
}
