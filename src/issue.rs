//! Issuing tokens the way AuthX does: a login's pair (fresh access token and
//! refresh token in one session), single tokens, and builders for your own
//! claims, scopes, freshness forms and lifetimes.

use std::time::Duration;

use serde::Serialize;

use crate::authx::AuthX;
use crate::claims::{Audience, Claims, Fresh, NumericDate, TokenType};
use crate::dpop::DpopKey;
use crate::error::IssueError;
use crate::mtls::ClientCertificate;

impl AuthX {
    /// A login's token pair: a fresh access token and a refresh token that
    /// start one new login session (refresh-token family: rotation keeps it,
    /// a reused refresh token or a logout ends it), with options (your own
    /// claims and scopes go into both tokens) before `issue()`.
    ///
    /// ```
    /// # use tower_authx::{AuthX, AuthXConfig};
    /// # let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32])?)?;
    /// let pair = authx
    ///     .token_pair("user1")
    ///     .extra(&serde_json::json!({"tenant": "acme"}))
    ///     .scopes(["posts:read"])
    ///     .issue()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token_pair(&self, sub: impl Into<String>) -> PairBuilder<'_> {
        let sub = sub.into();
        let family = uuid::Uuid::new_v4().to_string();
        PairBuilder {
            access: self
                .access_token(sub.clone())
                .fresh(true)
                .fam(family.clone()),
            refresh: self.refresh_token(sub).fam(family),
        }
    }

    /// Starts an access token: `authx.access_token(sub).fresh(true).issue()` at
    /// a login, without `fresh` (not fresh, as AuthX writes it) at a refresh;
    /// scopes, your own claims, a lifetime... in between.
    pub fn access_token(&self, sub: impl Into<String>) -> TokenBuilder<'_> {
        TokenBuilder::new(self, sub.into(), TokenType::Access)
    }

    /// Starts a refresh token: `authx.refresh_token(sub).issue()`.
    pub fn refresh_token(&self, sub: impl Into<String>) -> TokenBuilder<'_> {
        TokenBuilder::new(self, sub.into(), TokenType::Refresh)
    }
}

/// The audience we write into tokens we issue: one string, or a list for several.
fn audience_claim(audience: &[String]) -> Option<Audience> {
    match audience {
        [] => None,
        [one] => Some(Audience::One(one.clone())),
        many => Some(Audience::Many(many.to_vec())),
    }
}

/// What a login answers: AuthX's `TokenResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenPair {
    /// An access token: fresh from a login ([`AuthX::token_pair`](crate::AuthX::token_pair),
    /// `token_pair`), not fresh from a rotation ([`AuthX::rotate`](crate::AuthX::rotate)).
    pub access_token: String,
    /// A refresh token.
    pub refresh_token: String,
    /// `"bearer"`, or `"DPoP"` for tokens bound to a DPoP key (RFC 9449 5).
    pub token_type: &'static str,
}

/// A login's two tokens being issued: one session, the same claims and scopes
/// in both; freshness for the access token. From [`AuthX::token_pair`].
#[derive(Debug)]
#[must_use = "call .issue() to get the tokens"]
pub struct PairBuilder<'a> {
    access: TokenBuilder<'a>,
    refresh: TokenBuilder<'a>,
}

impl PairBuilder<'_> {
    /// Whether the access token is fresh (default: yes, as at login).
    pub fn fresh(mut self, fresh: bool) -> Self {
        self.access = self.access.fresh(fresh);
        self
    }

    /// The access token is fresh until `until` (flask-jwt-extended's form).
    pub fn fresh_until(mut self, until: NumericDate) -> Self {
        self.access = self.access.fresh_until(until);
        self
    }

    /// When the user typed credentials (`auth_time`, on the access token).
    pub fn auth_time(mut self, at: NumericDate) -> Self {
        self.access = self.access.auth_time(at);
        self
    }

    /// How strongly the user authenticated (`acr`), in both tokens: the
    /// session's refreshed tokens keep saying it.
    pub fn acr(mut self, acr: impl Into<String>) -> Self {
        let acr = acr.into();
        self.access = self.access.acr(acr.clone());
        self.refresh = self.refresh.acr(acr);
        self
    }

    /// How the user authenticated (`amr`: `["pwd", "otp"]`), in both tokens.
    pub fn amr<I: IntoIterator<Item = S>, S: Into<String>>(mut self, methods: I) -> Self {
        let methods: Vec<String> = methods.into_iter().map(Into::into).collect();
        self.access = self.access.amr(methods.clone());
        self.refresh = self.refresh.amr(methods);
        self
    }

    /// AuthX's `scopes`, in both tokens (rotation carries them on).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.access = self.access.scopes(scopes.clone());
        self.refresh = self.refresh.scopes(scopes);
        self
    }

    /// Your own claims, at the top level of both tokens (see
    /// [`TokenBuilder::extra`]).
    pub fn extra<T: Serialize>(mut self, extra: &T) -> Self {
        self.access = self.access.extra(extra);
        self.refresh = self.refresh.extra(extra);
        self
    }

    /// Binds both tokens to the client's DPoP key (`cnf.jkt`, RFC 9449 6):
    /// they are then accepted only with that key's proofs, and the pair's
    /// `token_type` is `DPoP`.
    pub fn bound_to(mut self, key: &DpopKey) -> Self {
        self.access = self.access.bound_to(key);
        self.refresh = self.refresh.bound_to(key);
        self
    }

    /// Binds both tokens to the client's TLS certificate (RFC 8705 3).
    pub fn bound_to_certificate(mut self, certificate: &ClientCertificate) -> Self {
        self.access = self.access.bound_to_certificate(certificate);
        self.refresh = self.refresh.bound_to_certificate(certificate);
        self
    }

    /// Signs both tokens.
    pub fn issue(self) -> Result<TokenPair, IssueError> {
        // A certificate-bound token is still a Bearer token (RFC 8705 3).
        let token_type = if self
            .access
            .claims
            .cnf
            .as_ref()
            .is_some_and(|c| c.jkt.is_some())
        {
            "DPoP"
        } else {
            "bearer"
        };
        Ok(TokenPair {
            access_token: self.access.issue()?,
            refresh_token: self.refresh.issue()?,
            token_type,
        })
    }
}

/// Claims that callers' own claims may not overwrite.
const RESERVED: [&str; 25] = [
    "sub",
    "jti",
    "type",
    "fresh",
    "csrf",
    "iat",
    "exp",
    "nbf",
    "iss",
    "aud",
    "scopes",
    "scope",
    "scp",
    "auth_time",
    "fam",
    "cnf",
    "acr",
    "amr",
    // What marks another kind of token: refused by every verifier.
    "nonce",
    "at_hash",
    "c_hash",
    "s_hash",
    "events",
    "typ",
    "token_use",
];

/// A token being issued. Defaults follow AuthX: a UUID v4 `jti` and `csrf`, `iat`
/// now, `exp` after the configured lifetime, `fresh: false` on access tokens.
#[derive(Debug)]
#[must_use = "call .issue() to get the token"]
pub struct TokenBuilder<'a> {
    authx: &'a AuthX,
    pub(crate) claims: Claims<serde_json::Map<String, serde_json::Value>>,
    lifetime: Option<Duration>,
    extra_error: Option<IssueError>,
}

impl<'a> TokenBuilder<'a> {
    fn new(authx: &'a AuthX, sub: String, token_type: TokenType) -> Self {
        let now = NumericDate::now().whole_seconds();
        let issuing = authx.issuing();
        TokenBuilder {
            authx,
            claims: Claims {
                jti: Some(uuid::Uuid::new_v4().to_string()),
                fresh: (token_type == TokenType::Access).then_some(Fresh::Bool(false)),
                csrf: Some(uuid::Uuid::new_v4().to_string()),
                iss: issuing.issuer.clone(),
                aud: audience_claim(&issuing.audience),
                ..Claims::bare(sub, token_type, now, now, serde_json::Map::new())
            },
            lifetime: None,
            extra_error: None,
        }
    }

    /// Marks an access token fresh (at login) or not (at refresh).
    pub fn fresh(mut self, fresh: bool) -> Self {
        if self.claims.token_type == TokenType::Access {
            self.claims.fresh = Some(Fresh::Bool(fresh));
        }
        self
    }

    /// Fresh until `until` (flask-jwt-extended's `fresh=timedelta`).
    pub fn fresh_until(mut self, until: NumericDate) -> Self {
        if self.claims.token_type == TokenType::Access {
            self.claims.fresh = Some(Fresh::Until(until.whole_seconds()));
        }
        self
    }

    /// When the user last typed credentials (`auth_time`).
    pub fn auth_time(mut self, at: NumericDate) -> Self {
        self.claims.auth_time = Some(at.whole_seconds());
        self
    }

    /// How strongly the user authenticated (`acr`, OpenID Connect).
    pub fn acr(mut self, acr: impl Into<String>) -> Self {
        self.claims.acr = Some(acr.into());
        self
    }

    /// How the user authenticated (`amr`, RFC 8176: `pwd`, `otp`, ...).
    pub fn amr<I: IntoIterator<Item = S>, S: Into<String>>(mut self, methods: I) -> Self {
        self.claims.amr = Some(methods.into_iter().map(Into::into).collect());
        self
    }

    /// AuthX's `scopes`.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Your own claims, written at the top level of the payload (AuthX's `data=`).
    /// Must serialize to a JSON object whose names are not registered claims.
    pub fn extra<T: Serialize>(mut self, extra: &T) -> Self {
        match serde_json::to_value(extra) {
            Ok(serde_json::Value::Object(map)) => {
                if let Some(name) = map.keys().find(|k| RESERVED.contains(&k.as_str())) {
                    self.extra_error =
                        Some(IssueError(format!("extra claim '{name}' is reserved")));
                }
                self.claims.extra = map;
            }
            Ok(_) => {
                self.extra_error = Some(IssueError("extra claims must be a JSON object".into()))
            }
            Err(e) => self.extra_error = Some(IssueError(e.to_string())),
        }
        self
    }

    /// Overrides the configured lifetime for this token.
    pub fn lifetime(mut self, d: Duration) -> Self {
        self.lifetime = Some(d);
        self
    }

    /// Sets `iat` (default: now). With [`lifetime`](Self::lifetime) or the
    /// configured one, `exp` follows from it.
    pub fn issued_at(mut self, iat: NumericDate) -> Self {
        self.claims.iat = Some(iat.whole_seconds());
        self
    }

    /// Sets `nbf`.
    pub fn not_before(mut self, nbf: NumericDate) -> Self {
        self.claims.nbf = Some(nbf.whole_seconds());
        self
    }

    /// Puts the token in a login session (its refresh-token family, claim `fam`).
    pub fn fam(mut self, session: impl Into<String>) -> Self {
        self.claims.fam = Some(session.into());
        self
    }

    /// Binds the token to the client's DPoP key (`cnf.jkt`): it is then
    /// accepted only with that key's proofs (RFC 9449 6).
    pub fn bound_to(mut self, key: &DpopKey) -> Self {
        self.claims.cnf.get_or_insert_default().jkt = Some(key.thumbprint().to_owned());
        self
    }

    /// Binds the token to the client's TLS certificate (`cnf.x5t#S256`, RFC
    /// 8705 3): it is then accepted only on a connection with that
    /// certificate.
    pub fn bound_to_certificate(mut self, certificate: &ClientCertificate) -> Self {
        self.claims.cnf.get_or_insert_default().x5t_s256 =
            Some(certificate.thumbprint().to_owned());
        self
    }

    /// Sets the `jti` (default: a UUID v4).
    pub fn jti(mut self, jti: impl Into<String>) -> Self {
        self.claims.jti = Some(jti.into());
        self
    }

    /// Signs the token.
    pub fn issue(mut self) -> Result<String, IssueError> {
        if let Some(e) = self.extra_error {
            return Err(e);
        }
        let issuing = self.authx.issuing();
        let signer = issuing
            .signer
            .as_ref()
            .ok_or_else(|| IssueError("the key can only verify".into()))?;
        let lifetime = self.lifetime.unwrap_or(match self.claims.token_type {
            TokenType::Access => issuing.access_lifetime,
            TokenType::Refresh => issuing.refresh_lifetime,
        });
        let start = self.claims.iat.unwrap_or_else(NumericDate::now);
        self.claims.exp = start.plus(lifetime).whole_seconds();
        signer.sign(&self.claims)
    }
}
