//! The hyper examples' JSON answers, FastAPI-shaped.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower_authx::Claims;

/// One body type for every route of a hyper example.
pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// An answer that carries tokens: never stored by a cache (RFC 6749 5.1).
pub fn token_response(body: Value) -> Response<Full<Bytes>> {
    let mut res = json_response(StatusCode::OK, body);
    no_store(res.headers_mut());
    res
}

/// `Cache-Control: no-store` and `Pragma: no-cache`.
pub fn no_store(headers: &mut http::HeaderMap) {
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    headers.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
}

pub fn detail(status: StatusCode, detail: &str) -> Response<Full<Bytes>> {
    json_response(status, json!({ "detail": detail }))
}

pub fn not_found() -> Response<Body> {
    boxed(detail(StatusCode::NOT_FOUND, "Not Found"))
}

pub fn method_not_allowed(allowed: &Method) -> Response<Body> {
    let mut res = detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    res.headers_mut().insert(
        ALLOW,
        HeaderValue::from_str(allowed.as_str()).expect("a method is a valid header"),
    );
    boxed(res)
}

pub fn boxed<B>(res: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    res.map(|b| b.map_err(Into::into).boxed())
}

/// The claims the guard stored; the handlers only run behind a guard. Their
/// connection has authenticated: it keeps its place under pressure.
pub fn verified<B>(req: &Request<B>) -> &Claims {
    super::server::authenticated(req.extensions());
    req.extensions()
        .get::<Claims>()
        .expect("handler mounted behind a tower-authx layer")
}
