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

/// The client a request comes from, for its fair share of what all clients
/// share: the connection's peer address (a `std::net::SocketAddr` in the
/// request's extensions), an IPv4 address or the /64 of an IPv6 one (a
/// client is handed a whole /64).
pub(crate) fn client_of(extensions: Option<&Extensions>) -> Option<std::net::IpAddr> {
    use std::net::IpAddr;
    let peer = extensions?.get::<std::net::SocketAddr>()?.ip();
    Some(match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
        v4 => v4,
    })
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let of = |addr: &str| {
            let mut extensions = http::Extensions::new();
            extensions.insert(addr.parse::<std::net::SocketAddr>().unwrap());
            super::client_of(Some(&extensions)).unwrap().to_string()
        };
        assert_eq!(of("203.0.113.7:4000"), "203.0.113.7");
        assert_eq!(of("[::ffff:203.0.113.7]:4000"), "203.0.113.7");
        assert_eq!(of("[2001:db8::1]:4000"), of("[2001:db8::ffff:1]:5000"));
        assert_ne!(of("[2001:db8::1]:4000"), of("[2001:db8:0:1::1]:4000"));
        assert_eq!(super::client_of(Some(&http::Extensions::new())), None);
    }
}
