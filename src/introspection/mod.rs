#![doc = include_str!("../guide/introspection.md")]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;

use crate::claims::NumericDate;
use crate::error::{AuthError, ConfigError, FetchError, InvalidToken};
use crate::keys::KeySource;
use crate::keys::fetch::{HttpsClient, PlainHttp, fetchable_url, https_client, send};
use crate::token::{self, Unverified};

mod answer;
pub(crate) mod cache;
pub(crate) mod client_auth;
pub(crate) mod flight;

pub(crate) use answer::Answer;
use answer::{Reading, Unread, Verdict};
use cache::AnswerCache;
pub use client_auth::ClientAuth;
use client_auth::Form;
use flight::{Budget, Flights};

/// Which of its issuer's tokens are introspected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntrospectedTokens {
    /// Those that are not JWS (opaque reference tokens); its JWTs are
    /// verified with its keys, without a call.
    #[default]
    Opaque,
    /// Every token, its JWTs too: a token revoked at the issuer is refused
    /// at once (or once its cache entry ends), at the price of a call.
    All,
    /// Its JWTs only; opaque tokens are never sent to it (another issuer
    /// takes them).
    Jwts,
}

impl IntrospectedTokens {
    fn opaque(self) -> bool {
        matches!(self, IntrospectedTokens::Opaque | IntrospectedTokens::All)
    }
}

/// Where the endpoint is.
#[derive(Clone, Debug)]
enum Endpoint {
    /// The issuer's discovery document's `introspection_endpoint`.
    Discovered,
    At(Uri),
}

/// How an [`Issuer`](crate::Issuer) introspects tokens: its endpoint, the
/// client credentials, the cache and the bounds on calls. Hand it to
/// [`Issuer::introspection`](crate::Issuer::introspection).
///
/// Defaults: opaque tokens only; no cache; at most 32 calls in flight and 100
/// started per second (past either, 503 at once, counted); 3 s per call;
/// answers of at most 64 KiB; an answer without `token_type` is not taken
/// as an access token (oidc-provider introspects refresh tokens that way).
#[derive(Clone, Debug)]
pub struct Introspection {
    endpoint: Endpoint,
    client: ClientAuth,
    tokens: IntrospectedTokens,
    cache: Option<Duration>,
    cache_capacity: usize,
    max_in_flight: usize,
    per_second: u32,
    timeout: Duration,
    pub(crate) untyped_is_access: bool,
    signed: bool,
    tls: Option<rustls::ClientConfig>,
    /// The prefix its opaque tokens start with: the routing rule among
    /// several issuers that introspect opaque tokens.
    pub(crate) opaque_prefix: Option<String>,
}

/// The media type of a signed answer (RFC 9701), and its JWS `typ`.
const SIGNED: &str = "application/token-introspection+jwt";
const SIGNED_TYP: &str = "token-introspection+jwt";

/// Answers larger than this are refused (a 503: the server is broken).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl Introspection {
    /// At the endpoint the issuer's discovery document names
    /// (`introspection_endpoint`); [`AuthX::new`](crate::AuthX::new) refuses
    /// an issuer that was not discovered or names none.
    pub fn discovered(client: ClientAuth) -> Introspection {
        Introspection::with(Endpoint::Discovered, client)
    }

    /// At `url`: `https://`, or plain `http://` on loopback.
    pub fn at(url: &str, client: ClientAuth) -> Result<Introspection, ConfigError> {
        let url = fetchable_url(url, "introspection endpoint", PlainHttp::LoopbackOnly)?;
        Ok(Introspection::with(Endpoint::At(url), client))
    }

    fn with(endpoint: Endpoint, client: ClientAuth) -> Introspection {
        Introspection {
            endpoint,
            client,
            tokens: IntrospectedTokens::Opaque,
            cache: None,
            cache_capacity: 10_000,
            max_in_flight: 32,
            per_second: 100,
            timeout: Duration::from_secs(3),
            untyped_is_access: false,
            signed: false,
            tls: None,
            opaque_prefix: None,
        }
    }

    /// Whether opaque tokens are sent to it at all.
    pub(crate) fn takes_opaque_tokens(&self) -> bool {
        self.tokens.opaque()
    }

    /// Its opaque tokens start with `prefix` (as `ory_at_`, `gho_`, or your
    /// own authorization server's): only those are sent to it. Needed when
    /// several issuers introspect opaque tokens, which name no issuer: a
    /// token is sent to exactly one endpoint, never tried at each (which
    /// would hand one issuer another's live tokens).
    #[must_use]
    pub fn opaque_tokens_prefixed(mut self, prefix: impl Into<String>) -> Self {
        self.opaque_prefix = Some(prefix.into());
        self
    }

    /// Which tokens are introspected (default: [`IntrospectedTokens::Opaque`]).
    #[must_use]
    pub fn tokens(mut self, tokens: IntrospectedTokens) -> Self {
        self.tokens = tokens;
        self
    }

    /// Keeps active answers for at most `ttl` (and never past the token's
    /// `exp`): a token revoked at the issuer is refused once its entry ends.
    /// Off by default.
    #[must_use]
    pub fn cache(mut self, ttl: Duration) -> Self {
        self.cache = Some(ttl).filter(|ttl| !ttl.is_zero());
        self
    }

    /// How many answers the cache holds (default 10,000).
    #[must_use]
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// At most this many calls under way at once (default 32).
    #[must_use]
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = calls;
        self
    }

    /// At most this many calls started per second (default 100): a flood of
    /// made-up tokens never becomes a flood on the authorization server.
    #[must_use]
    pub fn max_calls_per_second(mut self, calls: u32) -> Self {
        self.per_second = calls;
        self
    }

    /// How long a call may take (default 3 s); past it, 503.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Takes an active answer without `token_type` as an access token's.
    /// Only for a server that never introspects other tokens that way:
    /// oidc-provider, for one, answers so for refresh tokens, which would
    /// then pass as access tokens.
    #[must_use]
    pub fn danger_untyped_answers_are_access_tokens(mut self) -> Self {
        self.untyped_is_access = true;
        self
    }

    /// Asks for signed answers (RFC 9701, `application/token-introspection+jwt`)
    /// and takes only those: a JWS of type `token-introspection+jwt` signed
    /// with the issuer's keys (its JWKS, refetched once for an unknown
    /// `kid`), naming the issuer as `iss` and us as `aud` (this client, or
    /// the issuer's configured audience: oidc-provider names the resource). A
    /// resource server then trusts what the answer says, not merely the TLS
    /// connection it came over. Anything else is 503.
    #[must_use]
    pub fn signed_answers(mut self) -> Self {
        self.signed = true;
        self
    }

    /// Its own TLS configuration (default: the issuer's keys' own).
    #[must_use]
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.tls = Some(config);
        self
    }
}

/// An issuer's introspection, ready: cheap to clone, clones share the cache,
/// the flights and the budget.
#[derive(Clone)]
pub(crate) struct Introspector {
    inner: Arc<Inner>,
}

struct Inner {
    iss: String,
    endpoint: Uri,
    endpoint_text: String,
    http: HttpsClient,
    client: ClientAuth,
    tokens: IntrospectedTokens,
    opaque_prefix: Option<String>,
    cache: Option<AnswerCache>,
    flights: Flights<Result<Arc<Answer>, AuthError>>,
    budget: Budget,
    timeout: Duration,
    pub(crate) untyped_is_access: bool,
    /// The issuer's keys, when answers must be signed (RFC 9701).
    signed_by: Option<KeySource>,
    /// Who a signed answer may be addressed to: our client id, and the
    /// audiences the issuer's tokens are for.
    addressees: Vec<String>,
}

impl Introspector {
    /// `config` for the issuer `iss`, whose discovery named `discovered`
    /// (if any), over `http` unless it has its own TLS.
    pub(crate) fn new(
        config: Introspection,
        iss: &str,
        discovered: Option<&str>,
        http: HttpsClient,
        keys: KeySource,
        audience: &[String],
    ) -> Result<Introspector, ConfigError> {
        let endpoint = match config.endpoint {
            Endpoint::At(url) => url,
            Endpoint::Discovered => {
                let url = discovered.ok_or_else(|| {
                    ConfigError::new(format!(
                        "the issuer {iss:?} names no introspection_endpoint (was it discovered?): \
                         give the endpoint with Introspection::at"
                    ))
                })?;
                fetchable_url(url, "introspection endpoint", PlainHttp::LoopbackOnly)?
            }
        };
        let http = match config.tls {
            Some(tls) => https_client(tls),
            None => http,
        };
        Ok(Introspector {
            inner: Arc::new(Inner {
                iss: iss.to_owned(),
                endpoint_text: endpoint.to_string(),
                endpoint,
                http,
                client: config.client.clone(),
                tokens: config.tokens,
                opaque_prefix: config.opaque_prefix.clone(),
                cache: config
                    .cache
                    .map(|ttl| AnswerCache::new(ttl, config.cache_capacity)),
                flights: Flights::new(),
                budget: Budget::new(config.max_in_flight, config.per_second),
                timeout: config.timeout,
                untyped_is_access: config.untyped_is_access,
                signed_by: config.signed.then_some(keys),
                addressees: std::iter::once(config.client.client_id().to_owned())
                    .chain(audience.iter().cloned())
                    .collect(),
            }),
        })
    }

    /// Whether it introspects its issuer's JWTs too.
    pub(crate) fn takes_jwts(&self) -> bool {
        matches!(
            self.inner.tokens,
            IntrospectedTokens::All | IntrospectedTokens::Jwts
        )
    }

    /// Whether the opaque `token` is this issuer's to introspect: it takes
    /// opaque tokens, and `token` starts with its prefix, if it has one.
    pub(crate) fn takes_opaque(&self, token: &str) -> bool {
        self.inner.tokens.opaque()
            && self
                .inner
                .opaque_prefix
                .as_deref()
                .is_none_or(|prefix| token.starts_with(prefix))
    }

    /// The cached answer for `token`, if any.
    pub(crate) fn cached(&self, token: &str) -> Option<Arc<Answer>> {
        let hit = self.inner.cache.as_ref()?.get(&cache::hash(token));
        #[cfg(feature = "metrics")]
        metrics::counter!(crate::metrics::INTROSPECTION_CACHE, "result" => if hit.is_some() { "hit" } else { "miss" })
            .increment(1);
        hit
    }

    /// What the server says about `token`: an active answer (then cached),
    /// or the refusal (`InvalidToken::Inactive` for an inactive token,
    /// `IntrospectionUnavailable` when there is no answer). Concurrent
    /// requests with the same token share one call.
    pub(crate) async fn introspect(
        &self,
        token: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Arc<Answer>, AuthError> {
        let key = cache::hash(token);
        if let Some(answer) = self.inner.cache.as_ref().and_then(|c| c.get(&key)) {
            return Ok(answer);
        }
        self.inner
            .flights
            .share(key, || async {
                let answer = self.call(token, client).await;
                if let (Ok(answer), Some(cache)) = (&answer, &self.inner.cache) {
                    cache.insert(key, answer.clone(), NumericDate::now().as_secs_f64());
                }
                answer
            })
            .await
    }

    /// One call, within the budget (and `client`'s share of it).
    async fn call(
        &self,
        token: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Arc<Answer>, AuthError> {
        let inner = &*self.inner;
        let Some(_ticket) = inner.budget.take(client) else {
            self.record("shed");
            // Debug, not warn: a flood would flood the log too (the metric counts).
            tracing::debug!(issuer = %inner.iss, "tower-authx: introspection calls at their bound; answering 503");
            return Err(self.unavailable());
        };
        let body = tokio::time::timeout(inner.timeout, self.post(token))
            .await
            .unwrap_or(Err(FetchError::TimedOut));
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                self.record("error");
                tracing::warn!(issuer = %inner.iss, %error, "tower-authx: introspection failed");
                return Err(self.unavailable());
            }
        };
        let reading = Reading {
            iss: &inner.iss,
            untyped_is_access: inner.untyped_is_access,
        };
        let body = match &inner.signed_by {
            None => Ok(body.to_vec()),
            Some(keys) => self.opened(&body, keys).await,
        };
        match body.and_then(|body| answer::read(&body, reading)) {
            Ok(Verdict::Active(answer)) => {
                self.record("active");
                Ok(Arc::new(answer))
            }
            Ok(Verdict::Inactive) => {
                self.record("inactive");
                Err(InvalidToken::Inactive.into())
            }
            Err(Unread::Refused(why)) => {
                self.record("active");
                Err(why.into())
            }
            Err(Unread::Malformed(why)) => {
                self.record("error");
                tracing::warn!(issuer = %inner.iss, why, "tower-authx: the introspection answer is malformed");
                Err(self.unavailable())
            }
        }
    }

    /// The answer inside a signed one (RFC 9701), once its signature is the
    /// issuer's and it is addressed to us.
    async fn opened(&self, body: &[u8], keys: &KeySource) -> Result<Vec<u8>, Unread> {
        let unsigned = || Unread::Malformed("the signed answer is not signed by the issuer's keys");
        let jws = std::str::from_utf8(body).map_err(|_| unsigned())?.trim();
        let select = |kid: Option<&str>, alg: &str| keys.select(kid, alg);
        let payload = match token::verified_payload(jws, SIGNED_TYP, select) {
            Ok(payload) => payload,
            Err(Unverified::KeyMissing(header)) => {
                // A key the issuer rotated in: one (rate-limited) refetch.
                if let Some(fetch) = keys.refetch(header.kid.as_deref()) {
                    fetch.await;
                }
                token::verified_payload(jws, SIGNED_TYP, select).map_err(|_| unsigned())?
            }
            Err(Unverified::Invalid(_)) => return Err(unsigned()),
        };
        let ours: Vec<&str> = self.inner.addressees.iter().map(String::as_str).collect();
        answer::inside_signed(&payload, &self.inner.iss, &ours)
    }

    /// The request (RFC 7662 2.1) and the body of its `200` answer.
    async fn post(&self, token: &str) -> Result<Bytes, FetchError> {
        let inner = &*self.inner;
        let mut form = Form::default();
        form.field("token", token);
        form.field("token_type_hint", "access_token");
        let authorization = inner
            .client
            .apply(&inner.endpoint_text, &mut form)
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let accept = if inner.signed_by.is_some() {
            SIGNED
        } else {
            "application/json"
        };
        let mut request = Request::post(inner.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, accept);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Full::new(Bytes::from(form.into_string())))
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let answer = send(&inner.http, request, MAX_ANSWER_BYTES).await?;
        let typed = answer
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case(accept))
            });
        if !typed {
            return Err(FetchError::Document(format!("the answer is not {accept}")));
        }
        Ok(answer.into_body())
    }

    fn unavailable(&self) -> AuthError {
        AuthError::IntrospectionUnavailable {
            retry_after: self.inner.budget.retry_after(),
        }
    }

    fn record(&self, result: &'static str) {
        #[cfg(feature = "metrics")]
        metrics::counter!(crate::metrics::INTROSPECTIONS, "issuer" => self.inner.iss.clone(), "result" => result)
            .increment(1);
        let _ = result;
    }
}

/// For the fuzz target only (built by cargo-fuzz, which sets `cfg(fuzzing)`;
/// not in the public API otherwise): reads `body` as an answer from the
/// issuer `https://as.example`; `Some(payload)` for an active one.
#[cfg(fuzzing)]
pub fn fuzz_answer(body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let reading = Reading {
        iss: "https://as.example",
        untyped_is_access: false,
    };
    match answer::read(body, reading) {
        Ok(Verdict::Active(answer)) => Ok(Some(answer.payload().to_vec())),
        Ok(Verdict::Inactive) => Ok(None),
        Err(unread) => Err(format!("{unread:?}")),
    }
}
