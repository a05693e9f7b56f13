//! What fails on the server's side rather than being a request's fault: a
//! configuration that cannot work, a fetch of an issuer's documents, a token
//! that could not be issued.

use std::fmt;

/// A configuration the crate will not run with. Returned by constructors, never
/// a panic at request time; the kind says where to look.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key that cannot be used: material of the wrong size or shape, a key
    /// type or `alg` that does not fit its algorithm, a secret too short.
    Key(String),
    /// A setting that cannot work (lifetimes, names, locations, cookies, URLs).
    Setting(String),
    /// A public-key algorithm (or remote-keys' TLS) without a crypto backend:
    /// enable `aws-lc-rs` (a default feature) or `ring`.
    NoBackend,
}

impl ConfigError {
    /// A setting that cannot work.
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        ConfigError::Setting(msg.into())
    }

    /// A key that cannot be used, for `why`.
    pub(crate) fn unusable_key(why: impl Into<String>) -> Self {
        ConfigError::Key(why.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Key(why) => write!(f, "unusable key: {why}"),
            ConfigError::Setting(why) => f.write_str(why),
            ConfigError::NoBackend => {
                f.write_str("public-key algorithms and TLS need a crypto backend: enable the `aws-lc-rs` or `ring` feature")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Fetching an issuer's keys failed (network, HTTP status, body, document).
/// The cached keys keep serving meanwhile; a token whose key cannot be had is
/// answered 503.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// The issuer could not be reached (connect, I/O, TLS handshake).
    Unreachable(String),
    /// The issuer's TLS certificate is not trusted (a wrong CA, a wrong
    /// host): a configuration to fix, not an outage to wait out.
    Untrusted(String),
    /// No answer within the configured timeout.
    TimedOut,
    /// The issuer answered with another status than 200.
    Status(u16),
    /// The body could not be read, or was too large.
    Body(String),
    /// The document is not what was asked for: no JWKS, an OpenID
    /// configuration that is not JSON, names another issuer, or names a
    /// `jwks_uri` we do not fetch from.
    Document(String),
}

impl FetchError {
    /// Whether this is an outage that may pass by itself (unreachable, timed
    /// out, a 5xx or 429), rather than something to fix (an untrusted
    /// certificate, a wrong document, another status).
    pub fn is_outage(&self) -> bool {
        match self {
            FetchError::Unreachable(_) | FetchError::TimedOut => true,
            FetchError::Status(status) => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Unreachable(why) => write!(f, "issuer unreachable: {why}"),
            FetchError::Untrusted(why) => {
                write!(f, "the issuer's certificate is not trusted: {why}")
            }
            FetchError::TimedOut => f.write_str("the fetch from the issuer timed out"),
            FetchError::Status(status) => write!(f, "the issuer answered {status}"),
            FetchError::Body(why) => write!(f, "the issuer's answer: {why}"),
            FetchError::Document(why) => write!(f, "the issuer's document: {why}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// Issuing a token failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueError(pub(crate) String);

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot issue token: {}", self.0)
    }
}

impl std::error::Error for IssueError {}

/// `error` and every cause under it, `: `-separated: a foreign error's
/// `Display` often names only its outermost layer ("client error (Connect)")
/// while the reason (an unknown certificate issuer, a refused connection)
/// is in its sources.
#[cfg(any(feature = "remote-keys", feature = "redis"))]
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text in their own.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
