//! The gRPC shape of a refusal: a trailers-only status, so every gRPC client
//! (tonic, grpc-go, Python, .NET, grpc-web) sees `UNAUTHENTICATED`, not a
//! transport error.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Response};

use crate::error::AuthError;
use crate::request::RequestHead;

/// The response content type for a gRPC call, `None` for anything else. A gRPC
/// call is a `POST` whose content type is exactly `application/grpc` or
/// `application/grpc-web` (or `-web-text`), optionally with a `+format` suffix
/// and parameters: `application/grpcXYZ` on a JSON route gets a JSON refusal,
/// never an HTTP 200 that looks like success.
pub(crate) fn content_type(request: RequestHead<'_>) -> Option<&'static str> {
    if request.method != Method::POST {
        return None;
    }
    let value = request.headers.get(CONTENT_TYPE)?.as_bytes();
    let essence = value
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let (base, format) = match essence.iter().position(|b| *b == b'+') {
        Some(plus) => (&essence[..plus], Some(&essence[plus + 1..])),
        None => (essence, None),
    };
    let format_ok = format.is_none_or(|f| {
        !f.is_empty()
            && f.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(b))
    });
    if !format_ok {
        return None;
    }
    [
        "application/grpc",
        "application/grpc-web",
        "application/grpc-web-text",
    ]
    .into_iter()
    .find(|name| base.eq_ignore_ascii_case(name.as_bytes()))
}

/// HTTP 200 and a trailers-only response (status in the headers, no body).
pub(crate) fn refusal(
    error: &AuthError,
    detail: &str,
    challenge: Option<HeaderValue>,
    content_type: &'static str,
) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "grpc-status",
        HeaderValue::from(u16::from(error.grpc_status())),
    );
    if let Ok(v) = HeaderValue::try_from(percent_encode(detail)) {
        headers.insert("grpc-message", v);
    }
    if let Some(v) = challenge {
        headers.insert(WWW_AUTHENTICATE, v);
    }
    res
}

/// gRPC over HTTP/2: `grpc-message` is percent-encoded outside %x20-%x7E and `%`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("a b'c"), "a b'c");
        assert_eq!(percent_encode("100% é\n"), "100%25 %C3%A9%0A");
    }
}
