//! Certificate-bound access tokens (RFC 8705 3): a token whose `cnf` names a
//! certificate's SHA-256 thumbprint (`x5t#S256`) is taken only from a client
//! that presented that certificate in its TLS handshake. The certificate
//! comes from the TLS acceptor, as a [`ClientCertificate`] in the request's
//! extensions, or, opted into, from the RFC 9440 `Client-Cert` header that a
//! TLS-terminating proxy sets, trusted only on connections from that proxy's
//! address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderName;
use sha2::{Digest, Sha256};

use crate::claims::Claims;
use crate::error::{AuthError, InvalidToken};

/// RFC 9440's header, set by a TLS-terminating proxy.
pub(crate) static CLIENT_CERT: HeaderName = HeaderName::from_static("client-cert");

/// The longest `Client-Cert` header read (a certificate chain's leaf is a few
/// KiB; anything longer is refused before decoding).
const MAX_HEADER_LEN: usize = 16 * 1024;

/// The client certificate of the TLS connection a request came on: put it
/// into the request's extensions in your TLS acceptor (the DER of the leaf
/// the client presented), and the guards check certificate-bound tokens
/// against it.
///
/// ```
/// use tower_authx::ClientCertificate;
///
/// # let der: &[u8] = b"the DER bytes of the client's leaf certificate";
/// # let mut request = http::Request::new(());
/// // With tokio-rustls, after the handshake:
/// // let der = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
/// request.extensions_mut().insert(ClientCertificate::from_der(der));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    thumbprint: String,
}

impl ClientCertificate {
    /// The certificate with this DER encoding.
    pub fn from_der(der: &[u8]) -> ClientCertificate {
        ClientCertificate {
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(der)),
        }
    }

    /// The certificate a token's `cnf.x5t#S256` names (to keep a rotated
    /// session bound to it).
    pub(crate) fn of_thumbprint(thumbprint: &str) -> ClientCertificate {
        ClientCertificate {
            thumbprint: thumbprint.to_owned(),
        }
    }

    /// Its SHA-256 thumbprint, base64url, as `cnf.x5t#S256` names it.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
}

/// Where a request's client certificate comes from.
#[derive(Clone, Debug, Default)]
pub(crate) struct CertificateSource {
    /// The proxies whose `Client-Cert` header is trusted (none: the header
    /// never is): a request's peer address (a `SocketAddr` in its
    /// extensions) must be one of them.
    pub(crate) proxies: Arc<[IpAddr]>,
}

/// A request's client certificate, or why none can be taken.
pub(crate) enum Presented {
    None,
    Certificate(ClientCertificate),
    /// The trusted header is there but cannot be read.
    Unreadable(&'static str),
}

impl CertificateSource {
    /// The certificate the acceptor put into `head`'s extensions, else (opted
    /// in, on a connection from a configured proxy) the `Client-Cert`
    /// header's.
    pub(crate) fn of(&self, head: &crate::request::RequestHead<'_>) -> Presented {
        let extensions = head.extensions;
        if let Some(cert) = extensions.and_then(|e| e.get::<ClientCertificate>()) {
            return Presented::Certificate(cert.clone());
        }
        if self.proxies.is_empty() || !head.headers.contains_key(&CLIENT_CERT) {
            return Presented::None;
        }
        // Anyone who can reach us directly could set the header: only a
        // configured proxy's is read.
        let peer = extensions
            .and_then(|e| e.get::<SocketAddr>())
            .map(|addr| addr.ip().to_canonical());
        if !peer.is_some_and(|ip| self.proxies.contains(&ip)) {
            return Presented::Unreadable(
                "the Client-Cert header did not come from a configured proxy",
            );
        }
        let mut values = head.headers.get_all(&CLIENT_CERT).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Presented::Unreadable("two Client-Cert headers");
        };
        match read_header(value.as_bytes()) {
            Some(der) => Presented::Certificate(ClientCertificate::from_der(&der)),
            None => Presented::Unreadable("the Client-Cert header is not a byte sequence"),
        }
    }
}

/// RFC 9440 2.2: an RFC 8941 byte sequence, `:` standard base64 `:`.
fn read_header(value: &[u8]) -> Option<Vec<u8>> {
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let value = value.trim_ascii();
    let inner = value.strip_prefix(b":")?.strip_suffix(b":")?;
    STANDARD.decode(inner).ok().filter(|der| !der.is_empty())
}

/// A certificate-bound token goes only with its certificate; a token bound
/// to no certificate goes with any or none.
pub(crate) fn check_certificate<E>(
    claims: &Claims<E>,
    presented: &Presented,
) -> Result<(), AuthError> {
    let Some(bound) = claims.cnf.as_ref().and_then(|cnf| cnf.x5t_s256.as_deref()) else {
        return Ok(());
    };
    let refuse = |why| Err(AuthError::InvalidToken(InvalidToken::Certificate(why)));
    match presented {
        Presented::Certificate(cert) if cert.thumbprint == bound => Ok(()),
        Presented::Certificate(_) => refuse("the token is bound to another client certificate"),
        Presented::None => refuse("the token is certificate-bound: present its client certificate"),
        Presented::Unreadable(why) => refuse(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_an_rfc_8941_byte_sequence() {
        assert_eq!(read_header(b":AQID:").unwrap(), [1, 2, 3]);
        assert_eq!(read_header(b"  :AQID:  ").unwrap(), [1, 2, 3]);
        for refused in [
            &b"AQID"[..],
            b":AQID",
            b"AQID:",
            b"::",
            b":AQ-D:",
            b":AQID: x",
            b"",
        ] {
            assert!(read_header(refused).is_none(), "{refused:?}");
        }
        assert!(read_header(&vec![b'A'; MAX_HEADER_LEN + 1]).is_none());
    }
}
