//! [`AuthX`]: the handle that issues and verifies tokens, cheap to clone, shared by
//! every layer built from it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::claims::{Claims, Fresh, NumericDate, TokenType};
use crate::config::AuthXConfig;
use crate::error::{AuthError, ConfigError, CsrfFailure, IssueError};
use crate::keyset::{KeyRing, jwks};
use crate::policy::Requirement;
use crate::reject::{Answers, Challenge};
use crate::request::RequestHead;
use crate::revocation::{
    MemoryStore, RefreshUse, RevocationStore, StoreError, StoreFuture, TokenRecord,
};
use crate::source::{HeaderSource, Sources, TokenLocation};
use crate::token::{Keys, Signer, Verifier, audience_claim, ensure_crypto_backend};

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Issues and verifies AuthX-compatible tokens. Build it once from an
/// [`AuthXConfig`]; clones share everything.
#[derive(Clone)]
pub struct AuthX {
    inner: Arc<Inner>,
}

struct Inner {
    /// Tells this handle (and its clones) from every other one in the process.
    id: u64,
    verifier: Verifier,
    signer: Option<Signer>,
    jwks: String,
    sources: Sources,
    answers: Answers,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
    fresh_max_age: Option<Duration>,
    pass_preflight: bool,
    store: Arc<dyn RevocationStore>,
    fail_open: bool,
    issuer: Option<String>,
    audience: Vec<String>,
}

impl AuthX {
    /// Checks the configuration and prepares keys and validation once.
    pub fn new(config: AuthXConfig) -> Result<AuthX, ConfigError> {
        ensure_crypto_backend()?;
        let mut config = config;
        for key in config.keys.all().filter(|k| k.weak_secret) {
            if !config.allow_weak_secret {
                return Err(ConfigError::new(format!(
                    "the {} secret is shorter than the algorithm's output size (RFC 7518 3.2); \
                     use a longer random secret, or opt in with AuthXConfig::allow_weak_secret",
                    key.alg
                )));
            }
            tracing::warn!(alg = %key.alg, "tower-authx: using an HMAC secret too short to be safe");
        }
        config.keys.name_keys()?;
        let jwks = jwks(&config.keys)?;
        if config.max_token_len == 0 {
            return Err(ConfigError::new("max_token_len must be positive"));
        }
        if config.header_type.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(ConfigError::new("header_type must be a single ASCII token"));
        }
        if let Some(max) = config.max_token_lifetime
            && (config.access_lifetime > max || config.refresh_lifetime > max)
        {
            return Err(ConfigError::new(
                "access_token_lifetime and refresh_token_lifetime must fit max_token_lifetime",
            ));
        }
        if config.locations.is_empty() {
            return Err(ConfigError::new(
                "token_location needs at least one location",
            ));
        }
        config.cookies.validate()?;
        if config.query_name.is_empty() {
            return Err(ConfigError::new("query_param must not be empty"));
        }
        let scheme = if config.header_type.is_empty() {
            "Bearer".to_owned()
        } else {
            config.header_type.clone()
        };
        let challenge = Challenge {
            missing_details: std::array::from_fn(|mask| missing_detail(&config, &scheme, mask)),
            csrf_missing_detail: format!(
                "Missing CSRF token in '{}' header.",
                config.cookies.csrf_header.as_str().to_ascii_uppercase()
            ),
            scheme,
            realm: config.realm,
            prepared: Default::default(),
        };
        #[cfg(feature = "jwks")]
        let keys = match config.remote.take() {
            Some(remote) => Keys::Remote(remote),
            None => Keys::Local(KeyRing::new(&config.keys)?),
        };
        #[cfg(not(feature = "jwks"))]
        let keys = Keys::Local(KeyRing::new(&config.keys)?);
        let verifier = Verifier::new(
            keys,
            config.leeway,
            config.issuer.clone(),
            config.audience.clone(),
            config.max_token_len,
            config.max_token_lifetime,
            config.verified_cache.filter(|c| *c > 0),
        );
        Ok(AuthX {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                verifier,
                signer: config.keys.signing.as_ref().and_then(Signer::new),
                jwks,
                sources: Sources {
                    order: config.locations,
                    header: HeaderSource {
                        name: config.header_name,
                        scheme: config.header_type,
                        max_token_len: config.max_token_len,
                    },
                    cookies: config.cookies,
                    query_name: config.query_name,
                },
                answers: Answers {
                    challenge,
                    http: config.rejection,
                    grpc: config.grpc_rejection,
                },
                access_lifetime: config.access_lifetime,
                refresh_lifetime: config.refresh_lifetime,
                fresh_max_age: config.fresh_max_age,
                pass_preflight: config.pass_preflight,
                store: config
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryStore::default())),
                fail_open: config.fail_open,
                issuer: config.issuer,
                audience: config.audience,
            }),
        })
    }

    /// Identifies this handle and its clones (never reused in a process).
    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// An access token for `sub`: fresh at login, not fresh at refresh.
    pub fn create_access_token(
        &self,
        sub: impl Into<String>,
        fresh: bool,
    ) -> Result<String, IssueError> {
        self.access_token(sub).fresh(fresh).issue()
    }

    /// A refresh token for `sub`.
    pub fn create_refresh_token(&self, sub: impl Into<String>) -> Result<String, IssueError> {
        self.refresh_token(sub).issue()
    }

    /// A fresh access token and a refresh token, as a login answers. Both start
    /// a new login session (refresh-token family): rotation keeps it, a reused
    /// refresh token or a logout ends it.
    pub fn create_token_pair(&self, sub: impl Into<String>) -> Result<TokenPair, IssueError> {
        self.token_pair(sub).issue()
    }

    /// Starts a login's token pair with options: your own claims and scopes
    /// go into both tokens, freshness into the access token, and both belong
    /// to one new session, so logout and refresh-token reuse detection cover
    /// them as they cover [`create_token_pair`](Self::create_token_pair)'s.
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
                .family(family.clone()),
            refresh: self.refresh_token(sub).family(family),
        }
    }

    /// Starts an access token with options (scopes, your own claims, lifetime...).
    pub fn access_token(&self, sub: impl Into<String>) -> TokenBuilder<'_> {
        TokenBuilder::new(self, sub.into(), TokenType::Access)
    }

    /// Starts a refresh token with options.
    pub fn refresh_token(&self, sub: impl Into<String>) -> TokenBuilder<'_> {
        TokenBuilder::new(self, sub.into(), TokenType::Refresh)
    }

    /// Verifies `token` and checks it against `requirement`.
    pub fn verify<E: DeserializeOwned>(
        &self,
        token: &str,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        let now = NumericDate::now();
        let claims = self.inner.verifier.verify::<E>(token, now)?;
        self.check(&claims, requirement, now)?;
        Ok(claims)
    }

    /// Finds the token in `request` (the configured locations, in order),
    /// verifies it, checks the CSRF double submit for cookie-borne tokens, then
    /// checks `requirement`.
    pub fn authenticate<E: DeserializeOwned>(
        &self,
        request: RequestHead<'_>,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        let found = self.inner.sources.find(request, requirement.token_type())?;
        let now = NumericDate::now();
        let claims = self.inner.verifier.verify::<E>(&found.token, now)?;
        if let Some(sent) = found.csrf {
            let expected = claims.csrf.as_deref().unwrap_or_default();
            if expected.is_empty() || !constant_time_eq(sent, expected.as_bytes()) {
                return Err(AuthError::Csrf(CsrfFailure::Mismatch));
            }
        }
        self.check(&claims, requirement, now)?;
        Ok(claims)
    }

    /// Appends the `Set-Cookie` lines that store an access `token` issued by us
    /// (`access_token_cookie`, HttpOnly) and its CSRF value (`csrf_access_token`,
    /// readable by scripts), as AuthX's `set_access_cookies`.
    pub fn set_access_cookies(
        &self,
        token: &str,
        headers: &mut HeaderMap,
    ) -> Result<(), AuthError> {
        self.set_cookies(token, TokenType::Access, headers)
    }

    /// Appends the `Set-Cookie` lines that store a refresh `token` and its CSRF value.
    pub fn set_refresh_cookies(
        &self,
        token: &str,
        headers: &mut HeaderMap,
    ) -> Result<(), AuthError> {
        self.set_cookies(token, TokenType::Refresh, headers)
    }

    /// Appends the `Set-Cookie` lines that delete every token and CSRF cookie
    /// (logout), as AuthX's `unset_cookies`.
    pub fn unset_cookies(&self, headers: &mut HeaderMap) {
        let cookies = &self.inner.sources.cookies;
        cookies.unset(headers, TokenType::Access);
        cookies.unset(headers, TokenType::Refresh);
    }

    fn set_cookies(
        &self,
        token: &str,
        token_type: TokenType,
        headers: &mut HeaderMap,
    ) -> Result<(), AuthError> {
        // Verified like any token, so only our own, well-formed tokens are stored.
        let claims = self
            .inner
            .verifier
            .verify::<crate::claims::NoExtra>(token, NumericDate::now())?;
        if claims.token_type != token_type {
            return Err(AuthError::WrongTokenType {
                expected: token_type,
                found: claims.token_type,
            });
        }
        self.inner
            .sources
            .cookies
            .set(headers, token_type, token, claims.csrf.as_deref())
    }

    /// Checks already verified claims against `requirement` at `now`.
    pub fn check<E>(
        &self,
        claims: &Claims<E>,
        requirement: &Requirement,
        now: NumericDate,
    ) -> Result<(), AuthError> {
        Ok(requirement.check(claims, now, self.inner.fresh_max_age)?)
    }

    /// Whether the revocation store still vouches for verified `claims`: `Ok`
    /// unless the token or its session was revoked (or, failing closed, the
    /// store cannot answer). The layers do this for you.
    pub async fn check_revocation<E>(&self, claims: &Claims<E>) -> Result<(), AuthError> {
        self.revocation_verdict(self.revocation_check(claims).await)
    }

    /// The store's question about `claims`, if they can have been revoked.
    pub(crate) fn revocation_check<E>(&self, claims: &Claims<E>) -> StoreFuture<bool> {
        self.inner.store.is_revoked(&TokenRecord::of(claims))
    }

    /// What a store answer means for the request.
    pub(crate) fn revocation_verdict(
        &self,
        answer: Result<bool, StoreError>,
    ) -> Result<(), AuthError> {
        match answer {
            Ok(false) => Ok(()),
            Ok(true) => Err(AuthError::Revoked),
            Err(e) if self.inner.fail_open => {
                tracing::warn!(error = %e, "tower-authx: revocation store unavailable, failing open");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "tower-authx: revocation store unavailable");
                Err(AuthError::StoreUnavailable)
            }
        }
    }

    /// Revokes the login session of `claims` (every token of its refresh
    /// family), or the token alone until it expires when it belongs to no
    /// session: a logout. A write that cannot be made is `StoreUnavailable`,
    /// whatever the fail-open setting.
    pub async fn revoke<E>(&self, claims: &Claims<E>) -> Result<(), AuthError> {
        if claims.jti.is_none() && claims.family.is_none() {
            return Err(AuthError::InvalidToken(crate::error::InvalidToken::Claims(
                "the token has no jti to revoke".into(),
            )));
        }
        self.inner
            .store
            .revoke(&TokenRecord::of(claims), self.horizon())
            .await
            .map_err(store_down)
    }

    /// Rotates a verified refresh token: spends it, and answers a non-fresh
    /// access token and a new refresh token in the same session, both with
    /// the refresh token's scopes and its own claims as `E` read them (with
    /// the default [`NoExtra`](crate::NoExtra), none: verify the refresh token
    /// with your claim type to carry them over). Only the session's latest
    /// refresh token can be spent: any earlier one presented again is refused
    /// with [`AuthError::RefreshReused`] and the whole session revoked, so a
    /// thief and the victim cannot both go on. A key that cannot sign, or
    /// claims that cannot be written, are an [`IssueError`]'s message in a
    /// refusal and leave the refresh token unspent.
    pub async fn rotate<'a, E: Serialize>(
        &'a self,
        claims: &Claims<E>,
    ) -> Result<TokenPair, AuthError> {
        if claims.token_type != TokenType::Refresh {
            return Err(AuthError::WrongTokenType {
                expected: TokenType::Refresh,
                found: claims.token_type,
            });
        }
        if claims.jti.is_none() {
            return Err(AuthError::InvalidToken(crate::error::InvalidToken::Claims(
                "a refresh token without jti cannot be rotated".into(),
            )));
        }
        let record = TokenRecord::of(claims);
        // Tokens from elsewhere (AuthX) carry no family: each is its own.
        let family = record.rotation_session().unwrap_or_default();
        // The successor is signed before the store moves on to it, so a key
        // that cannot sign never spends the user's refresh token.
        let issue = |e: IssueError| {
            tracing::error!(error = %e, "tower-authx: cannot issue the rotated tokens");
            AuthError::Issue(e)
        };
        let carry = |builder: TokenBuilder<'a>| -> TokenBuilder<'a> {
            let builder = builder.family(family).extra(&claims.extra);
            match &claims.scopes {
                Some(scopes) => builder.scopes(scopes.iter().cloned()),
                None => builder,
            }
        };
        let successor = carry(self.refresh_token(claims.sub.clone()));
        let next_jti = successor.claims.jti.clone().unwrap_or_default();
        let refresh_token = successor.issue().map_err(issue)?;
        // Signed before the store moves on too.
        let access_token = carry(self.access_token(claims.sub.clone()))
            .fresh(false)
            .issue()
            .map_err(issue)?;
        let verdict = self
            .inner
            .store
            .spend_refresh(&record, &next_jti, self.horizon())
            .await
            .map_err(store_down)?;
        match verdict {
            RefreshUse::First => {}
            RefreshUse::Reused => {
                tracing::warn!(family, "tower-authx: refresh token reused; session revoked");
                return Err(AuthError::RefreshReused);
            }
            RefreshUse::FamilyRevoked => return Err(AuthError::Revoked),
        }
        Ok(TokenPair {
            access_token,
            refresh_token,
            token_type: "bearer",
        })
    }

    /// How long a session's entries must be remembered: as long as any token
    /// issued now could live.
    fn horizon(&self) -> NumericDate {
        let inner = &self.inner;
        let longest = inner.refresh_lifetime.max(inner.access_lifetime);
        NumericDate::now().plus(longest)
    }

    /// The RFC 7517 JWKS of our public keys (signing, previous and verifying;
    /// never a secret or a private part), for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &str {
        &self.inner.jwks
    }

    /// When `error` says a token names a key we lack and the keys come from an
    /// issuer's JWKS: the (rate-limited) refetch to await before trying again.
    pub(crate) fn key_refetch(
        &self,
        error: &AuthError,
        head: RequestHead<'_>,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        #[cfg(feature = "jwks")]
        if let (
            AuthError::InvalidToken(crate::error::InvalidToken::UnknownKey),
            Keys::Remote(remote),
        ) = (error, &self.inner.verifier.keys)
        {
            let kid = self
                .inner
                .sources
                .find(head, None)
                .ok()
                .and_then(|found| kid_of(&found.token));
            return Some(remote.refetch_for(kid));
        }
        let _ = (error, head);
        None
    }

    /// After a refetch: a key still missing because the issuer is unreachable
    /// is a 503, not the token's fault.
    pub(crate) fn after_refetch(&self, error: AuthError) -> AuthError {
        #[cfg(feature = "jwks")]
        if let (
            AuthError::InvalidToken(crate::error::InvalidToken::UnknownKey),
            Keys::Remote(remote),
        ) = (&error, &self.inner.verifier.keys)
            && remote.unavailable()
        {
            return AuthError::KeysUnavailable;
        }
        error
    }

    /// Whether recognised CORS preflights go on to the inner service.
    pub(crate) fn passes_preflights(&self) -> bool {
        self.inner.pass_preflight
    }

    /// Whether `claims` prove a recent login now (any of the three lawful forms).
    pub fn is_fresh<E>(&self, claims: &Claims<E>) -> bool {
        claims.is_fresh_at(NumericDate::now(), self.inner.fresh_max_age)
    }

    /// The default rejection: status, `{"detail": ...}` and `WWW-Authenticate`;
    /// for a gRPC call (a `POST` with `content-type: application/grpc`,
    /// `+proto`, `-web`, ...), HTTP 200 with `grpc-status` 16 (7 for scopes,
    /// 14 when keys or store are unavailable) and a percent-encoded `grpc-message`.
    pub fn default_rejection(
        &self,
        error: &AuthError,
        request: RequestHead<'_>,
    ) -> Response<Bytes> {
        self.inner.answers.default(error, request)
    }

    /// The configured rejection for `error` (the default, through your hook
    /// for its protocol if you set one), with the `AuthError` in the
    /// response's extensions and a `tracing` event that names the reason and
    /// never the token.
    pub fn reject(&self, error: &AuthError, request: RequestHead<'_>) -> Response<Bytes> {
        tracing::debug!(reason = %error, method = %request.method, path = request.uri.path(), "tower-authx: request refused");
        self.inner.answers.refuse(error, request)
    }
}

impl fmt::Debug for AuthX {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthX")
            .field("signing_alg", &self.inner.signer.as_ref().map(Signer::alg))
            .field("can_sign", &self.inner.signer.is_some())
            .finish_non_exhaustive()
    }
}

fn store_down(e: StoreError) -> AuthError {
    tracing::warn!(error = %e, "tower-authx: revocation store unavailable");
    AuthError::StoreUnavailable
}

/// The `kid` a token's header names (for a targeted refetch), if readable.
#[cfg(feature = "jwks")]
fn kid_of(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
    value.get("kid")?.as_str().map(str::to_owned)
}

/// AuthX's "no token" wording, one sentence per configured location that the
/// request could have used (`mask`: bit 0 the header, 1 cookies, 2 the query);
/// every configured location when it could have used none of them.
fn missing_detail(config: &AuthXConfig, scheme: &str, mask: usize) -> String {
    let bit = |location: &TokenLocation| match location {
        TokenLocation::Headers => 1,
        TokenLocation::Cookies => 2,
        TokenLocation::Query => 4,
    };
    let usable = config.locations.iter().any(|l| mask & bit(l) != 0);
    let sentences: Vec<String> = config
        .locations
        .iter()
        .filter(|l| !usable || mask & bit(l) != 0)
        .map(|location| match location {
            TokenLocation::Headers => format!(
                "Missing '{scheme}' in '{}' header.",
                title_case(config.header_name.as_str())
            ),
            TokenLocation::Cookies => format!("Missing cookie '{}'.", config.cookies.access_name),
            TokenLocation::Query => {
                format!("Missing '{}' in query parameters.", config.query_name)
            }
        })
        .collect();
    sentences.join(" ")
}

/// Compares in time that depends on the lengths only, not on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `authorization` as people write it: `Authorization` (HeaderName is lowercase).
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// What a login answers: AuthX's `TokenResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenPair {
    /// A fresh access token.
    pub access_token: String,
    /// A refresh token.
    pub refresh_token: String,
    /// Always `"bearer"`.
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

    /// Signs both tokens.
    pub fn issue(self) -> Result<TokenPair, IssueError> {
        Ok(TokenPair {
            access_token: self.access.issue()?,
            refresh_token: self.refresh.issue()?,
            token_type: "bearer",
        })
    }
}

/// Claims that callers' own claims may not overwrite.
const RESERVED: [&str; 13] = [
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
    "auth_time",
    "fam",
];

/// A token being issued. Defaults follow AuthX: a UUID v4 `jti` and `csrf`, `iat`
/// now, `exp` after the configured lifetime, `fresh: false` on access tokens.
#[derive(Debug)]
#[must_use = "call .issue() to get the token"]
pub struct TokenBuilder<'a> {
    authx: &'a AuthX,
    claims: Claims<serde_json::Map<String, serde_json::Value>>,
    lifetime: Option<Duration>,
    extra_error: Option<IssueError>,
}

impl<'a> TokenBuilder<'a> {
    fn new(authx: &'a AuthX, sub: String, token_type: TokenType) -> Self {
        let now = NumericDate::now().whole_seconds();
        let inner = &authx.inner;
        TokenBuilder {
            authx,
            claims: Claims {
                sub,
                jti: Some(uuid::Uuid::new_v4().to_string()),
                token_type,
                fresh: (token_type == TokenType::Access).then_some(Fresh::Bool(false)),
                csrf: Some(uuid::Uuid::new_v4().to_string()),
                iat: Some(now),
                exp: now,
                nbf: None,
                iss: inner.issuer.clone(),
                aud: audience_claim(&inner.audience),
                scopes: None,
                auth_time: None,
                family: None,
                extra: serde_json::Map::new(),
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

    /// Puts the token in a login session (refresh-token family, claim `fam`).
    pub fn family(mut self, family: impl Into<String>) -> Self {
        self.claims.family = Some(family.into());
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
        let inner = &self.authx.inner;
        let signer = inner
            .signer
            .as_ref()
            .ok_or_else(|| IssueError("the key can only verify".into()))?;
        let lifetime = self.lifetime.unwrap_or(match self.claims.token_type {
            TokenType::Access => inner.access_lifetime,
            TokenType::Refresh => inner.refresh_lifetime,
        });
        let start = self.claims.iat.unwrap_or_else(NumericDate::now);
        self.claims.exp = start.plus(lifetime).whole_seconds();
        signer.sign(&self.claims)
    }
}
