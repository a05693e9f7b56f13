//! Why a request was refused ([`AuthError`]), and how a refusal becomes a response
//! ([`Reject`], with RFC 6750 / RFC 9470 challenges by default).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};

use crate::claims::TokenType;
use crate::policy::Scopes;

/// Why a request was refused. One enum for every step of the way.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential at all, or one with another scheme (RFC 6750 3.1: no error code).
    MissingToken,
    /// The request itself is malformed: two `Authorization` headers, a scheme
    /// without a token, whitespace inside the token (400 `invalid_request`).
    InvalidRequest(&'static str),
    /// The token is not a well-formed, correctly signed, currently valid JWT for us.
    InvalidToken(InvalidToken),
    /// A valid token of the wrong type (a refresh token on an access route).
    WrongTokenType {
        /// What the route accepts.
        expected: TokenType,
        /// What the token is.
        found: TokenType,
    },
    /// A valid token that does not prove a recent login (RFC 9470 step-up).
    FreshTokenRequired {
        /// The configured `auth_time` age limit, sent back as `max_age`.
        max_age: Option<Duration>,
    },
    /// A valid token without the scopes the route requires (403 `insufficient_scope`).
    InsufficientScope {
        /// What the route requires.
        required: Scopes,
        /// What the token carries.
        provided: Vec<String>,
    },
    /// A token from a cookie on a state-changing request without the matching
    /// CSRF value (the double submit failed).
    Csrf(CsrfFailure),
    /// A valid token that was revoked (logout), or whose session was.
    Revoked,
    /// A refresh token presented a second time: its whole session is now revoked
    /// (refresh-token rotation with reuse detection).
    RefreshReused,
    /// The revocation store could not answer, so the token cannot be vouched for
    /// (503; fail closed unless configured otherwise).
    StoreUnavailable,
    /// The token names a key we do not hold and the issuer's JWKS cannot be
    /// fetched (503, distinct from a bad token's 401).
    KeysUnavailable,
}

/// How the CSRF double submit failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsrfFailure {
    /// The CSRF header is missing or empty.
    Missing,
    /// The CSRF header does not equal the token's `csrf` claim (or it has none).
    Mismatch,
}

/// What is wrong with a token. Messages name the fault, never the token.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Longer than the configured maximum; refused before any decoding.
    TooLong,
    /// Not three base64url segments of JSON objects, or an unusable header.
    Malformed(Cow<'static, str>),
    /// `alg` outside the allow-list (including `none` in any casing).
    Algorithm,
    /// The signature does not verify.
    Signature,
    /// The claims are missing, duplicated or of the wrong type.
    Claims(Cow<'static, str>),
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iat` is in the future.
    IssuedInFuture,
    /// `exp - iat` is longer than the configured maximum lifetime.
    Lifetime,
    /// The token's `kid` names no key we hold.
    UnknownKey,
    /// `iss` is missing or not the configured issuer.
    Issuer,
    /// `aud` does not name us, or names anyone while we expect no audience.
    Audience,
}

impl AuthError {
    /// The HTTP status of the default rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthError::StoreUnavailable | AuthError::KeysUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The gRPC status code of the default rejection of a gRPC request:
    /// 7 `PERMISSION_DENIED` for missing scopes, 14 `UNAVAILABLE` when the
    /// revocation store is down, else 16 `UNAUTHENTICATED`.
    pub fn grpc_status(&self) -> u8 {
        match self {
            AuthError::InsufficientScope { .. } => 7,
            AuthError::StoreUnavailable | AuthError::KeysUnavailable => 14,
            _ => 16,
        }
    }

    /// The RFC 6750 / RFC 9470 `error` code, if the challenge carries one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken
            | AuthError::Csrf(_)
            | AuthError::StoreUnavailable
            | AuthError::KeysUnavailable => None,
            AuthError::InvalidRequest(_) => Some("invalid_request"),
            AuthError::InvalidToken(_)
            | AuthError::WrongTokenType { .. }
            | AuthError::Revoked
            | AuthError::RefreshReused => Some("invalid_token"),
            AuthError::FreshTokenRequired { .. } => Some("insufficient_user_authentication"),
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MissingToken => f.write_str("Missing bearer token"),
            AuthError::InvalidRequest(why) => write!(f, "Invalid request: {why}"),
            AuthError::InvalidToken(why) => why.fmt(f),
            AuthError::WrongTokenType { expected, found } => {
                write!(f, "'{expected}' token required, '{found}' token received")
            }
            AuthError::FreshTokenRequired { .. } => f.write_str("Fresh token required"),
            AuthError::Csrf(CsrfFailure::Missing) => f.write_str("Missing CSRF token"),
            AuthError::Revoked => f.write_str("Token has been revoked"),
            AuthError::RefreshReused => {
                f.write_str("Refresh token reuse detected: the session has been revoked")
            }
            AuthError::StoreUnavailable => {
                f.write_str("Token revocation store unavailable, try again later")
            }
            AuthError::KeysUnavailable => f.write_str("Signing keys unavailable, try again later"),
            // AuthX's MSG_CSRFError.
            AuthError::Csrf(CsrfFailure::Mismatch) => {
                f.write_str("CSRF double submit does not match")
            }
            // AuthX's wording, Python list reprs included.
            AuthError::InsufficientScope { required, provided } => write!(
                f,
                "Missing required scopes: {}. Provided: {}",
                python_list(&required.required),
                python_list(provided)
            ),
        }
    }
}

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidToken::TooLong => f.write_str("Invalid token: too long"),
            InvalidToken::Malformed(why) => write!(f, "Invalid token: {why}"),
            InvalidToken::Algorithm => {
                f.write_str("Invalid token: The specified alg value is not allowed")
            }
            InvalidToken::Signature => f.write_str("Signature verification failed"),
            InvalidToken::Claims(why) => write!(f, "Invalid token: {why}"),
            InvalidToken::Expired => f.write_str("Token has expired"),
            InvalidToken::NotYetValid => {
                f.write_str("Invalid token: The token is not yet valid (nbf)")
            }
            InvalidToken::IssuedInFuture => {
                f.write_str("Invalid token: The token is not yet valid (iat)")
            }
            InvalidToken::Lifetime => {
                f.write_str("Invalid token: lifetime exceeds the allowed maximum")
            }
            InvalidToken::UnknownKey => f.write_str("Invalid token: unknown signing key (kid)"),
            InvalidToken::Issuer => f.write_str("Invalid issuer"),
            InvalidToken::Audience => f.write_str("Invalid audience"),
        }
    }
}

fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

impl std::error::Error for AuthError {}

impl From<InvalidToken> for AuthError {
    fn from(e: InvalidToken) -> Self {
        AuthError::InvalidToken(e)
    }
}

/// The parts of the refused request a rejection may look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request URI.
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// Turns a refusal into a response. Implement it (or pass a closure) to shape your
/// own rejections; [`AuthX::default_rejection`](crate::AuthX::default_rejection)
/// is there to delegate to.
pub trait Reject: Send + Sync + 'static {
    /// The response for `error`. The inner service is never called.
    fn reject(&self, error: &AuthError, request: RequestHead<'_>) -> Response<Bytes>;
}

impl<F> Reject for F
where
    F: Fn(&AuthError, RequestHead<'_>) -> Response<Bytes> + Send + Sync + 'static,
{
    fn reject(&self, error: &AuthError, request: RequestHead<'_>) -> Response<Bytes> {
        self(error, request)
    }
}

/// What the default rejection needs from the configuration, and the refusals
/// already built (a refusal costs no formatting the second time).
#[derive(Debug)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) realm: Option<String>,
    /// AuthX's wording for "no token", naming every configured location.
    pub(crate) missing_detail: String,
    pub(crate) csrf_missing_detail: String,
    pub(crate) prepared: RwLock<HashMap<(&'static str, &'static str), Prepared>>,
}

/// A refusal's body and challenge, built once per kind of refusal.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    body: Bytes,
    challenge: Option<HeaderValue>,
}

impl AuthError {
    /// A name for refusals whose wording never changes (for one configuration);
    /// `None` for those that carry values (scopes, serde's messages).
    fn fixed_kind(&self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            AuthError::MissingToken => ("missing", ""),
            AuthError::InvalidRequest(why) => ("request", why),
            AuthError::InvalidToken(InvalidToken::Malformed(Cow::Borrowed(why))) => {
                ("malformed", why)
            }
            AuthError::InvalidToken(InvalidToken::Claims(Cow::Borrowed(why))) => ("claims", why),
            AuthError::InvalidToken(InvalidToken::Malformed(_) | InvalidToken::Claims(_)) => {
                return None;
            }
            AuthError::InvalidToken(other) => ("token", other.fixed_name()),
            AuthError::WrongTokenType { expected, .. } => ("type", expected.as_str()),
            AuthError::FreshTokenRequired { .. } => ("fresh", ""),
            AuthError::InsufficientScope { .. } => return None,
            AuthError::Csrf(CsrfFailure::Missing) => ("csrf", "missing"),
            AuthError::Csrf(CsrfFailure::Mismatch) => ("csrf", "mismatch"),
            AuthError::Revoked => ("revoked", ""),
            AuthError::RefreshReused => ("reused", ""),
            AuthError::StoreUnavailable => ("store", ""),
            AuthError::KeysUnavailable => ("keys", ""),
        })
    }
}

impl InvalidToken {
    fn fixed_name(&self) -> &'static str {
        match self {
            InvalidToken::TooLong => "too_long",
            InvalidToken::Malformed(_) => "malformed",
            InvalidToken::Algorithm => "algorithm",
            InvalidToken::Signature => "signature",
            InvalidToken::Claims(_) => "claims",
            InvalidToken::Expired => "expired",
            InvalidToken::NotYetValid => "nbf",
            InvalidToken::IssuedInFuture => "iat",
            InvalidToken::Lifetime => "lifetime",
            InvalidToken::UnknownKey => "kid",
            InvalidToken::Issuer => "iss",
            InvalidToken::Audience => "aud",
        }
    }
}

impl Challenge {
    /// `401`/`400`/`403`/`503` with `{"detail": ...}` and an RFC 6750
    /// `WWW-Authenticate`; for a gRPC request, a trailers-only gRPC status.
    pub(crate) fn response(&self, error: &AuthError, request: RequestHead<'_>) -> Response<Bytes> {
        if let Some(content_type) = grpc_content_type(request) {
            let detail = self.detail(error);
            let challenge = HeaderValue::from_str(&self.www_authenticate(error, &detail)).ok();
            return grpc_rejection(error, &detail, challenge, content_type);
        }
        let prepared = match error.fixed_kind() {
            Some(kind) => self.prepared_for(kind, error),
            None => self.prepare(error),
        };
        let mut res = Response::new(prepared.body);
        *res.status_mut() = error.status();
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if error.status() == StatusCode::SERVICE_UNAVAILABLE {
            // Not the credential's fault: no challenge, come back soon.
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        } else if let Some(v) = prepared.challenge {
            headers.insert(WWW_AUTHENTICATE, v);
        }
        res
    }

    fn detail<'a>(&'a self, error: &AuthError) -> Cow<'a, str> {
        match error {
            // AuthX's wording, so clients that match on it keep working.
            AuthError::MissingToken => Cow::Borrowed(self.missing_detail.as_str()),
            AuthError::Csrf(CsrfFailure::Missing) => {
                Cow::Borrowed(self.csrf_missing_detail.as_str())
            }
            other => Cow::Owned(other.to_string()),
        }
    }

    fn prepare(&self, error: &AuthError) -> Prepared {
        let detail = self.detail(error);
        Prepared {
            body: Bytes::from(serde_json::json!({ "detail": detail }).to_string()),
            challenge: HeaderValue::from_str(&self.www_authenticate(error, &detail)).ok(),
        }
    }

    /// The prepared refusal of this kind, built on first use. The kinds are
    /// names in the binary, so the map cannot grow with traffic.
    fn prepared_for(&self, kind: (&'static str, &'static str), error: &AuthError) -> Prepared {
        let cached = self
            .prepared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&kind)
            .cloned();
        cached.unwrap_or_else(|| {
            let prepared = self.prepare(error);
            self.prepared
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(kind, prepared.clone());
            prepared
        })
    }

    fn www_authenticate(&self, error: &AuthError, detail: &str) -> String {
        let mut params = Vec::new();
        if let Some(realm) = &self.realm {
            params.push(format!("realm=\"{}\"", quoted_string_safe(realm)));
        }
        if let Some(code) = error.error_code() {
            params.push(format!("error=\"{code}\""));
            params.push(format!(
                "error_description=\"{}\"",
                quoted_string_safe(detail)
            ));
        }
        match error {
            AuthError::FreshTokenRequired { max_age: Some(age) } => {
                params.push(format!("max_age={}", age.as_secs()));
            }
            AuthError::InsufficientScope { required, .. } => {
                let scope = required.required.join(" ");
                params.push(format!("scope=\"{}\"", quoted_string_safe(&scope)));
            }
            _ => {}
        }
        if params.is_empty() {
            self.scheme.clone()
        } else {
            format!("{} {}", self.scheme, params.join(", "))
        }
    }
}

/// The response content type for a gRPC call, `None` for anything else. A gRPC
/// call is a `POST` whose content type is exactly `application/grpc` or
/// `application/grpc-web` (or `-web-text`), optionally with a `+format` suffix
/// and parameters: `application/grpcXYZ` on a JSON route gets a JSON refusal,
/// never an HTTP 200 that looks like success.
fn grpc_content_type(request: RequestHead<'_>) -> Option<&'static str> {
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

/// A gRPC refusal: HTTP 200 and a trailers-only response (status in the headers,
/// no body), so every gRPC client sees `UNAUTHENTICATED`, not a transport error.
fn grpc_rejection(
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
    if let Ok(v) = HeaderValue::try_from(grpc_percent_encode(detail)) {
        headers.insert("grpc-message", v);
    }
    if let Some(v) = challenge {
        headers.insert(WWW_AUTHENTICATE, v);
    }
    res
}

/// gRPC over HTTP/2: `grpc-message` is percent-encoded outside %x20-%x7E and `%`.
fn grpc_percent_encode(s: &str) -> String {
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

/// RFC 6750 3: `error_description` may hold only %x20-21 / %x23-5B / %x5D-7E.
fn quoted_string_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// A configuration the crate will not run with. Returned by constructors, never
/// a panic at request time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        ConfigError(msg.into())
    }

    pub(crate) fn key(e: jsonwebtoken::errors::Error) -> Self {
        ConfigError(format!("unusable key: {e}"))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Issuing a token failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueError(pub(crate) String);

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot issue token: {}", self.0)
    }
}

impl std::error::Error for IssueError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(grpc_percent_encode("a b'c"), "a b'c");
        assert_eq!(grpc_percent_encode("100% é\n"), "100%25 %C3%A9%0A");
    }
}
