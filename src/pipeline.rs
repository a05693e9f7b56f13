//! The one place that knows the order of a request:
//!
//! ```text
//! claims an outer guard of this AuthX verified? -> policy, done
//! source (header | cookie | query) -> token [-> no token: optional passes]
//!   -> key (by kid; a remote kid we lack: await one refetch, then go on)
//!   -> verify (header, signature, claims, time, issuer, audience)
//!   -> DPoP proof (for the DPoP scheme: method, URI, time, nonce, ath),
//!      binding (cnf.jkt is the proof's key; a bound token never as Bearer),
//!      then the proof's key and signature: a request with a garbage token
//!      costs what a bad token costs, whatever proof it carries
//!   -> CSRF double submit (for a cookie-borne token)
//!   -> policy (type, freshness, scopes)
//!   -> replay store (the proof's first use), then revocation store (after
//!      everything local, so no unauthenticated request ever reaches them)
//!   -> claims into the extensions
//! ```
//!
//! Every step refuses on its own with an [`AuthError`]; what must be awaited
//! (keys, a network store) comes back as [`Pending`], and the request goes on
//! from where it stopped: nothing is read twice.

use std::any::TypeId;
use std::sync::Arc;
use std::time::Duration;

use http::Request;

use crate::claims::{Claims, NumericDate};
use crate::dpop::{DpopCheck, Proof, Unsigned, check_binding, replay_verdict};
use crate::error::{AuthError, CsrfFailure, InvalidToken};
use crate::keys::{KeyFuture, KeySource};
use crate::observe::{Meters, Notes, Observed, store_answered};
use crate::policy::{Admission, Requirement};
use crate::request::RequestHead;
use crate::source::Sources;
use crate::store::{RevocationStore, StoreError, StoreFuture, TokenRecord};
use crate::token::{JoseHeader, Unverified, Verifier};

/// What extra-claims types must be to travel in request extensions.
pub trait ClaimsExtra: serde::de::DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static> ClaimsExtra for T {}

/// Everything a request is checked with, prepared once by `AuthX::new`.
pub(crate) struct Pipeline {
    /// Tells this AuthX (and its clones) from every other one in the process.
    pub(crate) id: u64,
    pub(crate) sources: Sources,
    pub(crate) trust: Trust,
    pub(crate) store: Arc<dyn RevocationStore>,
    pub(crate) fail_open: bool,
    pub(crate) fresh_max_age: Option<Duration>,
    pub(crate) pass_preflight: bool,
    pub(crate) dpop: Option<DpopCheck>,
    /// The resolved metric handles (empty without the feature).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) meters: Meters,
    /// Whether the request's span names the subject.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) trace_subject: bool,
}

/// Keys and the rules a token is checked by.
pub(crate) struct Trusted {
    pub(crate) keys: KeySource,
    pub(crate) verifier: Verifier,
    /// The `issuer` label: the configured `iss` among several, else empty.
    #[cfg(feature = "metrics")]
    pub(crate) label: metrics::SharedString,
}

/// Whom tokens may come from: one set of keys and rules, or several issuers,
/// each with its own, chosen by the token's `iss`.
pub(crate) enum Trust {
    One(Trusted),
    #[cfg(feature = "remote-keys")]
    Issuers(Vec<(String, Trusted)>),
}

impl Trust {
    /// Which keys and rules `token` is checked by: the one set, or those of
    /// the configured issuer its `iss` names. Any other `iss` is refused here,
    /// before any signature work and without fetching anything.
    fn for_token(&self, token: &str) -> Result<usize, AuthError> {
        match self {
            Trust::One(_) => {
                let _ = token;
                Ok(0)
            }
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers) => {
                let iss = crate::token::unverified_issuer(token);
                issuers
                    .iter()
                    .position(|(known, _)| Some(known) == iss.as_ref())
                    .ok_or(AuthError::InvalidToken(InvalidToken::Issuer))
            }
        }
    }

    /// Each remote key source's health, named by its issuer (or JWKS URL).
    #[cfg(feature = "remote-keys")]
    pub(crate) fn keys_health(&self) -> Vec<(String, crate::keys::KeysHealth)> {
        let remote = |keys: &KeySource| match keys {
            KeySource::Remote(remote) => Some(remote.clone()),
            KeySource::Local(_) => None,
        };
        match self {
            Trust::One(trusted) => remote(&trusted.keys)
                .map(|r| (r.url().to_string(), r.health()))
                .into_iter()
                .collect(),
            Trust::Issuers(issuers) => issuers
                .iter()
                .filter_map(|(iss, trusted)| {
                    remote(&trusted.keys).map(|r| (iss.clone(), r.health()))
                })
                .collect(),
        }
    }

    /// The `issuer` label of the configured issuer at `index`.
    #[cfg(feature = "metrics")]
    pub(crate) fn issuer_label(&self, index: usize) -> metrics::SharedString {
        self.get(index).label.clone()
    }

    /// How many sets of keys and rules there are.
    pub(crate) fn len(&self) -> usize {
        match self {
            Trust::One(_) => 1,
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers) => issuers.len(),
        }
    }

    /// The index of the configured issuer `iss` names (of verified claims).
    #[cfg(feature = "metrics")]
    fn index_of(&self, iss: Option<&str>) -> Option<usize> {
        match self {
            Trust::One(_) => {
                let _ = iss;
                Some(0)
            }
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers) => issuers
                .iter()
                .position(|(known, _)| Some(known.as_str()) == iss),
        }
    }

    fn get(&self, index: usize) -> &Trusted {
        match self {
            Trust::One(trusted) => {
                let _ = index;
                trusted
            }
            // `index` came from `for_token` on this very list.
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers) => &issuers[index].1,
        }
    }
}

/// What a request waits for before its fate is known.
pub(crate) enum Pending {
    /// The issuer's keys, refetched because the token names a `kid` we lack;
    /// the token (and its CSRF value) as read, to go on with.
    Keys {
        fetch: KeyFuture,
        /// Which issuer's keys (see `Trust`).
        issuer: usize,
        token: String,
        csrf: Option<Vec<u8>>,
        header: JoseHeader<'static>,
        /// Whether it came with the DPoP scheme (its proof is read once the
        /// token is verified).
        dpop: bool,
    },
    /// A network store's answers; the claims are in the extensions.
    Stores(StoreChecks),
}

/// The network stores' answers a request waits for, asked in order: the
/// replay store (a DPoP proof's first use), then the revocation store.
pub(crate) struct StoreChecks {
    replay: Option<StoreFuture<bool>>,
    revocation: Option<StoreFuture<bool>>,
    /// When the stores were asked (for their latency, with the `metrics` feature).
    asked: Option<std::time::Instant>,
}

impl StoreChecks {
    /// The verdict once every answer is in.
    pub(crate) fn poll_verdict(
        &mut self,
        cx: &mut std::task::Context<'_>,
        pipeline: &Pipeline,
    ) -> std::task::Poll<Result<(), AuthError>> {
        use std::future::Future;
        use std::pin::Pin;
        use std::task::{Poll, ready};
        if let Some(replay) = &mut self.replay {
            let answer = ready!(Pin::new(replay).poll(cx));
            self.replay = None;
            store_answered("replay", answer.is_ok(), self.asked);
            replay_verdict(answer)?;
        }
        if let Some(revocation) = &mut self.revocation {
            let answer = ready!(Pin::new(revocation).poll(cx));
            self.revocation = None;
            store_answered("revocation", answer.is_ok(), self.asked);
            pipeline.revocation_verdict(answer)?;
        }
        Poll::Ready(Ok(()))
    }
}

/// Left in the extensions by an optional guard that found no credential, so
/// extractors can tell "no token" from "no guard".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymous;

/// Which AuthX verified the `Claims<E>` in the extensions, so an inner guard
/// reuses only what its own keys, issuer, audience and store vouched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct VerifiedBy {
    pipeline: u64,
    claims: TypeId,
}

impl Observed for Pipeline {
    fn meters(&self) -> &Meters {
        &self.meters
    }

    #[cfg(feature = "metrics")]
    fn issuer_label(&self, index: usize) -> metrics::SharedString {
        self.trust.issuer_label(index)
    }

    fn trace_subject(&self) -> bool {
        self.trace_subject
    }
}

impl Pipeline {
    fn verified_by<E: 'static>(&self) -> VerifiedBy {
        VerifiedBy {
            pipeline: self.id,
            claims: TypeId::of::<E>(),
        }
    }

    /// Authorizes `req` for `requirement` as far as can be done now.
    pub(crate) fn start<E: ClaimsExtra, B>(
        &self,
        admission: &Admission,
        req: &mut Request<B>,
        notes: &Notes,
    ) -> Result<Option<Pending>, AuthError> {
        let requirement = admission.requirement();
        let now = NumericDate::now();
        if let Some(claims) = req.extensions().get::<Claims<E>>()
            && req.extensions().get::<VerifiedBy>() == Some(&self.verified_by::<E>())
        {
            // Verified, and asked of the store, by an outer guard of this very
            // AuthX: one request, one signature check, one store lookup.
            #[cfg(feature = "metrics")]
            if let Some(issuer) = self.trust.index_of(claims.iss.as_deref()) {
                notes.issuer(issuer);
            }
            requirement.check(claims, now, self.fresh_max_age)?;
            return Ok(None);
        }
        let found = match self
            .sources
            .find(RequestHead::of(req), requirement.token_type())
        {
            Ok(found) => found,
            Err(AuthError::MissingToken) if admission.lets_anonymous_in() => {
                req.extensions_mut().insert(Anonymous);
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let issuer = self.trust.for_token(&found.token)?;
        notes.issuer(issuer);
        let trusted = self.trust.get(issuer);
        let select = |kid: Option<&str>, alg: &str| {
            let key = trusted.keys.select(kid, alg);
            if let Ok(key) = &key {
                notes.key(key);
            }
            key
        };
        let claims = match trusted.verifier.verify::<E>(&found.token, now, select) {
            Ok(claims) => claims,
            Err(Unverified::Invalid(error)) => return Err(error.into()),
            Err(Unverified::KeyMissing(header)) => {
                return match trusted.keys.refetch(header.kid.as_deref()) {
                    Some(fetch) => Ok(Some(Pending::Keys {
                        fetch,
                        issuer,
                        token: found.token.into_owned(),
                        csrf: found.csrf.map(<[u8]>::to_vec),
                        header,
                        dpop: found.dpop,
                    })),
                    None => Err(InvalidToken::UnknownKey.into()),
                };
            }
        };
        let proof = self.proof(RequestHead::of(req), &found.token, found.dpop, now)?;
        let proof = self.bind(proof, &claims)?;
        check_csrf(found.csrf, &claims)?;
        self.admit(requirement, req, claims, proof, now, notes)
    }

    /// The request's DPoP proof, checked but for its signature, when its token came with the DPoP
    /// scheme (`None` for Bearer, and when DPoP is not configured).
    fn proof(
        &self,
        request: RequestHead<'_>,
        token: &str,
        dpop_scheme: bool,
        now: NumericDate,
    ) -> Result<Option<Unsigned>, AuthError> {
        match &self.dpop {
            Some(dpop) => dpop.proof(request, token, dpop_scheme, now),
            None => Ok(None),
        }
    }

    /// Goes on with a token whose keys were just refetched.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn after_keys<E: ClaimsExtra, B>(
        &self,
        requirement: &Requirement,
        req: &mut Request<B>,
        issuer: usize,
        token: &str,
        csrf: Option<&[u8]>,
        header: &JoseHeader<'static>,
        dpop: bool,
        notes: &Notes,
    ) -> Result<Option<Pending>, AuthError> {
        let now = NumericDate::now();
        let trusted = self.trust.get(issuer);
        let key = key_after_fetch(&trusted.keys, header, token, now)?;
        notes.key(&key);
        let claims = trusted
            .verifier
            .verify_with::<E>(token, header, &key, now)?;
        let proof = self.proof(RequestHead::of(req), token, dpop, now)?;
        let proof = self.bind(proof, &claims)?;
        check_csrf(csrf, &claims)?;
        self.admit(requirement, req, claims, proof, now, notes)
    }

    /// Policy, then the stores, then the claims into the extensions.
    fn admit<E: ClaimsExtra, B>(
        &self,
        requirement: &Requirement,
        req: &mut Request<B>,
        claims: Box<Claims<E>>,
        proof: Option<Proof>,
        now: NumericDate,
        notes: &Notes,
    ) -> Result<Option<Pending>, AuthError> {
        requirement.check(&claims, now, self.fresh_max_age)?;
        let mut checks = StoreChecks {
            replay: None,
            revocation: None,
            asked: None,
        };
        if let (Some(dpop), Some(proof)) = (&self.dpop, &proof) {
            match dpop.first_use(proof, Some(&claims.sub)).now_or_later() {
                Ok(answer) => replay_verdict(answer)?,
                Err(later) => checks.replay = Some(later),
            }
        }
        match self.revocation_check(&claims).now_or_later() {
            Ok(answer) => self.revocation_verdict(answer)?,
            Err(later) => checks.revocation = Some(later),
        }
        req.extensions_mut().insert(*claims);
        req.extensions_mut().insert(self.verified_by::<E>());
        let waiting = checks.replay.is_some() || checks.revocation.is_some();
        if waiting {
            notes.store_asked();
            checks.asked = crate::observe::store_asked_at();
        }
        Ok(waiting.then_some(Pending::Stores(checks)))
    }

    /// The binding stage every entry point runs: the token's binding fits
    /// the proof it came with (none without a request), and where DPoP is
    /// required no token goes without one; only then is the proof's
    /// signature checked, with the very key the verified token is bound to.
    fn bind<E>(
        &self,
        proof: Option<Unsigned>,
        claims: &Claims<E>,
    ) -> Result<Option<Proof>, AuthError> {
        let required = self.dpop.as_ref().is_some_and(|d| d.required);
        check_binding(proof.as_ref().map(|p| p.jkt.as_str()), claims, required)?;
        Ok(proof.map(Unsigned::verify).transpose()?)
    }

    /// Verifies `token` now, with the keys held now (nothing fetched), then
    /// binding and `requirement`; no store is asked. Without a request there
    /// is no proof: a DPoP-bound token, and any token where DPoP is required,
    /// is refused.
    pub(crate) fn verify_offline<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        let now = NumericDate::now();
        let claims = self.verify_token(token, now)?;
        self.bind(None, &claims)?;
        requirement.check(&claims, now, self.fresh_max_age)?;
        Ok(claims)
    }

    /// [`verify_offline`](Self::verify_offline), and keys a remote issuer
    /// rotated in are fetched (rate-limited), and the revocation store is
    /// asked: every check the layers make that needs no request.
    pub(crate) async fn verify<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        let now = NumericDate::now();
        let claims = self.verify_token_fetching(token, now).await?;
        self.bind(None, &claims)?;
        requirement.check(&claims, now, self.fresh_max_age)?;
        self.revocation_verdict(self.revocation_check(&claims).await)?;
        Ok(claims)
    }

    /// Every stage the layers run, for a request's head: the token from its
    /// location, its DPoP proof, keys (fetched when rotated), verification,
    /// binding, the CSRF double submit, `requirement`, then the replay and
    /// revocation stores.
    pub(crate) async fn authenticate<E: serde::de::DeserializeOwned>(
        &self,
        request: RequestHead<'_>,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        let found = self.sources.find(request, requirement.token_type())?;
        let now = NumericDate::now();
        let claims = self.verify_token_fetching(&found.token, now).await?;
        let proof = self.proof(request, &found.token, found.dpop, now)?;
        let proof = self.bind(proof, &claims)?;
        check_csrf(found.csrf, &claims)?;
        requirement.check(&claims, now, self.fresh_max_age)?;
        if let (Some(dpop), Some(proof)) = (&self.dpop, &proof) {
            replay_verdict(dpop.first_use(proof, Some(&claims.sub)).await)?;
        }
        self.revocation_verdict(self.revocation_check(&claims).await)?;
        Ok(claims)
    }

    /// Verifies `token` with the keys held now; a key not held comes back as
    /// the keys and rules to fetch it for, with the token's header.
    fn verify_held<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: NumericDate,
    ) -> Result<Result<Claims<E>, (&Trusted, JoseHeader<'static>)>, AuthError> {
        let trusted = self.trust.get(self.trust.for_token(token)?);
        let select = |kid: Option<&str>, alg: &str| trusted.keys.select(kid, alg);
        match trusted.verifier.verify(token, now, select) {
            Ok(claims) => Ok(Ok(*claims)),
            Err(Unverified::Invalid(error)) => Err(error.into()),
            Err(Unverified::KeyMissing(header)) => Ok(Err((trusted, header))),
        }
    }

    fn verify_token<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: NumericDate,
    ) -> Result<Claims<E>, AuthError> {
        self.verify_held(token, now)?
            .map_err(|_| InvalidToken::UnknownKey.into())
    }

    /// [`verify_token`](Self::verify_token), awaiting one refetch of a remote
    /// issuer's keys when the token names a key not held yet.
    async fn verify_token_fetching<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: NumericDate,
    ) -> Result<Claims<E>, AuthError> {
        let (trusted, header) = match self.verify_held(token, now)? {
            Ok(claims) => return Ok(claims),
            Err(missing) => missing,
        };
        let Some(fetch) = trusted.keys.refetch(header.kid.as_deref()) else {
            return Err(InvalidToken::UnknownKey.into());
        };
        fetch.await;
        let now = NumericDate::now();
        let key = key_after_fetch(&trusted.keys, &header, token, now)?;
        Ok(*trusted.verifier.verify_with(token, &header, &key, now)?)
    }

    /// The store's question about verified `claims`.
    pub(crate) fn revocation_check<E>(&self, claims: &Claims<E>) -> StoreFuture<bool> {
        self.store.is_revoked(&TokenRecord::of(claims))
    }

    /// What a store answer means for the request.
    pub(crate) fn revocation_verdict(
        &self,
        answer: Result<bool, StoreError>,
    ) -> Result<(), AuthError> {
        match answer {
            Ok(false) => Ok(()),
            Ok(true) => Err(AuthError::Revoked),
            Err(e) if self.fail_open => {
                tracing::warn!(error = %e, "tower-authx: revocation store unavailable, failing open");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "tower-authx: revocation store unavailable");
                Err(AuthError::StoreUnavailable)
            }
        }
    }
}

/// The key `kid` names once the keys were refetched. Still missing is the
/// token's fault (401) only when keys fetched after the token was issued
/// lack it; while the issuer is unreachable, or before the rate-limited
/// refetch may see a key it just rotated in, it is 503 with `Retry-After`.
fn key_after_fetch<'k>(
    keys: &'k KeySource,
    header: &JoseHeader<'_>,
    token: &str,
    now: NumericDate,
) -> Result<std::borrow::Cow<'k, Arc<crate::keys::Key>>, AuthError> {
    keys.select(header.kid.as_deref(), &header.alg)
        .map_err(|error| match error {
            InvalidToken::UnknownKey
                if keys.not_yet_known(crate::token::unverified_issued_at(token, now)) =>
            {
                AuthError::KeysUnavailable {
                    retry_after: keys.retry_after(),
                }
            }
            other => other.into(),
        })
}

/// The double submit of a cookie-borne token: the CSRF value the request sent
/// must equal the token's `csrf` claim.
fn check_csrf<E>(sent: Option<&[u8]>, claims: &Claims<E>) -> Result<(), AuthError> {
    if let Some(sent) = sent {
        let expected = claims.csrf.as_deref().unwrap_or_default();
        if expected.is_empty() || !constant_time_eq(sent, expected.as_bytes()) {
            return Err(AuthError::Csrf(CsrfFailure::Mismatch));
        }
    }
    Ok(())
}

/// Compares in time that depends on the lengths only, not on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(all(test, feature = "remote-keys"))]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::Full;
    use tower::{Layer, ServiceExt, service_fn};

    use crate::{Algorithm, AuthX, AuthXConfig, Key, RemoteJwks, RequireAuthLayer};

    /// Serves `jwks` on loopback until the test ends; its URL.
    async fn jwks_server(jwks: String) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let jwks = jwks.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let body = Bytes::from(jwks.clone());
                        async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("http://{addr}/jwks.json")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unknown_kid_is_fetched_and_the_request_and_header_are_read_once() {
        let pem = include_bytes!("../tests/fixtures/keys/ec256_private.pem");
        let issuer = AuthX::new(AuthXConfig::new(
            Key::signing_pem(Algorithm::ES256, pem).unwrap(),
        ))
        .unwrap();
        // The resource server has never fetched the keys: the token's kid is
        // unknown until the refetch.
        let url = jwks_server(issuer.jwks().to_owned()).await;
        let resource = AuthX::new(
            AuthXConfig::from_jwks(RemoteJwks::new(&url).unwrap()).danger_accept_any_issuer(),
        )
        .unwrap();
        let service =
            RequireAuthLayer::new(resource).layer(service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            }));
        let token = issuer.create_access_token("u", true).unwrap();
        let request = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        let (finds, reads) = (
            crate::source::FINDS.with(|f| f.get()),
            crate::token::header::READS.with(|r| r.get()),
        );
        let res = service.oneshot(request).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            crate::source::FINDS.with(|f| f.get()) - finds,
            1,
            "request read"
        );
        assert_eq!(
            crate::token::header::READS.with(|r| r.get()) - reads,
            1,
            "header read"
        );
    }
}
