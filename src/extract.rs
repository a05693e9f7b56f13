//! axum extractors (feature `axum`): `Claims<E>`, `Option<Claims<E>>` and
//! `Permissions` read what a guard layer verified, `User<U>` what
//! `LoadUserLayer` loaded. Without a guard they fail loudly, naming the fix.

use std::any::type_name;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::claims::{Claims, Permissions};
use crate::layer::User;
use crate::pipeline::{Anonymous, ClaimsExtra};

/// The extractor found no claims because no guard layer ran on the route (or
/// one ran with another claims type). A server bug, so `500`, and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingAuthLayer {
    claims_type: &'static str,
    optional: bool,
}

impl fmt::Display for MissingAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (extractor, layer) = if self.optional {
            ("Option<Claims>", "OptionalAuthLayer::new(authx)")
        } else {
            ("Claims", "RequireAuthLayer::new(authx)")
        };
        // Your own claims type needs the layer to read it; the default needs nothing.
        let (claims, layer) = if self.claims_type == type_name::<crate::NoExtra>() {
            ("Claims".to_owned(), layer.to_owned())
        } else {
            let ty = short_name(self.claims_type);
            (
                format!("Claims<{ty}>"),
                format!("{layer}.with_claims::<{ty}>()"),
            )
        };
        write!(
            f,
            "tower-authx: the {extractor} extractor found no verified {claims} in the request. \
             Guard the route with `.layer({layer})` or `.route_layer({layer})`"
        )
    }
}

impl std::error::Error for MissingAuthLayer {}

/// A type's name as its user writes it: `my_app::claims::Tenant` is `Tenant`
/// (module paths are lowercase; type names are not).
fn short_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            // A lowercase segment before `::` is a module: dropped.
            if !segment.starts_with(|c: char| c.is_ascii_lowercase()) {
                out.push_str(&segment);
                out.push_str("::");
            }
            segment.clear();
        } else if c.is_alphanumeric() || c == '_' {
            segment.push(c);
        } else {
            out.push_str(&segment);
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(&segment);
    out
}

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        server_bug(&self)
    }
}

/// A refusal in the guards' default shape (its status, an RFC 6750
/// `WWW-Authenticate`, `{"detail": ...}`), so that a handler can return
/// `authx.verify(&token, &requirement).await?`. What your `AuthX` configures
/// (a realm, its token locations in the "no token" wording, `on_reject`)
/// needs the `AuthX` and the request: answer `authx.reject(&error, head)`
/// for that.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use tower_authx::{AuthError, AuthX, Claims, Requirement};
///
/// // A handler's body, returning the error as axum's answer.
/// async fn whoami(authx: AuthX, token: &str) -> Result<String, AuthError> {
///     let claims: Claims = authx.verify(token, &Requirement::access()).await?;
///     Ok(claims.sub)
/// }
///
/// let refused = AuthError::MissingToken.into_response();
/// assert_eq!(refused.status(), 401);
/// assert!(refused.headers()["www-authenticate"].to_str()?.starts_with("Bearer"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl IntoResponse for crate::error::AuthError {
    fn into_response(self) -> Response {
        let uri = http::Uri::from_static("/");
        let headers = http::HeaderMap::new();
        let head = crate::request::RequestHead {
            method: &http::Method::GET,
            uri: &uri,
            headers: &headers,
            extensions: None,
        };
        let mut response = crate::reject::Challenge::plain().response(&self, head, None);
        response.extensions_mut().insert(self);
        response.map(axum_core::body::Body::from)
    }
}

/// A route wired without the layer its extractor reads: logged, and `500`
/// with the fix.
fn server_bug(missing: &dyn fmt::Display) -> Response {
    tracing::error!("{missing}");
    (StatusCode::INTERNAL_SERVER_ERROR, missing.to_string()).into_response()
}

/// The verified claims; the route must be guarded by `RequireAuthLayer` (or
/// `RequireFreshLayer`, `RequireScopesLayer`) with the same claims type.
impl<S, E> FromRequestParts<S> for Claims<E>
where
    S: Send + Sync,
    E: ClaimsExtra,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims<E>>()
            .cloned()
            .ok_or(MissingAuthLayer {
                claims_type: type_name::<E>(),
                optional: false,
            })
    }
}

/// `Option<Claims<E>>`: `None` when an optional guard
/// ([`OptionalAuthLayer`](crate::OptionalAuthLayer)) saw no
/// credential at all. A bad credential never reaches the handler.
impl<S, E> OptionalFromRequestParts<S> for Claims<E>
where
    S: Send + Sync,
    E: ClaimsExtra,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Claims<E>>() {
            return Ok(Some(claims.clone()));
        }
        if parts.extensions.get::<Anonymous>().is_some() {
            return Ok(None);
        }
        Err(MissingAuthLayer {
            claims_type: type_name::<E>(),
            optional: true,
        })
    }
}

/// The verified token's [`Permissions`] (roles, groups or permissions read
/// from its issuer's [`Idp`](crate::Idp) claim paths), on a route guarded with
/// the default claims type. (With your own claims type, take `Claims<E>` and
/// call [`permissions`](Claims::permissions).)
impl<S> FromRequestParts<S> for Permissions
where
    S: Send + Sync,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims>()
            .map(|claims| claims.permissions().clone())
            .ok_or(MissingAuthLayer {
                claims_type: type_name::<crate::NoExtra>(),
                optional: false,
            })
    }
}

/// The [`User`] extractor found no user: no `LoadUserLayer` ran on the
/// route (or one loaded another type). A server bug, so `500`, and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingUserLayer {
    user_type: &'static str,
}

impl fmt::Display for MissingUserLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tower-authx: the User<{}> extractor found no loaded user in the request. \
             Put `LoadUserLayer::new(authx, loader)` inside the route's guard",
            short_name(self.user_type)
        )
    }
}

impl std::error::Error for MissingUserLayer {}

impl IntoResponse for MissingUserLayer {
    fn into_response(self) -> Response {
        server_bug(&self)
    }
}

/// The user a [`LoadUserLayer`](crate::layer::LoadUserLayer) loaded for the
/// verified claims.
impl<S, U> FromRequestParts<S> for User<U>
where
    S: Send + Sync,
    U: Clone + Send + Sync + 'static,
{
    type Rejection = MissingUserLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<User<U>>()
            .cloned()
            .ok_or(MissingUserLayer {
                user_type: type_name::<U>(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn type_names_read_as_written() {
        assert_eq!(short_name("my_app::claims::Tenant"), "Tenant");
        assert_eq!(short_name("alloc::vec::Vec<my_app::Role>"), "Vec<Role>");
        assert_eq!(short_name("Outer::Inner"), "Outer::Inner");
        assert_eq!(short_name("serde_json::value::Value"), "Value");
    }
}
