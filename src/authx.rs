//! [`AuthX`]: the handle that issues and verifies tokens, cheap to clone, shared
//! by every layer built from it. It holds the prepared configuration; what it
//! does lives beside it: issuing in `issue.rs`, logout and rotation in
//! `session/`, the order of a request in `pipeline/`, refusals in `reject/`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response};
use serde::de::DeserializeOwned;

use crate::claims::{Claims, NumericDate, Seal, TokenType};
use crate::config::AuthXConfig;
use crate::dpop::{DpopCheck, DpopKey, replay_verdict};
use crate::error::{AuthError, ConfigError};
use crate::keys::jwks;
use crate::pipeline::{Pipeline, Trust, audience_is_resource};
use crate::policy::Requirement;
use crate::reject::{Answers, Challenge, DpopChallenge, Places, missing_details};
use crate::request::RequestHead;
use crate::resource::{Enforced, Published, ResourceMetadata, ResourceMetadataService};
use crate::source::{HeaderSource, Sources, TokenLocation};
use crate::store::MemoryStore;
use crate::token::{IssuerRules, Signer};

/// What issuing needs, prepared once by `AuthX::new`.
pub(crate) struct Issuing {
    pub(crate) signer: Option<Signer>,
    pub(crate) access_lifetime: Duration,
    pub(crate) refresh_lifetime: Duration,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Vec<String>,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Issues and verifies AuthX-compatible tokens. Build it once from an
/// [`AuthXConfig`]; clones share everything.
#[derive(Clone)]
pub struct AuthX {
    inner: Arc<Inner>,
}

/// Aligned past the `Arc`'s counts: servers clone a guard (so the count) per
/// request on every core, and the pipeline read by every request must not
/// share a cache line with them.
#[repr(align(128))]
struct Inner {
    pipeline: Pipeline,
    issuing: Issuing,
    jwks: String,
    answers: Answers,
    resource: Option<Arc<Published>>,
}

impl AuthX {
    /// Checks the configuration and prepares keys and validation once.
    pub fn new(config: AuthXConfig) -> Result<AuthX, ConfigError> {
        let mut config = config;
        crate::pipeline::check_settings(&config)?;
        config.keys.name_keys();
        let jwks = jwks(&config.keys);
        let scheme = if config.header_type.is_empty() {
            "Bearer".to_owned()
        } else {
            config.header_type.clone()
        };
        let dpop = match config.dpop.take() {
            Some(_) if config.header_type.is_empty() => {
                return Err(ConfigError::new(
                    "DPoP needs an auth-scheme in the header (header_type must not be empty)",
                ));
            }
            Some(dpop) => Some(DpopCheck::new(dpop)?),
            None => None,
        };
        // A protected resource requires itself as every token's audience.
        let mut resource_id = None;
        let resource = match config.resource.take() {
            Some(resource) => {
                let id = resource_id.insert(resource.identifier()?.to_owned());
                let issuers = audience_is_resource(&config, id)?;
                let header_only = config.locations == [TokenLocation::Headers]
                    && config.header_name == http::header::AUTHORIZATION
                    && config.header_type.eq_ignore_ascii_case("Bearer");
                Some(Arc::new(resource.publish(Enforced {
                    header_only,
                    issuers,
                    dpop: dpop.as_ref(),
                })?))
            }
            None => None,
        };
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dpop_required = dpop.as_ref().map(|dpop| dpop.required);
        let seal = Seal::of(id, config.fresh_max_age);
        let trust = Trust::from_config(&config, seal, dpop_required, resource_id.as_deref())?;
        let challenge = Challenge {
            missing_details: missing_details(&Places {
                locations: &config.locations,
                scheme: &scheme,
                header: config.header_name.as_str(),
                cookie: &config.cookies.access_name,
                query: &config.query_name,
            }),
            csrf_missing_detail: format!(
                "Missing CSRF token in '{}' header.",
                config.cookies.csrf_header.as_str().to_ascii_uppercase()
            ),
            scheme,
            realm: config.realm,
            header: config.header_name.clone(),
            dpop: dpop.as_ref().map(|dpop| DpopChallenge {
                header: config.header_name.clone(),
                algs: dpop
                    .algorithms()
                    .iter()
                    .map(|alg| alg.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                bearer: !dpop.required,
                nonces: dpop.nonces().cloned(),
            }),
            resource_metadata: resource.as_ref().map(|r| r.url.clone()),
            prepared: Default::default(),
        };
        let trust_len = trust.len();
        Ok(AuthX {
            inner: Arc::new(Inner {
                pipeline: Pipeline {
                    id,
                    sources: Sources {
                        order: config.locations,
                        header: HeaderSource {
                            name: config.header_name,
                            scheme: config.header_type,
                            max_token_len: config.max_token_len,
                            dpop: dpop.is_some(),
                        },
                        cookies: config.cookies,
                        query_name: config.query_name,
                        json_keys: config.json_keys,
                    },
                    trust,
                    store: config
                        .store
                        .unwrap_or_else(|| Arc::new(MemoryStore::default())),
                    fail_open: config.fail_open,
                    fresh_max_age: config.fresh_max_age,
                    pass_preflight: config.pass_preflight,
                    dpop,
                    certificates: crate::mtls::CertificateSource {
                        proxies: config.client_cert_proxies.clone().into(),
                    },
                    trace_subject: config.trace_subject,
                    meters: crate::observe::Meters::new(trust_len),
                    #[cfg(feature = "streams")]
                    streams: Default::default(),
                },
                issuing: Issuing {
                    signer: config.keys.signing.as_ref().and_then(Signer::new),
                    access_lifetime: config.access_lifetime,
                    refresh_lifetime: config.refresh_lifetime,
                    issuer: config.issuer,
                    // A protected resource issues tokens for itself too.
                    audience: match resource_id {
                        Some(resource) => vec![resource],
                        None => config.audience,
                    },
                },
                jwks,
                resource,
                answers: Answers {
                    challenge,
                    http: config.rejection,
                    grpc: config.grpc_rejection,
                },
            }),
        })
    }

    /// How requests are checked (for the layers).
    pub(crate) fn pipeline(&self) -> &Pipeline {
        &self.inner.pipeline
    }

    /// How tokens are issued.
    pub(crate) fn issuing(&self) -> &Issuing {
        &self.inner.issuing
    }

    /// Verifies `token` and checks it against `requirement`, with every check
    /// the layers make that needs no request: keys (a remote issuer's rotated
    /// in are fetched, rate-limited), signature, claims, binding (a DPoP-bound
    /// token, or any token where DPoP is required, is refused: there is no
    /// proof without a request), `requirement`, and the revocation store.
    pub async fn verify<E: DeserializeOwned>(
        &self,
        token: &str,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        self.inner.pipeline.verify(token, requirement).await
    }

    /// [`verify`](Self::verify) without the revocation store and with the
    /// keys held now (nothing fetched): a logged-out token still verifies
    /// here. For code that cannot wait; ask
    /// [`check_revocation`](Self::check_revocation) before trusting it with
    /// anything a logout should stop.
    pub fn verify_offline<E: DeserializeOwned>(
        &self,
        token: &str,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        self.inner.pipeline.verify_offline(token, requirement)
    }

    /// Every check a guard layer makes, for a request's head: finds the token
    /// in `request` (the configured locations, in order), checks its DPoP
    /// proof (for the DPoP scheme), verifies it (fetching a remote issuer's
    /// rotated keys), checks its binding and the CSRF double submit for
    /// cookie-borne tokens, then `requirement`, then spends the proof in the
    /// replay store and asks the revocation store.
    pub async fn authenticate<E: DeserializeOwned>(
        &self,
        request: RequestHead<'_>,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        self.inner.pipeline.authenticate(request, requirement).await
    }

    /// The token a guard of this `AuthX` admitted for `request`, to call
    /// other services on the caller's behalf ([`exchange`](crate::exchange)):
    /// `None` when no such guard admitted one (the route is not guarded, or
    /// by another `AuthX`). `E` is the guard's claims type
    /// ([`NoExtra`](crate::NoExtra) unless you chose one).
    #[cfg(feature = "remote-keys")]
    pub fn caller<E: Send + Sync + 'static>(
        &self,
        request: RequestHead<'_>,
    ) -> Option<crate::exchange::Caller> {
        self.inner.pipeline.caller::<E>(request)
    }

    /// The client key a token request (a login) proves with its `DPoP`
    /// header, to bind the tokens issued to it
    /// ([`PairBuilder::bound_to`](crate::PairBuilder::bound_to)): `None` when
    /// the request has no proof or DPoP is not configured. The proof is
    /// checked like any (method, URI, time, signature, nonce) and spent in the
    /// replay store; a bad one is refused.
    pub async fn dpop_key(&self, request: RequestHead<'_>) -> Result<Option<DpopKey>, AuthError> {
        let Some(dpop) = &self.inner.pipeline.dpop else {
            return Ok(None);
        };
        let Some(proof) = dpop.token_request_proof(request)? else {
            return Ok(None);
        };
        let client = crate::request::client_of(request.extensions);
        replay_verdict(dpop.first_use(&proof, None, client).await)?;
        Ok(Some(DpopKey::new(proof.jkt)))
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
        let cookies = &self.inner.pipeline.sources.cookies;
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
        let claims: Claims = self
            .inner
            .pipeline
            .verify_offline(token, &Requirement::any_type())?;
        if claims.token_type != token_type {
            return Err(AuthError::WrongTokenType {
                expected: token_type,
                found: claims.token_type,
            });
        }
        self.inner
            .pipeline
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
        Ok(requirement.check(claims, now, self.inner.pipeline.fresh_max_age)?)
    }

    /// How each issuer's tokens are checked (or, without issuers, our own
    /// keys'), in the order configured: the rules every entry point applies,
    /// with the algorithms of the keys held now. Print one for a readable
    /// report.
    ///
    /// ```
    /// use tower_authx::{AuthX, AuthXConfig};
    ///
    /// let authx = AuthX::new(AuthXConfig::from_secret([7u8; 32])?.audience("api"))?;
    /// let rules = &authx.rules()[0];
    /// assert_eq!(rules.audiences, ["api"]);
    /// assert_eq!(rules.required_claims, ["exp", "sub", "aud"]);
    /// assert!(rules.to_string().contains("algorithms: HS256"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rules(&self) -> Vec<IssuerRules> {
        self.inner.pipeline.trust.rules()
    }

    /// The health of every issuer's keys this handle verifies with (feature
    /// `remote-keys`), for a readiness probe: each issuer's `iss` (or, for
    /// keys from a bare JWKS URL, the URL) with when its keys were last
    /// fetched, when a fetch last failed, and how many keys are held. Empty
    /// when the keys are our own.
    #[cfg(feature = "remote-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote-keys")))]
    pub fn keys_health(&self) -> Vec<(String, crate::keys::KeysHealth)> {
        self.inner.pipeline.trust.keys_health()
    }

    /// The RFC 7517 JWKS of our public keys (signing, previous and verifying;
    /// never a secret or a private part), for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &str {
        &self.inner.jwks
    }

    /// The protected resource's metadata (RFC 9728), when configured with
    /// [`AuthXConfig::protected_resource`].
    pub fn resource_metadata(&self) -> Option<&ResourceMetadata> {
        self.inner.resource.as_ref().map(|r| &r.metadata)
    }

    /// A service that serves [`resource_metadata`](Self::resource_metadata)
    /// at its well-known path, when configured.
    pub fn resource_metadata_service(&self) -> Option<ResourceMetadataService> {
        self.inner
            .resource
            .clone()
            .map(ResourceMetadataService::new)
    }

    /// The rejection for `error`, as the guards answer: the default (status,
    /// `{"detail": ...}` and `WWW-Authenticate`; for a gRPC call, HTTP 200
    /// with `grpc-status` 16, 7 for scopes, 14 when keys or a store are
    /// unavailable), through your hook for its protocol if you set one, with
    /// the `AuthError` in the
    /// response's extensions and a `tracing` event that names the reason and
    /// never the token.
    pub fn reject(&self, error: &AuthError, request: RequestHead<'_>) -> Response<Bytes> {
        self.reject_for(error, request, None)
    }

    /// [`reject`](Self::reject) for a route that requires `requirement`
    /// (a protected resource's 401 names the route's scopes).
    pub(crate) fn reject_for(
        &self,
        error: &AuthError,
        request: RequestHead<'_>,
        requirement: Option<&Requirement>,
    ) -> Response<Bytes> {
        tracing::debug!(reason = %error, method = %request.method, path = request.uri.path(), "tower-authx: request refused");
        let scopes = requirement.and_then(Requirement::scopes);
        self.inner.answers.refuse(error, request, scopes)
    }
}

impl fmt::Debug for AuthX {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthX")
            .field(
                "signing_alg",
                &self.inner.issuing.signer.as_ref().map(Signer::alg),
            )
            .field("can_sign", &self.inner.issuing.signer.is_some())
            .finish_non_exhaustive()
    }
}
