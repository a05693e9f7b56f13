//! How a refusal becomes a response. The reason is an [`AuthError`]; the
//! answer keeps the protocol's shape: HTTP (status, JSON `detail`, RFC 6750 /
//! RFC 9470 challenge) or gRPC (a trailers-only status). Your [`Reject`] hook
//! receives the default answer to adjust; a gRPC call keeps its gRPC answer
//! unless you hook gRPC refusals too. Every refusal carries its `AuthError`
//! in the response's extensions, for logs and metrics further out.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};

use crate::error::AuthError;
use crate::policy::Scopes;
use crate::request::RequestHead;

mod challenge;
mod grpc;

pub(crate) use self::challenge::{Challenge, DpopChallenge, Places, missing_details};

/// A refusal on its way out: why, to what request, and the answer the crate
/// would send. A [`Reject`] hook turns it into the response to send.
#[derive(Debug)]
#[non_exhaustive]
pub struct Refusal<'a> {
    /// Why the request is refused.
    pub error: &'a AuthError,
    /// The refused request.
    pub request: RequestHead<'a>,
    /// The `detail` of the default answer, as sent (AuthX's wording, which
    /// for "no token" names the configured locations).
    pub detail: &'a str,
    /// The default answer: for HTTP the status, `WWW-Authenticate` (or
    /// `Retry-After`) and the JSON body; for a gRPC call the trailers-only
    /// status (`grpc-status`, `grpc-message`).
    pub response: Response<Bytes>,
}

impl Refusal<'_> {
    /// Whether the refused request is a gRPC call (it then gets a gRPC answer).
    pub fn is_grpc(&self) -> bool {
        grpc::content_type(self.request).is_some()
    }

    /// The default answer's `WWW-Authenticate` challenge, if it has one.
    pub fn challenge(&self) -> Option<&str> {
        self.response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
    }

    /// The default answer with your body in place of the JSON detail: status,
    /// challenge and every other header kept.
    pub fn with_body(self, content_type: HeaderValue, body: impl Into<Bytes>) -> Response<Bytes> {
        let (mut parts, _) = self.response.into_parts();
        parts.headers.insert(CONTENT_TYPE, content_type);
        parts.headers.remove(CONTENT_LENGTH);
        Response::from_parts(parts, body.into())
    }
}

/// Shapes refusals. Implement it, or pass a closure
/// `|refusal: Refusal<'_>| -> Response<Bytes>` to
/// [`AuthXConfig::on_reject`](crate::AuthXConfig::on_reject) (HTTP refusals)
/// or [`on_grpc_reject`](crate::AuthXConfig::on_grpc_reject) (gRPC calls).
///
/// ```
/// use http::HeaderValue;
/// use tower_authx::{AuthXConfig, Refusal};
///
/// // Keep status and challenge, write your own body.
/// let config = AuthXConfig::from_secret([7u8; 32])?.on_reject(|refusal: Refusal<'_>| {
///     let body = format!(r#"{{"error":{{"message":{:?}}}}}"#, refusal.detail);
///     refusal.with_body(HeaderValue::from_static("application/json"), body)
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Reject: Send + Sync + 'static {
    /// The response to send for `refusal`. The inner service is never called.
    fn reject(&self, refusal: Refusal<'_>) -> Response<Bytes>;
}

impl<F> Reject for F
where
    F: Fn(Refusal<'_>) -> Response<Bytes> + Send + Sync + 'static,
{
    fn reject(&self, refusal: Refusal<'_>) -> Response<Bytes> {
        self(refusal)
    }
}

/// The default answers and the user's hooks, one per protocol.
pub(crate) struct Answers {
    pub(crate) challenge: Challenge,
    pub(crate) http: Option<Arc<dyn Reject>>,
    pub(crate) grpc: Option<Arc<dyn Reject>>,
}

impl Answers {
    /// The crate's own answer to `error`.
    /// `scopes`: those of the refusing route, for a protected resource's 401.
    pub(crate) fn default(
        &self,
        error: &AuthError,
        request: RequestHead<'_>,
        scopes: Option<&Scopes>,
    ) -> Response<Bytes> {
        self.challenge.response(error, request, scopes)
    }

    /// The answer to send: the default, through the hook for its protocol if
    /// there is one, with the reason in its extensions.
    pub(crate) fn refuse(
        &self,
        error: &AuthError,
        request: RequestHead<'_>,
        scopes: Option<&Scopes>,
    ) -> Response<Bytes> {
        let response = self.default(error, request, scopes);
        let hook = if grpc::content_type(request).is_some() {
            &self.grpc
        } else {
            &self.http
        };
        let mut response = match hook {
            None => response,
            Some(hook) => hook.reject(Refusal {
                error,
                request,
                detail: &self.challenge.detail(error, request),
                response,
            }),
        };
        response.extensions_mut().insert(error.clone());
        response
    }
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers")
            .field("http_hook", &self.http.is_some())
            .field("grpc_hook", &self.grpc.is_some())
            .finish_non_exhaustive()
    }
}
