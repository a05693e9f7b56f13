//! What the crate reads of a request: its head, never its body (but for
//! `mcp`'s tool names, read by a layer of its own).

use http::{Extensions, HeaderMap, Method, Request, Uri};

/// The parts of a request that finding a token and shaping a refusal look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request URI.
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request's extensions, where a TLS acceptor put the connection's
    /// [`ClientCertificate`](crate::ClientCertificate) and peer address
    /// (`std::net::SocketAddr`); `None` when there are none at hand (a
    /// certificate-bound token is then refused).
    pub extensions: Option<&'a Extensions>,
}

impl<'a> RequestHead<'a> {
    /// The head of `request`.
    pub fn of<B>(request: &'a Request<B>) -> Self {
        RequestHead {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: Some(request.extensions()),
        }
    }

    /// The head of a request taken apart.
    pub fn from_parts(parts: &'a http::request::Parts) -> Self {
        RequestHead {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: Some(&parts.extensions),
        }
    }
}
