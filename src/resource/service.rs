//! [`ResourceMetadataService`]: serves the RFC 9728 document at its
//! well-known path, readable by browsers on other origins (MCP clients in a
//! web page fetch it cross-origin).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use tower_service::Service;

use super::Published;

/// Serves the protected resource's metadata (RFC 9728 3): `GET` and `HEAD` of
/// [`path`](Self::path) answer the JSON document, cacheable for an hour
/// and readable from any origin (it is public); `OPTIONS` answers a CORS
/// preflight; any other method 405; any other path 404. Get it from
/// [`AuthX::resource_metadata_service`](crate::AuthX::resource_metadata_service);
/// it is built from the same configuration the guards enforce.
///
/// ```
/// # use tower_authx::{AuthX, AuthXConfig, ProtectedResource};
/// # let config = AuthXConfig::from_secret([7u8; 32])?.issuer("https://as.example");
/// let authx = AuthX::new(config.protected_resource(ProtectedResource::new("https://api.example/mcp")))?;
/// let metadata = authx.resource_metadata_service().expect("a protected resource");
/// assert_eq!(metadata.path(), "/.well-known/oauth-protected-resource/mcp");
/// assert_eq!(metadata.url(), "https://api.example/.well-known/oauth-protected-resource/mcp");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ResourceMetadataService {
    published: Arc<Published>,
}

impl ResourceMetadataService {
    pub(crate) fn new(published: Arc<Published>) -> Self {
        ResourceMetadataService { published }
    }

    /// The path to route to this service: `/.well-known/oauth-protected-resource`
    /// followed by the resource's path (RFC 9728 3.1).
    pub fn path(&self) -> &str {
        &self.published.path
    }

    /// The metadata's URL, as every refusal's `resource_metadata` names it.
    pub fn url(&self) -> &str {
        &self.published.url
    }

    fn answer<B>(&self, request: &Request<B>) -> Response<String> {
        let mut response = Response::new(String::new());
        if request.uri().path() != self.published.path {
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
        let method = request.method();
        let (status, headers): (StatusCode, &[(HeaderName, &'static str)]) =
            if method == Method::GET || method == Method::HEAD {
                if method == Method::GET {
                    response.body_mut().clone_from(&self.published.json);
                }
                (
                    StatusCode::OK,
                    &[
                        (CONTENT_TYPE, "application/json"),
                        (CACHE_CONTROL, "public, max-age=3600"),
                    ],
                )
            } else if method == Method::OPTIONS {
                (
                    StatusCode::NO_CONTENT,
                    &[
                        (ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS"),
                        (ACCESS_CONTROL_ALLOW_HEADERS, "mcp-protocol-version"),
                        (ACCESS_CONTROL_MAX_AGE, "86400"),
                    ],
                )
            } else {
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    &[(ALLOW, "GET, HEAD, OPTIONS")],
                )
            };
        *response.status_mut() = status;
        let map = response.headers_mut();
        map.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        for (name, value) in headers {
            map.insert(name.clone(), HeaderValue::from_static(value));
        }
        if status == StatusCode::OK {
            map.insert(CONTENT_LENGTH, HeaderValue::from(self.published.json.len()));
        }
        response
    }
}

impl<B> Service<Request<B>> for ResourceMetadataService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.answer(&request)))
    }
}
