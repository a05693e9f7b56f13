//! [`JsonToken`]: reads an `application/json` body once, for the token a
//! guard inside may take from it ([`TokenLocation::Json`], AuthX's `json`
//! location), and hands the body on whole and unchanged. Any other body
//! streams through untouched.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{CheckedFuture, EitherBody};
use crate::authx::AuthX;
use crate::error::AuthError;
use crate::request::RequestHead;
use crate::source::TokenLocation;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Reads JSON bodies for [`TokenLocation::Json`]: put it outside the guards
/// that take tokens from there. A body whose `Content-Type` is
/// `application/json` is read whole (at most [`max_body`](Self::max_body),
/// 64 KiB by default: larger is `413`; name the routes that take a token in
/// their body with [`only_paths`](Self::only_paths), so that no other
/// route's body, a 404's included, is held in memory for it), its
/// `access_token` and
/// `refresh_token` members (or the configured
/// [`json_keys`](crate::AuthXConfig::json_keys)) kept for the guards, and
/// the very bytes handed on. A body that is not a JSON object, or whose
/// token member is not a string or is named twice, is refused (`400`) only
/// by a guard that gets to the JSON location. Without that location in the
/// configuration, everything passes through untouched.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_authx::layer::{JsonTokenLayer, EitherBody};
/// use tower_authx::{AuthX, AuthXConfig, RequireAuthLayer, TokenLocation};
///
/// let authx = AuthX::new(
///     AuthXConfig::from_secret([7u8; 32])?
///         .token_location([TokenLocation::Headers, TokenLocation::Json]),
/// )?;
/// let service = ServiceBuilder::new()
///     .layer(JsonTokenLayer::new(authx.clone()))
///     .layer(RequireAuthLayer::new(authx))
///     .service_fn(|_req: http::Request<EitherBody<String>>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct JsonTokenLayer {
    authx: AuthX,
    max_body: usize,
    paths: Option<Arc<[String]>>,
}

/// The largest JSON body read by default: a token request's (a token is at
/// most 8 KiB by default) with room for the handler's own members.
pub const DEFAULT_MAX_JSON_BODY: usize = 64 * 1024;

impl JsonTokenLayer {
    /// Reads JSON bodies of at most [`DEFAULT_MAX_JSON_BODY`] for `authx`'s
    /// guards, on every path.
    pub fn new(authx: AuthX) -> Self {
        JsonTokenLayer {
            authx,
            max_body: DEFAULT_MAX_JSON_BODY,
            paths: None,
        }
    }

    /// The largest JSON body read (larger is `413`).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Reads bodies only on these paths (exact; one ending in `/` also
    /// takes every path below it); any other request's body passes through
    /// unread, as it would without the JSON location.
    pub fn only_paths<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Self {
        self.paths = Some(paths.into_iter().map(Into::into).collect());
        self
    }
}

/// Whether `path` is one of `paths` (`None`: every path is).
fn reads_path(paths: Option<&[String]>, path: &str) -> bool {
    paths.is_none_or(|paths| {
        paths
            .iter()
            .any(|p| p == path || (p.ends_with('/') && path.starts_with(p.as_str())))
    })
}

impl<S> Layer<S> for JsonTokenLayer {
    type Service = JsonToken<S>;

    fn layer(&self, inner: S) -> JsonToken<S> {
        JsonToken {
            inner,
            authx: self.authx.clone(),
            max_body: self.max_body,
            paths: self.paths.clone(),
        }
    }
}

/// The service [`JsonTokenLayer`] makes.
#[derive(Clone)]
pub struct JsonToken<S> {
    inner: S,
    authx: AuthX,
    max_body: usize,
    paths: Option<Arc<[String]>>,
}

impl<S: fmt::Debug> fmt::Debug for JsonToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonToken")
            .field("inner", &self.inner)
            .field("max_body", &self.max_body)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// Whether the body is JSON: the media type's essence, in any case, with
/// any parameters (`application/json; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

impl<S, B, ResBody> Service<Request<B>> for JsonToken<S>
where
    S: Service<Request<EitherBody<B>>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = Response<EitherBody<ResBody>>;
    type Error = S::Error;
    type Future = CheckedFuture<S, Request<EitherBody<B>>, ReadJson<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let pipeline = self.authx.pipeline();
        if !pipeline.sources.order.contains(&TokenLocation::Json)
            || !is_json(request.headers())
            || !reads_path(self.paths.as_deref(), request.uri().path())
        {
            return CheckedFuture::calling(self.inner.call(request.map(EitherBody::inner)));
        }
        // Said to be too large: refused before a byte is read.
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            let refusal = self
                .authx
                .reject(&AuthError::BodyTooLarge, RequestHead::of(&request));
            return CheckedFuture::refused(refusal);
        }
        // The service polled ready goes with this request (tower's clone and swap).
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        let read = ReadJson {
            body: Limited::new(body, self.max_body).collect(),
            parts: Some(parts),
            authx: self.authx.clone(),
        };
        CheckedFuture::checking(read, service)
    }
}

pin_project! {
    /// What [`JsonToken`] does before its service runs: reads the JSON body
    /// whole, keeps its tokens for the guards, and hands the bytes on.
    pub struct ReadJson<B>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        body: Collect<Limited<B>>,
        parts: Option<Parts>,
        authx: AuthX,
    }
}

impl<B> Future for ReadJson<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Request<EitherBody<B>>, Response<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let read = ready!(this.body.poll(cx));
        let Some(mut parts) = this.parts.take() else {
            unreachable!("a read body is handled once");
        };
        let bytes = match read {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                let error = if error.is::<LengthLimitError>() {
                    AuthError::BodyTooLarge
                } else {
                    AuthError::InvalidRequest("the request body could not be read")
                };
                let head = RequestHead::from_parts(&parts);
                return Poll::Ready(Err(this.authx.reject(&error, head)));
            }
        };
        let tokens = this.authx.pipeline().sources.json_keys.read(&bytes);
        parts.extensions.insert(tokens);
        Poll::Ready(Ok(Request::from_parts(parts, EitherBody::whole(bytes))))
    }
}

impl<B> fmt::Debug for ReadJson<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadJson").finish_non_exhaustive()
    }
}
