//! The rules a token of one issuer is checked by, in one value that
//! [`AuthX::rules`](crate::AuthX::rules) shows and prints: what the guards
//! require of it, whatever the entry point.

use std::fmt;
use std::time::Duration;

use crate::claims::{Idp, Wildcards};
use crate::keys::Algorithm;

/// How one issuer's tokens are checked (or, without issuers, our own
/// keys'): its `iss`, the audiences, the algorithms of the keys held, the
/// leeway and bounds, the claims required, the token types taken, the
/// bindings, and where scopes and permissions are read. Built by
/// [`AuthX::new`](crate::AuthX::new) from the configuration and the issuer;
/// read it, print it (its `Display` is a short report), never build it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct IssuerRules {
    /// The `iss` tokens must name; `None`: no `iss` is required (and one a
    /// token names is not checked: our own keys without an issuer set).
    pub issuer: Option<String>,
    /// One of these must be in the token's `aud`; empty: a token that names
    /// an audience is refused (RFC 8725 3.9).
    pub audiences: Vec<String>,
    /// The algorithms of the keys held now (an issuer's grow and change as
    /// its JWKS is fetched); each key serves one.
    pub algorithms: Vec<Algorithm>,
    /// How far `exp`, `nbf` and `iat` may be off.
    pub leeway: Duration,
    /// The longest lifetime (`exp` - `iat`) taken, if bounded.
    pub max_lifetime: Option<Duration>,
    /// The longest token read, in bytes.
    pub max_token_len: usize,
    /// The claims a token must have.
    pub required_claims: Vec<&'static str>,
    /// Only tokens whose header says `typ: at+jwt` (RFC 9068); otherwise any
    /// access token, never an ID or logout token.
    pub at_jwt_only: bool,
    /// AuthX's `ns:*` scope wildcards are honoured: in AuthX's `scopes`
    /// claim of our own keys' tokens, or in every scope claim of an issuer
    /// that opted in; elsewhere scopes match exactly.
    pub scope_wildcards: bool,
    /// Where roles and permissions are read from, if anywhere.
    pub permissions: Option<Idp>,
    /// Tokens are sent to the issuer's introspection endpoint (opaque ones,
    /// or all of them).
    pub introspected: bool,
    /// DPoP-bound tokens are taken (with a proof); `dpop_required`: bearer
    /// tokens are not.
    pub dpop: bool,
    /// See [`dpop`](Self::dpop).
    pub dpop_required: bool,
    /// Verified tokens are remembered, at most this many (the signature is
    /// then not checked again; time, revocation and the route's rule are).
    pub verified_cache: Option<usize>,
}

impl IssuerRules {
    /// The rules for `issuer` and `audiences`, reading tokens up to
    /// `max_token_len` bytes; the rest is filled in as the configuration says.
    pub(crate) fn new(
        issuer: Option<String>,
        audiences: Vec<String>,
        max_token_len: usize,
    ) -> IssuerRules {
        let mut required_claims = vec!["exp", "sub"];
        if issuer.is_some() {
            required_claims.push("iss");
        }
        if !audiences.is_empty() {
            required_claims.push("aud");
        }
        IssuerRules {
            issuer,
            audiences,
            algorithms: Vec::new(),
            leeway: Duration::ZERO,
            max_lifetime: None,
            max_token_len,
            required_claims,
            at_jwt_only: false,
            scope_wildcards: false,
            permissions: None,
            introspected: false,
            dpop: false,
            dpop_required: false,
            verified_cache: None,
        }
    }

    /// Where granted `ns:*` scopes are wildcards, for the verifier.
    pub(crate) fn wildcards(&self, own_keys: bool) -> Wildcards {
        match (self.scope_wildcards, own_keys) {
            (false, _) => Wildcards::None,
            (true, true) => Wildcards::AuthxScopes,
            (true, false) => Wildcards::Every,
        }
    }
}

impl fmt::Display for IssuerRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &[String]| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(", ")
            }
        };
        match &self.issuer {
            Some(iss) => writeln!(f, "issuer {iss}")?,
            None => writeln!(f, "our own keys (no iss required)")?,
        }
        let audiences = if self.audiences.is_empty() {
            "none (a token naming one is refused)".to_owned()
        } else {
            list(&self.audiences)
        };
        writeln!(f, "  audiences: {audiences}")?;
        let algorithms: Vec<String> = self.algorithms.iter().map(|a| a.to_string()).collect();
        writeln!(f, "  algorithms: {}", list(&algorithms))?;
        let lifetime = self
            .max_lifetime
            .map_or("unbounded".to_owned(), |d| format!("{} s", d.as_secs()));
        writeln!(
            f,
            "  leeway: {} s; max lifetime: {lifetime}; max token length: {} bytes",
            self.leeway.as_secs(),
            self.max_token_len
        )?;
        writeln!(f, "  required claims: {}", self.required_claims.join(", "))?;
        let types = if self.at_jwt_only {
            "typ at+jwt only"
        } else {
            "access tokens (ID and logout tokens refused)"
        };
        writeln!(f, "  token types: {types}")?;
        let dpop = match (self.dpop, self.dpop_required) {
            (_, true) => "required",
            (true, false) => "taken beside bearer tokens",
            (false, false) => "off",
        };
        writeln!(f, "  DPoP: {dpop}")?;
        let scopes = if self.scope_wildcards {
            "ns:* wildcards honoured"
        } else {
            "matched exactly"
        };
        writeln!(f, "  scopes: {scopes}")?;
        match &self.permissions {
            Some(idp) => writeln!(f, "  permissions from: {idp:?}")?,
            None => writeln!(f, "  permissions from: nowhere")?,
        }
        let cache = self
            .verified_cache
            .map_or("off".to_owned(), |n| format!("{n} tokens"));
        write!(
            f,
            "  introspected: {}; verified-token cache: {cache}",
            if self.introspected { "yes" } else { "no" }
        )
    }
}
