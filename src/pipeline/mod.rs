//! The one place that knows the order of a request:
//!
//! ```text
//! claims an outer guard of this AuthX verified? -> policy, done
//! source (header | cookie | query | json body) -> token [-> no token: optional passes]
//!   -> key (by kid; a remote kid we lack: await one refetch, then go on)
//!   -> verify (header, signature, claims, time, issuer, audience)
//!      or, for an opaque token (or an issuer that introspects all), its
//!      issuer's introspection answer (cached, or awaited: one call per
//!      token at a time, bounded), read and checked as claims are
//!   -> DPoP proof (for the DPoP scheme: method, URI, time, nonce, ath),
//!      binding (cnf.jkt is the proof's key; a bound token never as Bearer),
//!      then the proof's key and signature: a request with a garbage token
//!      costs what a bad token costs, whatever proof it carries
//!   -> CSRF double submit (for a cookie-borne token)
//!   -> policy (type, freshness, scopes)
//!   -> replay store (the proof's first use), then revocation store (after
//!      everything local, so no unauthenticated request ever reaches them)
//!   -> claims into the extensions (and, for an access cookie, what
//!      `ImplicitRefresh` needs to renew it after the service answered)
//! ```
//!
//! Every step refuses on its own with an [`AuthError`]; what must be awaited
//! (keys, a network store) comes back as [`Pending`], and the request goes on
//! from where it stopped: nothing is read twice.

use std::sync::Arc;
use std::time::Duration;

use http::Request;

use crate::claims::{Claims, NumericDate};
use crate::csrf::check_csrf;
use crate::dpop::{DpopCheck, Proof, Unsigned, check_binding, replay_verdict};
use crate::error::AuthError;
use crate::mtls::{self, CertificateSource, check_certificate};
use crate::observe::{Meters, Notes, Observed};
use crate::policy::{Admission, Requirement};
use crate::request::RequestHead;
use crate::source::{Found, JsonTokens, Sources};
use crate::store::{RevocationStore, StoreError, StoreFuture, TokenRecord};

mod build;
mod pending;
mod read;
mod trust;

pub(crate) use build::{audience_is_resource, check_settings};
pub(crate) use pending::{Pending, StoreChecks};
use read::{Read, Wait, Waited};
pub(crate) use trust::Trust;

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
    /// Where a request's client certificate comes from (RFC 8705).
    pub(crate) certificates: CertificateSource,
    /// The resolved metric handles (empty without the feature).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) meters: Meters,
    /// Whether the request's span names the subject.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) trace_subject: bool,
    /// Every open stream that ends with its credential, made when the first
    /// `EndWithCredentialLayer` is.
    #[cfg(feature = "streams")]
    pub(crate) streams: std::sync::OnceLock<Arc<crate::stream::Schedule>>,
}

/// A request, for the stages after verification: its head, and the client
/// certificate of its connection.
struct Arrival<'a> {
    head: RequestHead<'a>,
    certificate: mtls::Presented,
}

/// What a request presented, as read from it: the token, whether it came
/// with the DPoP scheme, and the CSRF value sent with a cookie-borne token.
#[derive(Clone, Copy)]
pub(crate) struct Presented<'a> {
    pub(crate) token: &'a str,
    pub(crate) dpop: bool,
    pub(crate) csrf: Option<&'a [u8]>,
    /// It came from a cookie: a browser session, which `ImplicitRefresh` may renew.
    pub(crate) cookie: bool,
}

impl<'a> Presented<'a> {
    fn found(found: &'a Found<'a>) -> Self {
        Presented {
            token: &found.token,
            dpop: found.dpop,
            csrf: found.csrf,
            cookie: found.cookie,
        }
    }

    /// A token handed over without a request.
    fn token(token: &'a str) -> Self {
        Presented {
            token,
            dpop: false,
            csrf: None,
            cookie: false,
        }
    }
}

/// Left in the extensions when the admitted token is an access token from
/// the access cookie (a browser session), for `ImplicitRefresh`: which
/// AuthX admitted it (every check passed, the stores' included, before the
/// inner service runs), and the token's expiry and `jti`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CookieSession {
    pub(crate) pipeline: u64,
    pub(crate) exp: NumericDate,
    pub(crate) jti: Option<String>,
}

/// Left in the extensions by an optional guard that found no credential, so
/// extractors can tell "no token" from "no guard".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymous;

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

#[cfg(feature = "streams")]
impl Pipeline {
    /// The schedule of this AuthX's open streams, made on first use.
    pub(crate) fn streams(&self) -> &Arc<crate::stream::Schedule> {
        self.streams.get_or_init(|| {
            let leeway = self
                .trust
                .rules()
                .into_iter()
                .map(|rules| (rules.issuer, rules.leeway))
                .collect();
            Arc::new(crate::stream::Schedule::new(self.store.clone(), leeway))
        })
    }

    /// Keeps what each guard of `req` requires, once streams are watched: a
    /// WebSocket's renewal is checked against all of it.
    fn keep_requirement<B>(&self, req: &mut Request<B>, requirement: &Requirement) {
        if self.streams.get().is_none() {
            return;
        }
        let extensions = req.extensions_mut();
        match extensions.get_mut::<crate::stream::Required>() {
            Some(required) => required.0.push(requirement.clone()),
            None => {
                extensions.insert(crate::stream::Required(vec![requirement.clone()]));
            }
        }
    }
}

impl Pipeline {
    /// Authorizes `req` for `admission` as far as can be done now (the
    /// layers' entry point).
    pub(crate) fn start<E: ClaimsExtra, B>(
        &self,
        admission: &Admission,
        req: &mut Request<B>,
        notes: &Notes,
    ) -> Result<Option<Pending>, AuthError> {
        let requirement = admission.requirement();
        #[cfg(feature = "streams")]
        self.keep_requirement(req, requirement);
        let now = NumericDate::now();
        if let Some(claims) = req.extensions().get::<Claims<E>>()
            && claims.verified_by.admitted_by(self.id)
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
        let json = req.extensions().get::<JsonTokens>();
        let found = match self
            .sources
            .find(RequestHead::of(req), json, requirement.token_type())
        {
            Ok(found) => found,
            Err(AuthError::MissingToken) if admission.lets_anonymous_in() => {
                req.extensions_mut().insert(Anonymous);
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let presented = Presented::found(&found);
        match self.read::<E>(presented, Some(req.extensions()), now, notes)? {
            Read::Claims(claims) => {
                let proof = self.checked(req, &claims, presented, requirement, now)?;
                self.admit(req, claims, proof, presented.cookie, notes)
            }
            Read::Waits(wait) => Ok(Some(Pending::Claims {
                wait,
                token: found.token.into_owned(),
                csrf: found.csrf.map(<[u8]>::to_vec),
                dpop: found.dpop,
                cookie: found.cookie,
            })),
        }
    }

    /// Goes on once what reading the claims waited for is in.
    pub(crate) fn after_wait<E: ClaimsExtra, B>(
        &self,
        requirement: &Requirement,
        req: &mut Request<B>,
        wait: &Wait,
        waited: Waited,
        presented: Presented<'_>,
        notes: &Notes,
    ) -> Result<Option<Pending>, AuthError> {
        let claims = self.read_after::<E>(wait, waited, presented.token, notes)?;
        self.go_on(
            req,
            claims,
            presented,
            requirement,
            NumericDate::now(),
            notes,
        )
    }

    /// Every stage after the token's claims are known, for a request.
    fn go_on<E: ClaimsExtra, B>(
        &self,
        req: &mut Request<B>,
        claims: Claims<E>,
        presented: Presented<'_>,
        requirement: &Requirement,
        now: NumericDate,
        notes: &Notes,
    ) -> Result<Option<Pending>, AuthError> {
        let proof = self.checked(req, &claims, presented, requirement, now)?;
        self.admit(req, claims, proof, presented.cookie, notes)
    }

    /// The local stages after verification, for a request: the proof that
    /// passed, to spend.
    fn checked<E, B>(
        &self,
        req: &Request<B>,
        claims: &Claims<E>,
        presented: Presented<'_>,
        requirement: &Requirement,
        now: NumericDate,
    ) -> Result<Option<Proof>, AuthError> {
        self.after_verify(
            Some(self.arrival_of(req)),
            presented,
            claims,
            requirement,
            now,
        )
    }

    /// A request as the stages after verification see it: its head and the
    /// client certificate of its connection (from the acceptor, or the
    /// trusted header).
    fn arrival_of<'r, B>(&self, req: &'r Request<B>) -> Arrival<'r> {
        Arrival {
            head: RequestHead::of(req),
            certificate: self.certificates.of(&RequestHead::of(req)),
        }
    }

    /// The stages after the token is verified, the same for every entry
    /// point: its DPoP proof and binding, its certificate binding (a token
    /// that came without a request has neither proof nor certificate), the
    /// CSRF double submit, then the route's requirement. The proof that
    /// passed, to spend.
    fn after_verify<E>(
        &self,
        request: Option<Arrival<'_>>,
        presented: Presented<'_>,
        claims: &Claims<E>,
        requirement: &Requirement,
        now: NumericDate,
    ) -> Result<Option<Proof>, AuthError> {
        let proof = match (&self.dpop, &request) {
            (Some(dpop), Some(request)) => {
                dpop.proof(request.head, presented.token, presented.dpop, now)?
            }
            _ => None,
        };
        // A token bound both ways is checked both ways.
        match &request {
            Some(request) => check_certificate(claims, &request.certificate)?,
            None => check_certificate(claims, &mtls::Presented::None)?,
        }
        let proof = self.bind(proof, claims)?;
        check_csrf(presented.csrf, claims)?;
        requirement.check(claims, now, self.fresh_max_age)?;
        Ok(proof)
    }

    /// The binding: the token's binding fits the proof it came with (none
    /// without a request), and where DPoP is required no token goes without
    /// one; only then is the proof's signature checked, with the very key the
    /// verified token is bound to.
    fn bind<E>(
        &self,
        proof: Option<Unsigned>,
        claims: &Claims<E>,
    ) -> Result<Option<Proof>, AuthError> {
        let required = self.dpop.as_ref().is_some_and(|d| d.required);
        check_binding(proof.as_ref().map(|p| p.jkt.as_str()), claims, required)?;
        match (&self.dpop, proof) {
            (Some(dpop), Some(proof)) => Ok(Some(dpop.verify_bound(proof)?)),
            _ => Ok(None),
        }
    }

    /// The stores, after everything local, asked in order: the proof's first
    /// use, then revocation. What answers at once decides now; what does not
    /// comes back to be waited for.
    fn ask_stores<E>(
        &self,
        claims: &Claims<E>,
        proof: Option<&Proof>,
    ) -> Result<Option<StoreChecks>, AuthError> {
        let mut checks = StoreChecks::default();
        if let (Some(dpop), Some(proof)) = (&self.dpop, proof) {
            match dpop
                .first_use(proof, Some(&claims.sub), None)
                .now_or_later()
            {
                Ok(answer) => replay_verdict(answer)?,
                Err(later) => checks.replay = Some(later),
            }
        }
        match self.revocation_check(claims).now_or_later() {
            Ok(answer) => self.revocation_verdict(answer)?,
            Err(later) => checks.revocation = Some(later),
        }
        Ok(checks.is_waiting().then_some(checks))
    }

    /// The stores, then the claims into the extensions.
    fn admit<E: ClaimsExtra, B>(
        &self,
        req: &mut Request<B>,
        claims: Claims<E>,
        proof: Option<Proof>,
        cookie: bool,
        notes: &Notes,
    ) -> Result<Option<Pending>, AuthError> {
        let checks = self.ask_stores(&claims, proof.as_ref())?;
        if cookie && claims.token_type == crate::claims::TokenType::Access {
            req.extensions_mut().insert(CookieSession {
                pipeline: self.id,
                exp: claims.exp,
                jti: claims.jti.clone(),
            });
        }
        let mut claims = claims;
        claims.verified_by = claims.verified_by.admitted();
        req.extensions_mut().insert(claims);
        Ok(checks.map(|mut checks| {
            notes.store_asked();
            checks.asked = crate::observe::store_asked_at();
            Pending::Stores(checks)
        }))
    }

    /// The stores' verdict, awaited (the entry points that are `async`).
    async fn await_stores(&self, checks: Option<StoreChecks>) -> Result<(), AuthError> {
        match checks {
            Some(mut checks) => std::future::poll_fn(|cx| checks.poll_verdict(cx, self)).await,
            None => Ok(()),
        }
    }

    /// Verifies `token` now, with the keys held now (nothing fetched), then
    /// the binding and `requirement`; no store is asked. Without a request
    /// there is no proof: a DPoP-bound token, and any token where DPoP is
    /// required, is refused.
    pub(crate) fn verify_offline<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        let now = NumericDate::now();
        let claims = self.read_now(Presented::token(token), now)?;
        self.after_verify(None, Presented::token(token), &claims, requirement, now)?;
        Ok(claims)
    }

    /// The claims of a token this `AuthX` just handed out or already
    /// admitted, checked as any token's are (signature, time, issuer,
    /// audience) but not against a request (no binding, no requirement): for
    /// bookkeeping about it (a login's session listed, a cookie renewed),
    /// never to admit anything.
    pub(crate) fn issued_claims<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<Claims<E>, AuthError> {
        self.read_now(Presented::token(token), NumericDate::now())
    }

    /// [`verify_offline`](Self::verify_offline), and keys a remote issuer
    /// rotated in are fetched (rate-limited), and the revocation store is
    /// asked: every stage the layers run that needs no request.
    pub(crate) async fn verify<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        let now = NumericDate::now();
        let presented = Presented::token(token);
        let claims = self.read_waiting(presented, None, now).await?;
        self.after_verify(None, presented, &claims, requirement, now)?;
        self.await_stores(self.ask_stores(&claims, None)?).await?;
        Ok(claims)
    }

    /// The token a guard of this pipeline admitted for `request`: the one
    /// its sources find there (the guard found it the same way), with the
    /// claims the guard left in the extensions.
    #[cfg(feature = "remote-keys")]
    pub(crate) fn caller<E: Send + Sync + 'static>(
        &self,
        request: RequestHead<'_>,
    ) -> Option<crate::exchange::Caller> {
        let extensions = request.extensions?;
        let claims = extensions
            .get::<Claims<E>>()
            .filter(|claims| claims.verified_by.admitted_by(self.id))?;
        let json = extensions.get::<JsonTokens>();
        let found = self.sources.find(request, json, None).ok()?;
        Some(crate::exchange::Caller::new(&found.token, claims))
    }

    /// Every stage the layers run, for a request's head: the token from its
    /// location, keys (fetched when rotated), verification, the DPoP proof and
    /// binding, the CSRF double submit, `requirement`, then the replay and
    /// revocation stores.
    pub(crate) async fn authenticate<E: serde::de::DeserializeOwned>(
        &self,
        request: RequestHead<'_>,
        requirement: &Requirement,
    ) -> Result<Claims<E>, AuthError> {
        // The extensions, when the head has them, hold a JSON body's tokens
        // (JsonTokenLayer) and the connection's certificate.
        let json = request.extensions.and_then(|e| e.get::<JsonTokens>());
        let found = self.sources.find(request, json, requirement.token_type())?;
        let now = NumericDate::now();
        let presented = Presented::found(&found);
        let claims = self
            .read_waiting(presented, request.extensions, now)
            .await?;
        let arrival = Arrival {
            head: request,
            certificate: self.certificates.of(&request),
        };
        let proof = self.after_verify(Some(arrival), presented, &claims, requirement, now)?;
        self.await_stores(self.ask_stores(&claims, proof.as_ref())?)
            .await?;
        Ok(claims)
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
