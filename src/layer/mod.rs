//! Every layer of the crate, in tower-http's shape (`Layer` → `Service` →
//! hand-written future, body type kept): the guards ([`RequireAuth`],
//! [`RequireFresh`], [`RequireScopes`], [`OptionalAuth`]), and the layers that
//! work beside them: [`LoadUser`] (a user from the verified claims),
//! [`JsonToken`] (a token in a JSON body), [`ImplicitRefresh`] (cookie
//! sessions renewed near expiry) and, with the `mcp` feature, `ToolScopes`
//! (scopes per MCP tool, read from the JSON-RPC body); with `streams`,
//! `EndWithCredential` (a response stream or a WebSocket ends with its
//! credential).
//!
//! A guarded request takes the pipeline's one way (see `pipeline/`): token
//! from its location → key → verify → CSRF → policy → revocation store → claims
//! into the extensions → inner service. Any failure short-circuits into the
//! configured rejection; the inner service is never called.

mod body;
mod checked;
#[cfg(feature = "streams")]
mod credential_end;
mod future;
mod json_token;
mod load_user;
mod optional_auth;
mod require_auth;
mod require_fresh;
mod require_scopes;
#[cfg(feature = "mcp")]
mod tool_scopes;

pub use crate::session::{ImplicitRefresh, ImplicitRefreshFuture, ImplicitRefreshLayer};
pub use body::EitherBody;
pub use checked::CheckedFuture;
#[cfg(feature = "streams")]
#[cfg_attr(docsrs, doc(cfg(feature = "streams")))]
pub use credential_end::{
    CredentialBody, EndWithCredential, EndWithCredentialFuture, EndWithCredentialLayer, Ended,
    LiveCredential, Renewal,
};
pub use future::ResponseFuture;
pub use json_token::{DEFAULT_MAX_JSON_BODY, JsonToken, JsonTokenLayer, ReadJson};
pub use load_user::{LoadError, LoadUser, LoadUserLayer, UnknownUser, User};
pub use optional_auth::{OptionalAuth, OptionalAuthLayer};
pub use require_auth::{RequireAuth, RequireAuthLayer};
pub use require_fresh::{RequireFresh, RequireFreshLayer};
pub use require_scopes::{RequireScopes, RequireScopesLayer};
#[cfg(feature = "mcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "mcp")))]
pub use tool_scopes::{
    DEFAULT_MAX_MCP_BODY, DEFAULT_MCP_BODY_TIMEOUT, ReadTools, ToolScopes, ToolScopesFuture,
    ToolScopesLayer,
};

use http::Request;
use tower_service::Service;

use crate::authx::AuthX;
use crate::error::AuthError;
use crate::observe::{Observation, Outcome};
use crate::policy::Admission;
use crate::request::RequestHead;
use crate::source::Sources;

pub use crate::pipeline::ClaimsExtra;

/// A CORS preflight and nothing else: `OPTIONS` with `Origin` and one
/// `Access-Control-Request-Method`, no content type, no body, and no
/// credential in any configured location (the configured header, cookies,
/// the query) nor a DPoP proof. Anything that a service behind the guard could
/// take for a real call (a gRPC request, which tonic serves whatever the
/// method; a body; a credential) is guarded as usual.
fn is_cors_preflight<B: http_body::Body>(req: &Request<B>, sources: &Sources) -> bool {
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
        && !headers.contains_key(&sources.header.name)
        && !headers.contains_key(COOKIE)
        && !headers.contains_key("dpop")
        && !headers.contains_key(CONTENT_TYPE)
        && !headers.contains_key(TRANSFER_ENCODING)
        && headers.get_all(CONTENT_LENGTH).iter().all(|v| v == "0")
        && (req.body().is_end_stream() || req.body().size_hint().exact() == Some(0))
        && matches!(
            sources.find(
                RequestHead::of(req),
                req.extensions().get::<crate::source::JsonTokens>(),
                None
            ),
            Err(AuthError::MissingToken)
        )
}

/// One guarded call: the pipeline as far as it goes now, then the inner
/// service, a refusal, or a wait.
fn call_guarded<S, E, B>(
    inner: &mut S,
    authx: &AuthX,
    admission: &Admission,
    mut req: Request<B>,
) -> ResponseFuture<S, B, E>
where
    S: Service<Request<B>> + Clone,
    E: ClaimsExtra,
    B: http_body::Body,
{
    let pipeline = authx.pipeline();
    if pipeline.pass_preflight && is_cors_preflight(&req, &pipeline.sources) {
        // Browsers send preflights without credentials; a CORS layer inside the
        // guard must see them to answer them. Only a CORS answer goes back: any
        // other is replaced by the refusal the request would have had.
        let refusal = authx.reject_for(
            &AuthError::MissingToken,
            RequestHead::of(&req),
            Some(admission.requirement()),
        );
        return ResponseFuture::preflight(inner.call(req), refusal);
    }
    let observation = Observation::start(admission.kind());
    let started =
        observation.in_span(|| pipeline.start::<E, B>(admission, &mut req, &observation.notes));
    observation.decided_locally(pipeline);
    match started {
        Ok(None) => {
            observation.finish(pipeline, admitted::<E, B>(&req));
            ResponseFuture::inner(inner.call(req))
        }
        Ok(Some(pending)) => {
            // Take the service that was polled ready; leave a clone for the next
            // request (tower's clone-and-swap).
            let clone = inner.clone();
            let ready = std::mem::replace(inner, clone);
            ResponseFuture::waiting(
                pending,
                ready,
                req,
                authx.clone(),
                admission.requirement().clone(),
                observation,
            )
        }
        Err(error) => {
            observation.finish(pipeline, Outcome::Refused(&error));
            ResponseFuture::rejected(authx.reject_for(
                &error,
                RequestHead::of(&req),
                Some(admission.requirement()),
            ))
        }
    }
}

/// How a request the pipeline let through went in: with claims, or
/// anonymously through an optional guard (looked up only for metrics).
#[cfg_attr(not(feature = "metrics"), allow(clippy::extra_unused_type_parameters))]
pub(super) fn admitted<E: ClaimsExtra, B>(req: &Request<B>) -> Outcome<'_> {
    #[cfg(feature = "metrics")]
    {
        if req
            .extensions()
            .get::<crate::pipeline::Anonymous>()
            .is_some()
        {
            return Outcome::Anonymous;
        }
        Outcome::Allowed {
            subject: req
                .extensions()
                .get::<crate::claims::Claims<E>>()
                .map(|c| c.sub.as_str()),
        }
    }
    #[cfg(not(feature = "metrics"))]
    {
        let _ = req;
        Outcome::Anonymous
    }
}

#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService, E> tonic::server::NamedService for RequireAuth<S, E> {
    const NAME: &'static str = S::NAME;
}

/// A guard with a name of its own around [`RequireAuth`] (its requirement set
/// by its constructors): the same service, a type that cannot be built weaker.
macro_rules! guard_service {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<S, E = $crate::claims::NoExtra>($crate::layer::RequireAuth<S, E>);

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
            $crate::layer::RequireAuth<S, E>: tower_service::Service<
                http::Request<ReqBody>,
                Response = http::Response<$crate::layer::EitherBody<ResBody>>,
            >,
        {
            type Response = http::Response<$crate::layer::EitherBody<ResBody>>;
            type Error = <$crate::layer::RequireAuth<S, E> as tower_service::Service<
                http::Request<ReqBody>,
            >>::Error;
            type Future = <$crate::layer::RequireAuth<S, E> as tower_service::Service<
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
