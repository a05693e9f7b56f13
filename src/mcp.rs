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
//! use tower_authx::mcp::ToolScopesLayer;
//! # let config = AuthXConfig::from_secret([7u8; 32])?.issuer("https://as.example");
//! # let authx = AuthX::new(config.protected_resource(ProtectedResource::new("https://api.example/mcp")))?;
//! # let mcp_service = tower::service_fn(|_req: http::Request<http_body_util::Full<bytes::Bytes>>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//! # });
//! let guarded = ServiceBuilder::new()
//!     .layer(RequireScopesLayer::all(authx.clone(), ["mcp:tools"]))
//!     .layer(ToolScopesLayer::new(authx).tool("admin_reset", ["mcp:tools", "mcp:admin"]))
//!     .service(mcp_service);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The body is read whole (at most [`max_body`](ToolScopesLayer::max_body)
//! bytes, 1 MiB by default: larger is `413`) and handed on unchanged as a
//! [`Full`] body. Only requests that passed the guard are read. A body that is
//! not JSON is `400`; a message that names `method`, `params` or a tool's
//! `name` twice is `400` too, so that no two readers can see two different
//! tools in one message.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tower_layer::Layer;
use tower_service::Service;

use crate::authx::AuthX;
use crate::claims::{Claims, NoExtra, NumericDate};
use crate::error::AuthError;
use crate::layer::{CheckedFuture, ResponseBody};
use crate::policy::Requirement;
use crate::request::RequestHead;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest body read by default.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

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
    max_body: usize,
}

impl ToolScopesLayer<NoExtra> {
    /// No tool named yet: every tool needs only what the guard outside asks.
    pub fn new(authx: AuthX) -> Self {
        ToolScopesLayer {
            check: Arc::new(Check {
                authx,
                tools: HashMap::new(),
                max_body: DEFAULT_MAX_BODY,
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

    /// The largest request body read ([`DEFAULT_MAX_BODY`] by default).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.check_mut().max_body = bytes;
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
            .field("max_body", &self.check.max_body)
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
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service polled ready goes with this request (tower's clone and swap).
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        let read = ReadTools {
            body: Limited::new(body, self.check.max_body).collect(),
            parts: Some(parts),
            check: self.check.clone(),
            _claims: PhantomData,
        };
        CheckedFuture::checking(read, service)
    }
}

/// Response future of [`ToolScopes`]: reading the body, then the inner
/// service's future or a refusal.
pub type ResponseFuture<S, B, E> = CheckedFuture<S, Request<Full<Bytes>>, ReadTools<B, E>>;

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
        let read = ready!(this.body.poll(cx));
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
        if parts.method != Method::POST || self.tools.is_empty() {
            return None;
        }
        let called = match tools_called(body) {
            Ok(called) => called,
            Err(why) => return Some(plain(StatusCode::BAD_REQUEST, &why)),
        };
        let head = RequestHead::from_parts(parts);
        for tool in &called {
            let Some(requirement) = self.tools.get(tool.as_str()) else {
                continue;
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

/// The tools a JSON-RPC message (or batch) calls: the `params.name` of each
/// `tools/call`. Not JSON, not JSON-RPC's shape (an object, or an array of
/// them, whose `params` is an object or an array), or a member named twice,
/// is an error.
fn tools_called(body: &[u8]) -> Result<Vec<String>, String> {
    let Payload(messages) = serde_json::from_slice(body)
        .map_err(|e| format!("The request body is not a JSON-RPC message: {e}"))?;
    Ok(messages
        .into_iter()
        .filter(|m| m.method.as_deref() == Some("tools/call"))
        .filter_map(|m| m.tool)
        .collect())
}

/// One message, or a batch of them.
struct Payload(Vec<Message>);

/// What a message says about tools.
#[derive(Default)]
struct Message {
    method: Option<String>,
    tool: Option<String>,
}

impl<'de> de::Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PayloadVisitor;
        impl<'de> Visitor<'de> for PayloadVisitor {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message or batch")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Payload, A::Error> {
                Ok(Payload(vec![MessageVisitor.visit_map(map)?]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
                let mut messages = Vec::new();
                while let Some(message) = seq.next_element()? {
                    messages.push(message);
                }
                Ok(Payload(messages))
            }
        }
        d.deserialize_any(PayloadVisitor)
    }
}

impl<'de> de::Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut message = Message::default();
        let (mut method_seen, mut params_seen) = (false, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "method" => {
                    once(&mut method_seen, "method")?;
                    message.method = map.next_value::<StringOrNot>()?.0;
                }
                "params" => {
                    once(&mut params_seen, "params")?;
                    message.tool = map.next_value::<Params>()?.0;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(message)
    }
}

/// A member seen for the first time, or the error that it was seen before.
fn once<Er: de::Error>(seen: &mut bool, name: &str) -> Result<(), Er> {
    if std::mem::replace(seen, true) {
        return Err(Er::custom(format!("the member {name:?} is named twice")));
    }
    Ok(())
}

/// `params`: its `name` when that is a string.
struct Params(Option<String>);

impl<'de> de::Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = Params;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON-RPC params (an object, an array or null)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
                let (mut name, mut seen) = (None, false);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "name" {
                        once(&mut seen, "name")?;
                        name = map.next_value::<StringOrNot>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Params(name))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params(None))
            }
            fn visit_unit<Er: de::Error>(self) -> Result<Params, Er> {
                Ok(Params(None))
            }
        }
        d.deserialize_any(ParamsVisitor)
    }
}

/// A `name` or `method`: kept when it is a string, read through otherwise.
struct StringOrNot(Option<String>);

impl<'de> de::Deserialize<'de> for StringOrNot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(StringOrNot(value.as_str().map(str::to_owned)))
    }
}

#[cfg(test)]
mod tests {
    use super::tools_called;

    #[test]
    fn tools_are_read_from_messages_and_batches() {
        let call = |name: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
            )
        };
        assert_eq!(tools_called(call("whoami").as_bytes()).unwrap(), ["whoami"]);
        let batch = format!("[{},{}]", call("a"), call("b"));
        assert_eq!(tools_called(batch.as_bytes()).unwrap(), ["a", "b"]);
        // Members in any order, escapes decoded as every JSON reader does.
        let reordered = r#"{"params":{"arguments":{"name":"x"},"name":"admin\u005freset"},"id":2,"method":"tools/call"}"#;
        assert_eq!(tools_called(reordered.as_bytes()).unwrap(), ["admin_reset"]);
        for quiet in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":null}"#,
            "[]",
        ] {
            assert!(
                tools_called(quiet.as_bytes()).unwrap().is_empty(),
                "{quiet}"
            );
        }
    }

    #[test]
    fn ambiguous_or_broken_bodies_are_refused() {
        for refused in [
            r#"{"method":"tools/call","params":{"name":"admin_reset","name":"whoami"}}"#,
            r#"{"method":"tools/call","params":{"name":"admin_reset"},"params":{"name":"whoami"}}"#,
            r#"{"method":"tools/list","method":"tools/call","params":{"name":"admin_reset"}}"#,
            r#"{"method":"tools/call","params":{"name":"admin_reset"}"#,
            r#"{"method":"tools/call"} {"method":"tools/call"}"#,
            "",
            "not json",
            "null",
            "7",
            "[7]",
            r#"{"method":"tools/call","params":"admin_reset"}"#,
        ] {
            assert!(tools_called(refused.as_bytes()).is_err(), "{refused}");
        }
    }
}
