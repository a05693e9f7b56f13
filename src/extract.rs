//! axum extractors (feature `axum`): `Claims<E>` and `Option<Claims<E>>` read
//! what a guard layer verified. Without a guard they fail loudly, naming the fix.

use std::any::type_name;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::claims::Claims;
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
        write!(
            f,
            "tower-authx: the {extractor} extractor found no verified Claims<{ty}> in the request. \
             Guard the route with `.layer({layer})` or `.route_layer({layer})`, \
             adding `.with_claims::<{ty}>()` when using your own claims type",
            ty = self.claims_type
        )
    }
}

impl std::error::Error for MissingAuthLayer {}

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
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
