//! Calling the next service on the user's behalf: OAuth 2.0 Token Exchange
//! (RFC 8693; feature `remote-keys`). The caller's token is never passed
//! through: it is exchanged at the authorization server's token endpoint for
//! a token issued for the downstream service (its `audience` or `resource`),
//! and that token is sent instead.
//!
//! - [`Caller`]: the token a guard admitted for the request being served,
//!   taken from the request with [`AuthX::caller`](crate::AuthX::caller).
//! - [`TokenExchange`]: the exchange (endpoint, client credentials, what the
//!   new token is for, an optional actor token for delegation), with a cache
//!   and one call for many concurrent requests of one caller.
//! - [`TokenExchangeLayer`]: a client-side layer for any
//!   `Service<http::Request<B>>` (hyper-util's client, a tonic channel): an
//!   outgoing request that carries a [`Caller`] in its extensions leaves with
//!   the exchanged token in `Authorization`.
//!
//! ```no_run
//! # async fn run(authx: tower_authx::AuthX, request: http::Request<()>) -> Result<(), Box<dyn std::error::Error>> {
//! use tower_authx::ClientAuth;
//! use tower_authx::exchange::{ExchangeConfig, TokenExchange};
//!
//! let exchange = TokenExchange::new(
//!     ExchangeConfig::discover("https://sso.example", ClientAuth::secret_basic("gateway", "s3cret"))
//!         .await?
//!         .audience("orders-api")
//!         .scope("orders:read"),
//! )?;
//! // In a handler behind a guard:
//! let caller = authx
//!     .caller::<tower_authx::NoExtra>(tower_authx::RequestHead::of(&request))
//!     .ok_or("not a guarded request")?;
//! let token = exchange.exchange(&caller).await?; // cached until its exp
//! # let _ = token; Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};

use crate::claims::NumericDate;
use crate::dpop::DpopSigner;
use crate::error::{ConfigError, FetchError};
use crate::introspection::ClientAuth;
use crate::introspection::cache::{TokenHash, hash};
use crate::introspection::client_auth::Form;
use crate::introspection::flight::Flights;
use crate::keys::fetch::{
    HttpsClient, PlainHttp, fetchable_url, https_client, openid_configuration,
    openid_configuration_url, platform_tls,
};

mod cache;
mod layer;
mod nonces;

use cache::ExchangeCache;
pub use layer::{BoxError, TokenExchangeFuture, TokenExchangeLayer, TokenExchangeService};

/// RFC 9449's request header.
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// RFC 8693's grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's type of an access token (the subject's, and the one asked for).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693's type of a JWT.
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A token endpoint's answer larger than this is refused.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// An exchanged token is not used in its last seconds: the downstream
/// service must still take it when it arrives.
const EXPIRY_MARGIN_SECS: f64 = 5.0;

/// The token a guard admitted for the request being served, to exchange for
/// downstream calls. Cheap to clone; its `Debug` never shows the token.
#[derive(Clone)]
pub struct Caller {
    token: Arc<str>,
    /// The token's `exp`: nothing obtained with it outlives it.
    exp: f64,
    sub: Arc<str>,
    hash: TokenHash,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("sub", &self.sub)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// `token`, whose verified claims are `claims` (prefer
    /// [`AuthX::caller`](crate::AuthX::caller), which takes both from a
    /// guarded request).
    pub fn new<E>(token: &str, claims: &crate::claims::Claims<E>) -> Caller {
        Caller {
            token: token.into(),
            exp: claims.exp.as_secs_f64(),
            sub: claims.sub.as_str().into(),
            hash: hash(token),
        }
    }

    /// The subject the token speaks for.
    pub fn subject(&self) -> &str {
        &self.sub
    }
}

/// Why no exchanged token came: never a reason to send the caller's own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The outgoing request carries no [`Caller`] in its extensions.
    NoCaller,
    /// The caller's token has expired (or is about to): exchange a new one.
    CallerExpired,
    /// The authorization server refused (RFC 6749 5.2: `invalid_grant`,
    /// `invalid_target`, `unauthorized_client`, ...), with its description.
    Refused {
        /// The `error` code.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The authorization server could not be asked, or did not answer with
    /// a usable token (down, slow, malformed): try again later.
    Unavailable(String),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::NoCaller => {
                f.write_str("token exchange: the outgoing request carries no caller")
            }
            ExchangeError::CallerExpired => {
                f.write_str("token exchange: the caller's token has expired")
            }
            ExchangeError::Refused { error, description } => {
                write!(f, "token exchange refused: {error}")?;
                match description {
                    Some(description) => write!(f, " ({description})"),
                    None => Ok(()),
                }
            }
            ExchangeError::Unavailable(why) => write!(f, "token exchange unavailable: {why}"),
        }
    }
}

impl std::error::Error for ExchangeError {}

/// A token issued for the downstream service.
#[derive(Clone)]
pub struct ExchangedToken {
    token: Arc<str>,
    /// `Bearer <token>` (or `DPoP <token>`), made once: every call sends it.
    authorization: http::HeaderValue,
    dpop: bool,
    /// When it must no longer be used (Unix seconds): the sooner of its own
    /// end and the caller's, less a margin.
    use_until: f64,
}

impl fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangedToken")
            .field("dpop", &self.dpop)
            .field("use_until", &self.use_until)
            .finish_non_exhaustive()
    }
}

impl ExchangedToken {
    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The `Authorization` header value that presents it.
    pub fn authorization(&self) -> http::HeaderValue {
        self.authorization.clone()
    }
}

/// Where the token endpoint is, and what to ask it for.
#[derive(Clone, Debug)]
pub struct ExchangeConfig {
    endpoint: Uri,
    client: ClientAuth,
    audience: Vec<String>,
    resource: Vec<String>,
    scope: Option<String>,
    actor: Option<Actor>,
    timeout: Duration,
    cache_capacity: usize,
    tls: Option<rustls::ClientConfig>,
    dpop: Option<Arc<DpopSigner>>,
}

/// Whose token goes as the `actor_token` (delegation: the new token then
/// says in `act` who acts for the subject).
#[derive(Clone, Debug)]
enum Actor {
    /// The service's own token, by the client credentials grant at the same
    /// endpoint with the same credentials, kept until its `exp`.
    ClientCredentials { scope: Option<String> },
}

impl ExchangeConfig {
    /// The token endpoint at `url` (https; http on loopback only), called
    /// with `client`'s credentials.
    pub fn at(url: &str, client: ClientAuth) -> Result<ExchangeConfig, ConfigError> {
        let endpoint = fetchable_url(url, "token endpoint", PlainHttp::LoopbackOnly)?;
        Ok(ExchangeConfig {
            endpoint,
            client,
            audience: Vec::new(),
            resource: Vec::new(),
            scope: None,
            actor: None,
            timeout: Duration::from_secs(5),
            cache_capacity: 10_000,
            tls: None,
            dpop: None,
        })
    }

    /// The token endpoint `issuer`'s OpenID configuration names (fetched now;
    /// the configuration must name `issuer` exactly).
    pub async fn discover(issuer: &str, client: ClientAuth) -> Result<ExchangeConfig, FetchError> {
        let url =
            openid_configuration_url(issuer).map_err(|e| FetchError::Document(e.to_string()))?;
        let http = https_client(platform_tls().map_err(|e| FetchError::Document(e.to_string()))?);
        Self::discover_with(issuer, client, &url, &http).await
    }

    /// [`discover`](Self::discover) trusting `tls` (a private CA).
    pub async fn discover_with_tls(
        issuer: &str,
        client: ClientAuth,
        tls: rustls::ClientConfig,
    ) -> Result<ExchangeConfig, FetchError> {
        let url =
            openid_configuration_url(issuer).map_err(|e| FetchError::Document(e.to_string()))?;
        let http = https_client(tls.clone());
        Ok(Self::discover_with(issuer, client, &url, &http)
            .await?
            .tls_config(tls))
    }

    async fn discover_with(
        issuer: &str,
        client: ClientAuth,
        url: &Uri,
        http: &HttpsClient,
    ) -> Result<ExchangeConfig, FetchError> {
        let document = openid_configuration(http, url, issuer).await?;
        let endpoint = document.token_endpoint.ok_or_else(|| {
            FetchError::Document("the OpenID configuration names no token_endpoint".into())
        })?;
        ExchangeConfig::at(&endpoint, client).map_err(|e| FetchError::Document(e.to_string()))
    }

    /// The downstream service's name, as the authorization server knows it
    /// (`audience`, RFC 8693 2.1); may be given more than once.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.push(audience.into());
        self
    }

    /// The downstream service's URL (`resource`, RFC 8707 / RFC 8693 2.1);
    /// may be given more than once.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource.push(resource.into());
        self
    }

    /// The scope asked for (space-separated).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Delegation: send this service's own token (client credentials grant,
    /// with `scope` if any) as the `actor_token`, so that the new token says
    /// in `act` that this service acts for the subject.
    #[must_use]
    pub fn act_as_client(mut self, scope: Option<&str>) -> Self {
        self.actor = Some(Actor::ClientCredentials {
            scope: scope.map(str::to_owned),
        });
        self
    }

    /// How long a call to the token endpoint may take (default 5 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many exchanged tokens are kept (default 10,000; 0: none).
    #[must_use]
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Sender-constrained downstream calls (RFC 9449): token requests carry
    /// a DPoP proof of `signer`'s key, so that the authorization server may
    /// bind the exchanged token to it; a token it binds (`token_type` DPoP)
    /// is then sent as `Authorization: DPoP` with a fresh proof on every
    /// call. Server nonces (`use_dpop_nonce`) are learned and sent, at the
    /// token endpoint and downstream.
    #[must_use]
    pub fn dpop(mut self, signer: DpopSigner) -> Self {
        self.dpop = Some(Arc::new(signer));
        self
    }

    /// Its own TLS configuration (default: the platform's roots).
    #[must_use]
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.tls = Some(config);
        self
    }
}

/// A token exchange, ready: cheap to clone; clones share the cache and the
/// calls under way.
#[derive(Clone)]
pub struct TokenExchange {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ExchangeConfig,
    endpoint_text: String,
    http: HttpsClient,
    cache: ExchangeCache,
    flights: Flights<Result<ExchangedToken, ExchangeError>>,
    /// The service's own token, for `act`.
    actor: tokio::sync::Mutex<Option<(Arc<str>, f64)>>,
    /// The DPoP nonces servers gave, by origin.
    nonces: nonces::DpopNonces,
}

impl TokenExchange {
    /// The exchange `config` describes.
    pub fn new(config: ExchangeConfig) -> Result<TokenExchange, ConfigError> {
        let http = match &config.tls {
            Some(tls) => https_client(tls.clone()),
            None => https_client(platform_tls()?),
        };
        Ok(TokenExchange {
            inner: Arc::new(Inner {
                endpoint_text: config.endpoint.to_string(),
                cache: ExchangeCache::new(config.cache_capacity),
                config,
                http,
                flights: Flights::new(),
                actor: tokio::sync::Mutex::new(None),
                nonces: nonces::DpopNonces::default(),
            }),
        })
    }

    /// The layer that sends outgoing requests with tokens exchanged by this.
    pub fn layer(&self) -> TokenExchangeLayer {
        TokenExchangeLayer::new(self.clone())
    }

    /// A token for the downstream service, on `caller`'s behalf: from the
    /// cache while it is good, else from one call to the token endpoint
    /// (concurrent requests of one caller share it).
    pub async fn exchange(&self, caller: &Caller) -> Result<ExchangedToken, ExchangeError> {
        let now = NumericDate::now().as_secs_f64();
        if caller.exp <= now + EXPIRY_MARGIN_SECS {
            self.record("caller_expired");
            return Err(ExchangeError::CallerExpired);
        }
        if let Some(token) = self.inner.cache.get(&caller.hash, now) {
            self.record("cached");
            return Ok(token);
        }
        self.inner
            .flights
            .share(caller.hash, || {
                let span = tracing::debug_span!("authx.exchange", sub = %caller.sub);
                tracing::Instrument::instrument(self.call_once(caller, now), span)
            })
            .await
    }

    /// One exchange for `caller`, cached when it succeeds, counted and logged.
    async fn call_once(&self, caller: &Caller, now: f64) -> Result<ExchangedToken, ExchangeError> {
        let result = tokio::time::timeout(self.inner.config.timeout, self.call(caller))
            .await
            .unwrap_or_else(|_| Err(ExchangeError::Unavailable("timed out".into())));
        match &result {
            Ok(token) => {
                self.record("issued");
                self.inner.cache.insert(caller.hash, token.clone(), now);
            }
            Err(ExchangeError::Refused { error, .. }) => {
                self.record("refused");
                tracing::info!(%error, sub = %caller.sub, "tower-authx: token exchange refused");
            }
            Err(error) => {
                self.record("error");
                tracing::warn!(%error, "tower-authx: token exchange failed");
            }
        }
        result
    }

    /// `request` with `token` as its only credential (`insert` replaces
    /// every `Authorization` it had) and, for a DPoP-bound token, a fresh
    /// proof for this request (with the downstream's nonce, if it gave one).
    pub(crate) fn present<B>(
        &self,
        mut request: Request<B>,
        token: &ExchangedToken,
    ) -> Result<Request<B>, ExchangeError> {
        if token.dpop {
            let signer = self.inner.config.dpop.as_ref().ok_or_else(|| {
                ExchangeError::Unavailable("a DPoP-bound token without a DPoP key".into())
            })?;
            let nonce = self.inner.nonces.get(request.uri());
            let proof = signer
                .proof(
                    request.method(),
                    request.uri(),
                    Some(token.token()),
                    nonce.as_deref(),
                )
                .map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
            let proof = http::HeaderValue::try_from(proof)
                .map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
            request.headers_mut().insert(DPOP, proof);
        }
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, token.authorization());
        Ok(request)
    }

    /// Keeps the DPoP nonce a downstream answer to `uri` carries; whether it
    /// is a new one.
    pub(crate) fn note_nonce(&self, uri: &Uri, headers: &http::HeaderMap) -> bool {
        self.inner.config.dpop.is_some() && self.inner.nonces.note(uri, headers)
    }

    /// Forgets what was exchanged for `caller` (the downstream service
    /// refused it).
    pub fn forget(&self, caller: &Caller) {
        self.inner.cache.remove(&caller.hash);
    }

    async fn call(&self, caller: &Caller) -> Result<ExchangedToken, ExchangeError> {
        let config = &self.inner.config;
        let mut form = Form::default();
        form.field("grant_type", GRANT_TYPE);
        form.field("subject_token", &caller.token);
        form.field("subject_token_type", ACCESS_TOKEN_TYPE);
        form.field("requested_token_type", ACCESS_TOKEN_TYPE);
        for audience in &config.audience {
            form.field("audience", audience);
        }
        for resource in &config.resource {
            form.field("resource", resource);
        }
        if let Some(scope) = &config.scope {
            form.field("scope", scope);
        }
        if let Some(actor) = &config.actor {
            let token = self.actor_token(actor).await?;
            form.field("actor_token", &token);
            form.field("actor_token_type", ACCESS_TOKEN_TYPE);
        }
        let answer = self.post(form).await?;
        let issued = answer.issued_token_type.as_deref();
        if issued.is_some_and(|t| t != ACCESS_TOKEN_TYPE && t != JWT_TYPE) {
            return Err(ExchangeError::Unavailable(format!(
                "the issued token is a {}, not an access token",
                issued.unwrap_or_default()
            )));
        }
        let dpop = match answer.token_type.to_ascii_lowercase().as_str() {
            "bearer" => false,
            "dpop" if config.dpop.is_some() => true,
            other => {
                return Err(ExchangeError::Unavailable(format!(
                    "the issued token's type is {other:?}, not Bearer"
                )));
            }
        };
        let now = NumericDate::now().as_secs_f64();
        // The sooner of what the answer says and, for a JWT, its own `exp`
        // (the answer's whole seconds can run past it).
        let said = answer.expires_in.map_or(now, |secs| now + secs);
        let own_end =
            crate::token::unverified_expiry(&answer.access_token).map_or(said, |exp| exp.min(said));
        let scheme = if dpop { "DPoP" } else { "Bearer" };
        let mut authorization =
            http::HeaderValue::try_from(format!("{scheme} {}", answer.access_token)).map_err(
                |_| ExchangeError::Unavailable("the issued token is not a header value".into()),
            )?;
        authorization.set_sensitive(true);
        Ok(ExchangedToken {
            token: answer.access_token.into(),
            authorization,
            dpop,
            use_until: own_end.min(caller.exp) - EXPIRY_MARGIN_SECS,
        })
    }

    /// The service's own access token (client credentials), kept until its
    /// end.
    async fn actor_token(&self, actor: &Actor) -> Result<Arc<str>, ExchangeError> {
        let Actor::ClientCredentials { scope } = actor;
        let mut held = self.inner.actor.lock().await;
        let now = NumericDate::now().as_secs_f64();
        if let Some((token, until)) = held.as_ref()
            && *until > now
        {
            return Ok(token.clone());
        }
        let mut form = Form::default();
        form.field("grant_type", "client_credentials");
        if let Some(scope) = scope {
            form.field("scope", scope);
        }
        let answer = self.post(form).await?;
        let said = answer.expires_in.map_or(now, |secs| now + secs);
        let until = crate::token::unverified_expiry(&answer.access_token)
            .map_or(said, |exp| exp.min(said))
            - EXPIRY_MARGIN_SECS;
        let token: Arc<str> = answer.access_token.into();
        *held = Some((token.clone(), until));
        Ok(token)
    }

    /// One call to the token endpoint with `form` and the client's
    /// credentials: the answer (RFC 6749 5.1), or why there is none (5.2).
    async fn post(&self, form: Form) -> Result<TokenAnswer, ExchangeError> {
        // A server that wants a DPoP nonce says so once (RFC 9449 8): the
        // request goes again with it.
        match self.post_once(form.clone()).await {
            Err(Asked::Nonce) => self.post_once(form).await.map_err(Asked::into_error),
            other => other.map_err(Asked::into_error),
        }
    }

    async fn post_once(&self, mut form: Form) -> Result<TokenAnswer, Asked> {
        let inner = &*self.inner;
        let unavailable = |why: String| Asked::Error(ExchangeError::Unavailable(why));
        let authorization = inner
            .config
            .client
            .apply(&inner.endpoint_text, &mut form)
            .map_err(|e| unavailable(e.to_string()))?;
        let mut request = Request::post(inner.config.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        if let Some(signer) = &inner.config.dpop {
            let nonce = inner.nonces.get(&inner.config.endpoint);
            let proof = signer
                .proof(
                    &Method::POST,
                    &inner.config.endpoint,
                    None,
                    nonce.as_deref(),
                )
                .map_err(|e| unavailable(e.to_string()))?;
            request = request.header(DPOP, proof);
        }
        let request = request
            .body(Full::new(Bytes::from(form.into_string())))
            .map_err(|e| unavailable(e.to_string()))?;
        let response = inner
            .http
            .request(request)
            .await
            .map_err(|e| unavailable(format!("the token endpoint is unreachable: {e}")))?;
        let status = response.status();
        let new_nonce = inner
            .nonces
            .note(&inner.config.endpoint, response.headers());
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| unavailable(format!("the token endpoint's answer: {e}")))?
            .to_bytes();
        if status.is_success() {
            return read_answer(&body).map_err(Asked::Error);
        }
        if status.is_client_error()
            && let Some(refusal) = read_refusal(&body)
        {
            if new_nonce
                && matches!(&refusal, ExchangeError::Refused { error, .. } if error == "use_dpop_nonce")
            {
                return Err(Asked::Nonce);
            }
            return Err(Asked::Error(refusal));
        }
        Err(unavailable(format!("the token endpoint answered {status}")))
    }

    fn record(&self, result: &'static str) {
        #[cfg(feature = "metrics")]
        metrics::counter!(crate::metrics::EXCHANGES, "result" => result).increment(1);
        let _ = result;
    }
}

/// Why one request to the token endpoint gave no token.
enum Asked {
    /// A DPoP nonce to send (now held): ask again.
    Nonce,
    Error(ExchangeError),
}

impl Asked {
    fn into_error(self) -> ExchangeError {
        match self {
            Asked::Nonce => {
                ExchangeError::Unavailable("the token endpoint asked for a DPoP nonce twice".into())
            }
            Asked::Error(error) => error,
        }
    }
}

/// A token endpoint's successful answer (RFC 6749 5.1, RFC 8693 2.2.1).
struct TokenAnswer {
    access_token: String,
    token_type: String,
    issued_token_type: Option<String>,
    expires_in: Option<f64>,
}

fn read_answer(body: &[u8]) -> Result<TokenAnswer, ExchangeError> {
    #[derive(serde::Deserialize)]
    struct Wire {
        access_token: String,
        token_type: String,
        issued_token_type: Option<String>,
        expires_in: Option<f64>,
    }
    let malformed =
        |why: &str| ExchangeError::Unavailable(format!("the token endpoint's answer {why}"));
    if !crate::json::unique_members(body) {
        return Err(malformed("is not JSON, or names a member twice"));
    }
    let wire: Wire = serde_json::from_slice(body)
        .map_err(|_| malformed("is not the JSON of a token response"))?;
    if wire.access_token.is_empty() || !wire.access_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("holds no usable access_token"));
    }
    if wire
        .expires_in
        .is_some_and(|secs| !secs.is_finite() || secs < 0.0)
    {
        return Err(malformed("has an expires_in that is no duration"));
    }
    Ok(TokenAnswer {
        access_token: wire.access_token,
        token_type: wire.token_type,
        issued_token_type: wire.issued_token_type,
        expires_in: wire.expires_in,
    })
}

fn read_refusal(body: &[u8]) -> Option<ExchangeError> {
    #[derive(serde::Deserialize)]
    struct Wire {
        error: String,
        error_description: Option<String>,
    }
    if !crate::json::unique_members(body) {
        return None;
    }
    let wire: Wire = serde_json::from_slice(body).ok()?;
    // Printed to logs and handlers: only what RFC 6749 5.2 allows in them.
    let printable = |s: &str| {
        s.chars()
            .take(256)
            .filter(|c| (' '..='~').contains(c))
            .collect()
    };
    Some(ExchangeError::Refused {
        error: printable(&wire.error),
        description: wire.error_description.as_deref().map(printable),
    })
}
