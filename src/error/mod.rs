//! Why a request was refused ([`AuthError`]), and why the crate could not be
//! set up or could not issue ([`ConfigError`], [`IssueError`]). How a refusal
//! becomes a response is `reject/`'s business.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::claims::TokenType;
use crate::policy::{Scopes, Unmet};

mod failure;

#[cfg(any(feature = "remote-keys", feature = "redis"))]
pub(crate) use failure::with_causes;
pub use failure::{ConfigError, FetchError, IssueError};

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
    /// A valid token without the roles, groups or permissions the route's
    /// rule requires, or failing its composition or predicate (403; the
    /// detail names what the route needs, never what the token holds).
    InsufficientPermissions {
        /// What the route's rule needs, as the route names it.
        needs: String,
    },
    /// A valid token whose user did not authenticate strongly enough: the
    /// route's `acr` or `amr` rule (RFC 9470 step-up: 401
    /// `insufficient_user_authentication`, with `acr_values`).
    InsufficientAuthentication {
        /// What the route's rule needs, as the route names it.
        needs: String,
        /// The `acr` values that would do, sent as `acr_values`.
        acr_values: Vec<String>,
    },
    /// A valid token for a user the application's loader does not know
    /// (`LoadUser`): 401 `invalid_token`, or 403 when so configured.
    UnknownUser {
        /// Answered 403 rather than 401.
        forbidden: bool,
    },
    /// The application's user loader could not answer (503; the cause is
    /// logged, never sent).
    UserUnavailable,
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
    /// fetched yet (503, distinct from a bad token's 401): the issuer is
    /// unreachable, or the rate-limited refetch that decides runs in
    /// `retry_after` (sent as `Retry-After`).
    KeysUnavailable {
        /// When the refetch that decides runs (whole seconds, at least one).
        retry_after: std::time::Duration,
    },
    /// The issuer's introspection endpoint gave no usable answer (down, slow,
    /// not 200, oversized or malformed), or the bound on introspection calls
    /// was reached: 503, fail closed, with `Retry-After`.
    IntrospectionUnavailable {
        /// When a call may be made again (whole seconds, at least one).
        retry_after: std::time::Duration,
    },
    /// A JSON body read for its token (`JsonTokenLayer`) is larger than the
    /// configured limit (413).
    BodyTooLarge,
    /// A token could not be issued (a key that only verifies, unwritable
    /// claims): the server's fault, never the client's (500; the detail does
    /// not say why, the log does).
    Issue(IssueError),
    /// A DPoP (RFC 9449) refusal: the proof, its nonce, or the token's binding.
    Dpop(DpopError),
}

/// Why a request was refused under DPoP (RFC 9449).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopError {
    /// The proof is missing, malformed, badly signed, or does not fit this
    /// request (method, URI, time, access token): `invalid_dpop_proof`.
    InvalidProof(&'static str),
    /// The proof was used before: `invalid_dpop_proof`.
    Replayed,
    /// The server's nonce is required and the proof lacks the current one:
    /// `use_dpop_nonce`, with a fresh `DPoP-Nonce` in the answer.
    UseNonce,
    /// The token's binding does not fit how it was presented: a bound token
    /// as Bearer, an unbound one as DPoP, another key, a binding we cannot
    /// check, or Bearer where only DPoP is taken: `invalid_token`.
    Binding(&'static str),
    /// The client's key, or its account, holds as many live proofs as the
    /// replay store allows it: 429 with `Retry-After`, until older proofs
    /// expire. Another client is not affected.
    TooManyProofs,
}

/// How the CSRF double submit failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Certificate-bound (`cnf.x5t#S256`, RFC 8705) and not presented with
    /// that client certificate.
    Certificate(&'static str),
    /// Its issuer's introspection endpoint says it is not active (expired,
    /// revoked, or never issued).
    Inactive,
}

impl AuthError {
    /// The HTTP status of the default rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. }
            | AuthError::InsufficientPermissions { .. }
            | AuthError::UnknownUser { forbidden: true } => StatusCode::FORBIDDEN,
            AuthError::UserUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AuthError::StoreUnavailable
            | AuthError::KeysUnavailable { .. }
            | AuthError::IntrospectionUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Issue(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AuthError::Dpop(DpopError::TooManyProofs) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The gRPC status code of the default rejection of a gRPC request:
    /// 7 `PERMISSION_DENIED` for missing scopes, 14 `UNAVAILABLE` when the
    /// revocation store or the keys are unavailable, 13 `INTERNAL` when a
    /// token could not be issued, 8 `RESOURCE_EXHAUSTED` for too many live
    /// DPoP proofs, else 16 `UNAUTHENTICATED`.
    pub fn grpc_status(&self) -> u8 {
        match self {
            AuthError::InsufficientScope { .. }
            | AuthError::InsufficientPermissions { .. }
            | AuthError::UnknownUser { forbidden: true } => 7,
            AuthError::UserUnavailable => 14,
            AuthError::Dpop(DpopError::TooManyProofs) | AuthError::BodyTooLarge => 8,
            AuthError::StoreUnavailable
            | AuthError::KeysUnavailable { .. }
            | AuthError::IntrospectionUnavailable { .. } => 14,
            AuthError::Issue(_) => 13,
            _ => 16,
        }
    }

    /// The kind of refusal, from a fixed list of names (`missing_token`,
    /// `expired`, `bad_signature`, `revoked`, `dpop_replayed`, ...): what
    /// metrics label and logs can group by; never a value from the request.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InvalidToken(invalid) => match invalid {
                InvalidToken::TooLong => "too_long",
                InvalidToken::Malformed(_) => "malformed",
                InvalidToken::Algorithm => "algorithm",
                InvalidToken::Signature => "bad_signature",
                InvalidToken::Claims(_) => "bad_claims",
                InvalidToken::Expired => "expired",
                InvalidToken::NotYetValid => "not_yet_valid",
                InvalidToken::IssuedInFuture => "issued_in_future",
                InvalidToken::Lifetime => "lifetime",
                InvalidToken::UnknownKey => "unknown_key",
                InvalidToken::Issuer => "issuer",
                InvalidToken::Audience => "audience",
                InvalidToken::Certificate(_) => "certificate_binding",
                InvalidToken::Inactive => "inactive",
            },
            AuthError::WrongTokenType { .. } => "wrong_token_type",
            AuthError::FreshTokenRequired { .. } => "not_fresh",
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::InsufficientPermissions { .. } => "insufficient_permissions",
            AuthError::InsufficientAuthentication { .. } => "insufficient_authentication",
            AuthError::UnknownUser { .. } => "unknown_user",
            AuthError::UserUnavailable => "user_unavailable",
            AuthError::Csrf(CsrfFailure::Missing) => "csrf_missing",
            AuthError::Csrf(CsrfFailure::Mismatch) => "csrf_mismatch",
            AuthError::Revoked => "revoked",
            AuthError::RefreshReused => "refresh_reused",
            AuthError::StoreUnavailable => "store_unavailable",
            AuthError::KeysUnavailable { .. } => "keys_unavailable",
            AuthError::IntrospectionUnavailable { .. } => "introspection_unavailable",
            AuthError::BodyTooLarge => "body_too_large",
            AuthError::Issue(_) => "issue_failed",
            AuthError::Dpop(DpopError::InvalidProof(_)) => "dpop_invalid_proof",
            AuthError::Dpop(DpopError::Replayed) => "dpop_replayed",
            AuthError::Dpop(DpopError::UseNonce) => "dpop_use_nonce",
            AuthError::Dpop(DpopError::Binding(_)) => "dpop_binding",
            AuthError::Dpop(DpopError::TooManyProofs) => "dpop_too_many_proofs",
        }
    }

    /// The RFC 6750 / RFC 9470 `error` code, if the challenge carries one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken
            | AuthError::Csrf(_)
            | AuthError::StoreUnavailable
            | AuthError::KeysUnavailable { .. }
            | AuthError::IntrospectionUnavailable { .. }
            | AuthError::BodyTooLarge
            | AuthError::Dpop(DpopError::TooManyProofs)
            | AuthError::Issue(_) => None,
            AuthError::InvalidRequest(_) => Some("invalid_request"),
            AuthError::InvalidToken(_)
            | AuthError::WrongTokenType { .. }
            | AuthError::Revoked
            | AuthError::RefreshReused => Some("invalid_token"),
            AuthError::FreshTokenRequired { .. } | AuthError::InsufficientAuthentication { .. } => {
                Some("insufficient_user_authentication")
            }
            AuthError::InsufficientPermissions { .. }
            | AuthError::UnknownUser { forbidden: true }
            | AuthError::UserUnavailable => None,
            AuthError::UnknownUser { forbidden: false } => Some("invalid_token"),
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
            AuthError::Dpop(DpopError::InvalidProof(_) | DpopError::Replayed) => {
                Some("invalid_dpop_proof")
            }
            AuthError::Dpop(DpopError::UseNonce) => Some("use_dpop_nonce"),
            AuthError::Dpop(DpopError::Binding(_)) => Some("invalid_token"),
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
            AuthError::UnknownUser { .. } => f.write_str("Unknown user"),
            AuthError::UserUnavailable => f.write_str("User could not be loaded, try again later"),
            AuthError::InsufficientPermissions { needs } => {
                write!(f, "Missing required permissions: {needs}")
            }
            AuthError::InsufficientAuthentication { needs, .. } => {
                write!(f, "Stronger authentication required: {needs}")
            }
            AuthError::Csrf(CsrfFailure::Missing) => f.write_str("Missing CSRF token"),
            AuthError::Revoked => f.write_str("Token has been revoked"),
            AuthError::RefreshReused => {
                f.write_str("Refresh token reuse detected: the session has been revoked")
            }
            AuthError::StoreUnavailable => {
                f.write_str("Token revocation store unavailable, try again later")
            }
            AuthError::KeysUnavailable { .. } => {
                f.write_str("Signing keys unavailable, try again later")
            }
            AuthError::IntrospectionUnavailable { .. } => {
                f.write_str("Token introspection unavailable, try again later")
            }
            AuthError::Issue(_) => f.write_str("Token could not be issued"),
            AuthError::BodyTooLarge => f.write_str("The request body is too large"),
            AuthError::Dpop(DpopError::InvalidProof(why)) => write!(f, "Invalid DPoP proof: {why}"),
            AuthError::Dpop(DpopError::Replayed) => {
                f.write_str("Invalid DPoP proof: the proof was used before")
            }
            AuthError::Dpop(DpopError::UseNonce) => {
                f.write_str("DPoP proof requires the server's current nonce")
            }
            AuthError::Dpop(DpopError::Binding(why)) => write!(f, "Invalid token: {why}"),
            AuthError::Dpop(DpopError::TooManyProofs) => {
                f.write_str("Too many live DPoP proofs for this key or account, slow down")
            }
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
            InvalidToken::Certificate(why) => write!(f, "Invalid token: {why}"),
            InvalidToken::Inactive => f.write_str("Invalid token: not active"),
        }
    }
}

fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

impl std::error::Error for AuthError {}

impl From<Unmet> for AuthError {
    fn from(unmet: Unmet) -> Self {
        match unmet {
            Unmet::TokenType { expected, found } => AuthError::WrongTokenType { expected, found },
            Unmet::Fresh { max_age } => AuthError::FreshTokenRequired { max_age },
            Unmet::Certificate => AuthError::InvalidToken(InvalidToken::Certificate(
                "the route takes only certificate-bound tokens",
            )),
            Unmet::Scopes { required, provided } => {
                AuthError::InsufficientScope { required, provided }
            }
            Unmet::Permissions(rule) => AuthError::InsufficientPermissions {
                needs: rule.to_string(),
            },
            Unmet::Authentication(rule) => AuthError::InsufficientAuthentication {
                needs: rule.to_string(),
                acr_values: rule.named_acr_values(),
            },
        }
    }
}

impl From<DpopError> for AuthError {
    fn from(e: DpopError) -> Self {
        AuthError::Dpop(e)
    }
}

impl From<InvalidToken> for AuthError {
    fn from(e: InvalidToken) -> Self {
        AuthError::InvalidToken(e)
    }
}
