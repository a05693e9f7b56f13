//! [`AuthX`]: the handle that issues and verifies tokens, cheap to clone, shared
//! by every layer built from it. It holds the prepared configuration; what it
//! does lives beside it: issuing in `issue.rs`, logout and rotation in
//! `session.rs`, the order of a request in `pipeline/`, refusals in `reject/`.

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
use crate::keys::{KeyRing, KeySource, ensure_crypto_backend, jwks};
use crate::pipeline::{Pipeline, Trust, Trusted};
use crate::policy::Requirement;
use crate::reject::{Answers, Challenge, DpopChallenge};
use crate::request::RequestHead;
use crate::source::{HeaderSource, Sources, TokenLocation};
use crate::store::MemoryStore;
use crate::token::{Signer, Verifier};

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
                     use a longer random secret, or opt in with AuthXConfig::allow_weak_secret(true)",
                    key.alg
                )));
            }
            tracing::warn!(alg = %key.alg, "tower-authx: using an HMAC secret too short to be safe");
        }
        #[cfg(feature = "remote-keys")]
        check_trust(&config)?;
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
        let dpop = match config.dpop.take() {
            Some(_) if config.header_type.is_empty() => {
                return Err(ConfigError::new(
                    "DPoP needs an auth-scheme in the header (header_type must not be empty)",
                ));
            }
            Some(dpop) => Some(DpopCheck::new(dpop)?),
            None => None,
        };
        let challenge = Challenge {
            missing_details: std::array::from_fn(|mask| missing_detail(&config, &scheme, mask)),
            csrf_missing_detail: format!(
                "Missing CSRF token in '{}' header.",
                config.cookies.csrf_header.as_str().to_ascii_uppercase()
            ),
            scheme,
            realm: config.realm,
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
            prepared: Default::default(),
        };
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let verifier = |issuer: Option<String>, audience: Vec<String>, leeway| {
            Verifier::new(
                Seal::of(id),
                leeway,
                issuer,
                audience,
                config.max_token_len,
                config.max_token_lifetime,
                config.verified_cache.filter(|c| *c > 0),
            )
        };
        #[cfg(feature = "remote-keys")]
        let trust = if config.by_issuers {
            let issuers = std::mem::take(&mut config.issuers);
            Trust::Issuers(
                issuers
                    .into_iter()
                    .map(|issuer| {
                        let leeway = issuer.leeway.unwrap_or(config.leeway);
                        let rules = verifier(Some(issuer.iss.clone()), issuer.audience, leeway);
                        let keys = KeySource::Remote(issuer.keys);
                        (
                            issuer.iss.clone(),
                            Trusted {
                                keys,
                                verifier: rules,
                                #[cfg(feature = "metrics")]
                                label: issuer.iss.into(),
                            },
                        )
                    })
                    .collect(),
            )
        } else {
            let keys = match config.remote.take() {
                Some(remote) => KeySource::Remote(remote),
                None => KeySource::Local(Arc::new(KeyRing::new(&config.keys)?)),
            };
            let rules = verifier(
                config.issuer.clone(),
                config.audience.clone(),
                config.leeway,
            );
            Trust::One(Trusted {
                keys,
                verifier: rules,
                #[cfg(feature = "metrics")]
                label: metrics::SharedString::const_str(""),
            })
        };
        #[cfg(not(feature = "remote-keys"))]
        let trust = Trust::One(Trusted {
            keys: KeySource::Local(Arc::new(KeyRing::new(&config.keys)?)),
            verifier: verifier(
                config.issuer.clone(),
                config.audience.clone(),
                config.leeway,
            ),
            #[cfg(feature = "metrics")]
            label: metrics::SharedString::const_str(""),
        });
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
                    },
                    trust,
                    store: config
                        .store
                        .unwrap_or_else(|| Arc::new(MemoryStore::default())),
                    fail_open: config.fail_open,
                    fresh_max_age: config.fresh_max_age,
                    pass_preflight: config.pass_preflight,
                    dpop,
                    trace_subject: config.trace_subject,
                    meters: crate::observe::Meters::new(trust_len),
                },
                issuing: Issuing {
                    signer: config.keys.signing.as_ref().and_then(Signer::new),
                    access_lifetime: config.access_lifetime,
                    refresh_lifetime: config.refresh_lifetime,
                    issuer: config.issuer,
                    audience: config.audience,
                },
                jwks,
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
        replay_verdict(dpop.first_use(&proof, None).await)?;
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

    /// Whether `claims` prove a recent login now (any of the three lawful forms).
    pub fn is_fresh<E>(&self, claims: &Claims<E>) -> bool {
        claims.is_fresh_at(NumericDate::now(), self.inner.pipeline.fresh_max_age)
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
            .field(
                "signing_alg",
                &self.inner.issuing.signer.as_ref().map(Signer::alg),
            )
            .field("can_sign", &self.inner.issuing.signer.is_some())
            .finish_non_exhaustive()
    }
}

/// Whom a verify-only configuration trusts must be said, once: a JWKS may
/// serve many issuers, and settings that would be silently dropped are errors.
#[cfg(feature = "remote-keys")]
fn check_trust(config: &AuthXConfig) -> Result<(), ConfigError> {
    if config.by_issuers {
        if config.issuers.is_empty() {
            return Err(ConfigError::new("from_issuers needs at least one Issuer"));
        }
        if config.issuer.is_some() || !config.audience.is_empty() {
            return Err(ConfigError::new(
                "with from_issuers, set the audience on each Issuer (Issuer::audience); \
                 AuthXConfig::issuer and AuthXConfig::audience would be ignored",
            ));
        }
        if config.any_issuer {
            return Err(ConfigError::new(
                "danger_accept_any_issuer contradicts from_issuers, which names the issuers",
            ));
        }
        for (i, issuer) in config.issuers.iter().enumerate() {
            if config.issuers[..i]
                .iter()
                .any(|other| other.iss == issuer.iss)
            {
                return Err(ConfigError::new(format!(
                    "two issuers share the iss {:?}: one would shadow the other",
                    issuer.iss
                )));
            }
        }
    } else if config.any_issuer {
        if config.remote.is_none() {
            return Err(ConfigError::new(
                "danger_accept_any_issuer applies to from_jwks only",
            ));
        }
        if config.issuer.is_some() {
            return Err(ConfigError::new(
                "danger_accept_any_issuer contradicts AuthXConfig::issuer",
            ));
        }
    } else if config.remote.is_some() && config.issuer.is_none() {
        return Err(ConfigError::new(
            "a JWKS may serve many issuers (every tenant of a multi-tenant identity provider): \
             name the one whose tokens you accept with AuthXConfig::issuer, or opt out with \
             AuthXConfig::danger_accept_any_issuer",
        ));
    }
    Ok(())
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
