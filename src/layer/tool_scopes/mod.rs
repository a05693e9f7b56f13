//! Scopes per MCP tool (feature `mcp`): the MCP authorization spec's scope
//! challenge. An MCP server answers every tool on one URL, so which tool a
//! request calls is in its JSON-RPC body; [`ToolScopesLayer`] reads it and
//! refuses a `tools/call` whose token lacks the tool's scopes with `403`
//! `insufficient_scope`, `scope` (what the tool needs) and `resource_metadata`,
//! before the server runs anything. Clients such as the official TypeScript
//! SDK then ask their authorization server for those scopes and retry.
//!
//! It goes inside a guard ([`RequireScopesLayer`](crate::RequireScopesLayer)
//! for the scopes every MCP request needs), whose verified claims it reads:
//!
//! ```
//! # use tower_authx::{AuthX, AuthXConfig, ProtectedResource, RequireScopesLayer};
//! use tower::ServiceBuilder;
//! use tower_authx::layer::ToolScopesLayer;
//! # let config = AuthXConfig::from_secret([7u8; 32])?.issuer("https://as.example");
//! # let authx = AuthX::new(config.protected_resource(ProtectedResource::new("https://api.example/mcp")))?;
//! # let mcp_service = tower::service_fn(|_req: http::Request<http_body_util::Full<bytes::Bytes>>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//! # });
//! let guarded = ServiceBuilder::new()
//!     .layer(RequireScopesLayer::all(authx.clone(), ["mcp:tools"]))
//!     .layer(
//!         ToolScopesLayer::new(authx)
//!             .tool("whoami", ["mcp:tools"])
//!             .tool("admin_reset", ["mcp:tools", "mcp:admin"]),
//!     )
//!     .service(mcp_service);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A tool it does not list is refused (`403`, with the challenge): a typo in
//! the list, or a tool the server gains later, is never open beyond the
//! guard's scopes unless you say so
//! ([`unlisted_tools_need_only_the_guard`](ToolScopesLayer::unlisted_tools_need_only_the_guard)).
//!
//! It binds each MCP session to whoever opened it: the `Mcp-Session-Id` the
//! server answers a request without one is recorded with the issuer and
//! subject of that request's token, and a request naming that session with
//! anyone else's token (or a session it never saw) is `404`, as the MCP spec
//! answers an unknown session.
//!
//! The body is read whole (at most [`max_body`](ToolScopesLayer::max_body)
//! bytes, 1 MiB by default: larger is `413`; within
//! [`body_timeout`](ToolScopesLayer::body_timeout), 10 s by default: slower
//! is `408`) and handed on unchanged as a [`Full`] body. Only requests that passed the guard are read. A body that is
//! not JSON is `400`; a message that names `method`, `params` or a tool's
//! `name` twice is `400` too, so that no two readers can see two different
//! tools in one message.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{CheckedFuture, EitherBody};
use crate::authx::AuthX;
use crate::claims::{Claims, NoExtra, NumericDate};
use crate::error::AuthError;
use crate::policy::Requirement;
use crate::request::RequestHead;

mod jsonrpc;
mod sessions;

use jsonrpc::tools_called;
use sessions::{MCP_SESSION_ID, Owner, Sessions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest body read by default.
pub const DEFAULT_MAX_MCP_BODY: usize = 1024 * 1024;

/// How long a body may take to arrive by default.
pub const DEFAULT_MCP_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies [`ToolScopes`]: each named tool requires all of its scopes.
#[must_use]
pub struct ToolScopesLayer<E = NoExtra> {
    check: Arc<Check>,
    _claims: PhantomData<fn() -> E>,
}

#[derive(Clone)]
struct Check {
    authx: AuthX,
    tools: HashMap<String, Requirement>,
    /// Tools not in `tools` need only what the guard outside asks.
    unlisted_open: bool,
    max_body: usize,
    body_timeout: Duration,
    sessions: Arc<Sessions>,
}

impl ToolScopesLayer<NoExtra> {
    /// No tool named yet: name each with [`tool`](Self::tool); a call of a
    /// tool not named is refused.
    pub fn new(authx: AuthX) -> Self {
        ToolScopesLayer {
            check: Arc::new(Check {
                authx,
                tools: HashMap::new(),
                unlisted_open: false,
                max_body: DEFAULT_MAX_MCP_BODY,
                body_timeout: DEFAULT_MCP_BODY_TIMEOUT,
                sessions: Arc::default(),
            }),
            _claims: PhantomData,
        }
    }
}

impl<E> ToolScopesLayer<E> {
    /// The tool `name` requires every scope in `scopes` (name them all,
    /// including the guard's: the challenge tells the client exactly these).
    /// A tool with an empty list refuses every call.
    pub fn tool<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        name: &str,
        scopes: I,
    ) -> Self {
        let requirement = Requirement::access().all_scopes(scopes);
        self.check_mut().tools.insert(name.to_owned(), requirement);
        self
    }

    /// Lets a call of a tool not named with [`tool`](Self::tool) through with
    /// only what the guard outside asks (default: refused with 403, so that
    /// a typo or a tool added later is never open by mistake).
    pub fn unlisted_tools_need_only_the_guard(mut self) -> Self {
        self.check_mut().unlisted_open = true;
        self
    }

    /// The largest request body read ([`DEFAULT_MAX_MCP_BODY`] by default).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.check_mut().max_body = bytes;
        self
    }

    /// How long a request body may take to arrive whole
    /// ([`DEFAULT_MCP_BODY_TIMEOUT`] by default); slower is `408`, so that a
    /// client sending a byte now and then cannot hold the request (and what
    /// it buffered) open.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.check_mut().body_timeout = timeout;
        self
    }

    /// Reads the scopes from the guard's `Claims<E2>` (for a guard built
    /// `with_claims::<E2>()`).
    pub fn with_claims<E2>(self) -> ToolScopesLayer<E2> {
        ToolScopesLayer {
            check: self.check,
            _claims: PhantomData,
        }
    }

    fn check_mut(&mut self) -> &mut Check {
        Arc::make_mut(&mut self.check)
    }
}

impl<E> Clone for ToolScopesLayer<E> {
    fn clone(&self) -> Self {
        ToolScopesLayer {
            check: self.check.clone(),
            _claims: PhantomData,
        }
    }
}

impl<E> fmt::Debug for ToolScopesLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolScopesLayer")
            .field("tools", &self.check.tools)
            .field("unlisted_open", &self.check.unlisted_open)
            .field("max_body", &self.check.max_body)
            .field("body_timeout", &self.check.body_timeout)
            .finish()
    }
}

impl<S, E> Layer<S> for ToolScopesLayer<E> {
    type Service = ToolScopes<S, E>;

    fn layer(&self, inner: S) -> ToolScopes<S, E> {
        ToolScopes {
            inner,
            check: self.check.clone(),
            _claims: PhantomData,
        }
    }
}

/// A service whose tools are guarded by [`ToolScopesLayer`]; it hands `S`
/// the request with its body read whole.
pub struct ToolScopes<S, E = NoExtra> {
    inner: S,
    check: Arc<Check>,
    _claims: PhantomData<fn() -> E>,
}

impl<S: Clone, E> Clone for ToolScopes<S, E> {
    fn clone(&self) -> Self {
        ToolScopes {
            inner: self.inner.clone(),
            check: self.check.clone(),
            _claims: PhantomData,
        }
    }
}

impl<S: fmt::Debug, E> fmt::Debug for ToolScopes<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolScopes")
            .field("inner", &self.inner)
            .field("tools", &self.check.tools)
            .finish()
    }
}

impl<S, B, E, ResBody> Service<Request<B>> for ToolScopes<S, E>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone,
    B: Body,
    B::Error: Into<BoxError>,
    E: Send + Sync + 'static,
{
    type Response = Response<EitherBody<ResBody>>;
    type Error = S::Error;
    type Future = ToolScopesFuture<S, B, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service polled ready goes with this request (tower's clone and swap).
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let owner = request.extensions().get::<Claims<E>>().map(Owner::of);
        let session = request.headers().get(&MCP_SESSION_ID).cloned();
        let after = match (&session, owner) {
            // A session is anyone's only if it is theirs.
            (Some(id), Some(owner)) if self.check.sessions.belongs(id.as_bytes(), &owner) => {
                match request.method() == Method::DELETE {
                    true => After::End(id.clone()),
                    false => After::Nothing,
                }
            }
            (Some(_), Some(_)) => {
                let why = "Session not found";
                return ToolScopesFuture::refused(plain(StatusCode::NOT_FOUND, why));
            }
            (None, Some(owner)) => After::Bind(owner),
            (Some(_), None) => {
                tracing::warn!(
                    "tower-authx: ToolScopes found no verified claims for an MCP session; \
                     put it inside a guard (RequireScopesLayer) built with the same claims type"
                );
                let head = RequestHead::of(&request);
                let refusal = self.check.authx.reject(&AuthError::MissingToken, head);
                return ToolScopesFuture::refused(refusal);
            }
            (None, None) => After::Nothing,
        };
        let (parts, body) = request.into_parts();
        let read = ReadTools {
            body: Limited::new(body, self.check.max_body).collect(),
            // Outside a Tokio runtime (no timer) the read is bounded in size only.
            deadline: tokio::runtime::Handle::try_current()
                .ok()
                .map(|_| tokio::time::sleep(self.check.body_timeout)),
            parts: Some(parts),
            check: self.check.clone(),
            _claims: PhantomData,
        };
        ToolScopesFuture {
            inner: CheckedFuture::checking(read, service),
            after,
            sessions: self.check.sessions.clone(),
        }
    }
}

/// What the server's answer means for the sessions.
enum After {
    Nothing,
    /// A request without a session: a session id in the answer is the
    /// caller's.
    Bind(Owner),
    /// The owner's `DELETE`: a successful answer ends the session.
    End(HeaderValue),
}

pin_project! {
    /// Response future of [`ToolScopes`]: reading the body, then the inner
    /// service's future or a refusal; a session the answer opens or ends is
    /// noted.
    pub struct ToolScopesFuture<S, B, E>
    where
        S: Service<Request<Full<Bytes>>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        inner: CheckedFuture<S, Request<Full<Bytes>>, ReadTools<B, E>>,
        after: After,
        sessions: Arc<Sessions>,
    }
}

impl<S, B, E> ToolScopesFuture<S, B, E>
where
    S: Service<Request<Full<Bytes>>>,
    B: Body,
    B::Error: Into<BoxError>,
{
    fn refused(response: Response<Bytes>) -> Self {
        ToolScopesFuture {
            inner: CheckedFuture::refused(response),
            after: After::Nothing,
            sessions: Arc::default(),
        }
    }
}

impl<S, B, E, ResBody> Future for ToolScopesFuture<S, B, E>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    B: Body,
    B::Error: Into<BoxError>,
    E: Send + Sync + 'static,
{
    type Output = Result<Response<EitherBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        if response.status().is_success() {
            match std::mem::replace(this.after, After::Nothing) {
                After::Bind(owner) => {
                    if let Some(id) = response.headers().get(&MCP_SESSION_ID) {
                        this.sessions.bind(id.as_bytes(), owner);
                    }
                }
                After::End(id) => this.sessions.end(id.as_bytes()),
                After::Nothing => {}
            }
        }
        Poll::Ready(Ok(response))
    }
}

impl<S, B, E> fmt::Debug for ToolScopesFuture<S, B, E>
where
    S: Service<Request<Full<Bytes>>>,
    B: Body,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolScopesFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// What [`ToolScopes`] does before its service runs: reads the body
    /// whole and checks the tools it calls; the request to hand on, or the
    /// refusal.
    pub struct ReadTools<B, E>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        body: Collect<Limited<B>>,
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        parts: Option<Parts>,
        check: Arc<Check>,
        _claims: PhantomData<fn() -> E>,
    }
}

impl<B, E> Future for ReadTools<B, E>
where
    B: Body,
    B::Error: Into<BoxError>,
    E: Send + Sync + 'static,
{
    type Output = Result<Request<Full<Bytes>>, Response<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let read = match this.body.poll(cx) {
            Poll::Ready(read) => read,
            Poll::Pending => {
                let Some(deadline) = this.deadline.as_pin_mut() else {
                    return Poll::Pending;
                };
                ready!(deadline.poll(cx));
                let why = "The request body took too long to arrive.";
                return Poll::Ready(Err(plain(StatusCode::REQUEST_TIMEOUT, why)));
            }
        };
        let Some(parts) = this.parts.take() else {
            unreachable!("a read body is handled once");
        };
        let bytes = match read {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<LengthLimitError>() => {
                let why = "The request body is too large.";
                return Poll::Ready(Err(plain(StatusCode::PAYLOAD_TOO_LARGE, why)));
            }
            Err(_) => {
                let why = "The request body could not be read.";
                return Poll::Ready(Err(plain(StatusCode::BAD_REQUEST, why)));
            }
        };
        Poll::Ready(match this.check.refusal::<E>(&parts, &bytes) {
            None => Ok(Request::from_parts(parts, Full::new(bytes))),
            Some(refusal) => Err(refusal),
        })
    }
}

impl<B, E> fmt::Debug for ReadTools<B, E>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadTools").finish_non_exhaustive()
    }
}

impl Check {
    /// The answer to a request that may not go in; `None` lets it through.
    fn refusal<E: Send + Sync + 'static>(
        &self,
        parts: &Parts,
        body: &[u8],
    ) -> Option<Response<Bytes>> {
        if parts.method != Method::POST {
            return None;
        }
        let called = match tools_called(body) {
            Ok(called) => called,
            Err(why) => return Some(plain(StatusCode::BAD_REQUEST, &why)),
        };
        let head = RequestHead::from_parts(parts);
        for tool in &called {
            let Some(requirement) = self.tools.get(tool.as_str()) else {
                if self.unlisted_open {
                    continue;
                }
                let unlisted = AuthError::InsufficientPermissions {
                    needs: format!("the tool '{tool}', which this server does not offer"),
                };
                return Some(self.authx.reject_for(&unlisted, head, None));
            };
            let Some(claims) = parts.extensions.get::<Claims<E>>() else {
                tracing::warn!(
                    tool = tool.as_str(),
                    "tower-authx: ToolScopes found no verified claims; put it inside a guard \
                     (RequireScopesLayer) built with the same claims type"
                );
                return Some(self.authx.reject_for(
                    &AuthError::MissingToken,
                    head,
                    Some(requirement),
                ));
            };
            if let Err(error) = self.authx.check(claims, requirement, NumericDate::now()) {
                return Some(self.authx.reject_for(&error, head, Some(requirement)));
            }
        }
        None
    }
}

/// A plain refusal of the body, not of the credential.
fn plain(status: StatusCode, detail: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(
        serde_json::json!({ "detail": detail }).to_string(),
    ));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
