//! Sender-constrained tokens: DPoP (RFC 9449). A DPoP-bound token names its
//! holder's key (`cnf.jkt`); every request that presents it as
//! `Authorization: DPoP <token>` carries a fresh proof, signed with that key,
//! for this very method, URI and token. A stolen token alone is useless, and a
//! stolen proof works once, for one request, for a minute.
//!
//! The pipeline asks this module two things: the proof of a request (checked
//! here, locally) and whether a verified token's binding fits how it came
//! (`check_binding`). Whether a proof was seen before is the replay store's
//! business, asked last, with the revocation store.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{HeaderMap, Uri};

use crate::claims::{Claims, NumericDate};
use crate::error::{AuthError, ConfigError, DpopError};
use crate::keys::Algorithm;
use crate::request::RequestHead;
use crate::store::{MemoryReplay, ProofUse, ReplayStore, StoreError, StoreFuture};

mod client;
mod htu;
mod keys;
mod nonce;
mod proof;

pub use client::DpopSigner;
use keys::ProofKeys;
pub(crate) use nonce::Nonces;
pub(crate) use proof::{Proof, Unsigned};

/// The request header that carries the proof (gRPC: the `dpop` metadata).
pub(crate) static DPOP: HeaderName = HeaderName::from_static("dpop");

/// The header that hands out the server's nonce.
pub(crate) static DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The asymmetric algorithms proofs may use by default: every one we verify.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];

/// DPoP settings, for [`AuthXConfig::dpop`](crate::AuthXConfig::dpop).
///
/// ```
/// # use std::time::Duration;
/// use tower_authx::{AuthXConfig, Dpop};
///
/// let config = AuthXConfig::from_secret([7u8; 32])?.dpop(
///     // The URL clients address this service by: proofs name it in `htu`.
///     Dpop::new("https://api.example.com")
///         .required(true)
///         .nonces(b"a secret shared by every instance, 32+ bytes", Duration::from_secs(300)),
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Dpop {
    public_url: String,
    required: bool,
    algorithms: Vec<Algorithm>,
    proof_lifetime: Duration,
    clock_skew: Duration,
    nonce: Option<(Vec<u8>, Duration)>,
    replay: Option<Arc<dyn ReplayStore>>,
}

impl Dpop {
    /// Accepts DPoP at `public_url`: the scheme, host and port (and path
    /// prefix, behind a proxy that adds one) by which clients address this
    /// service. A proof's `htu` must name it plus the request's path; the
    /// `Host` header is never trusted for that.
    pub fn new(public_url: impl Into<String>) -> Dpop {
        Dpop {
            public_url: public_url.into(),
            required: false,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            proof_lifetime: Duration::from_secs(60),
            clock_skew: Duration::from_secs(5),
            nonce: None,
            replay: None,
        }
    }

    /// Whether only DPoP-bound tokens are taken (default: no, unbound tokens
    /// still work as Bearer; bound ones always need their proof).
    #[must_use]
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// The algorithms a proof may be signed with (default: every asymmetric
    /// one; HMAC is never accepted).
    #[must_use]
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How old a proof's `iat` may be (default 60 s); proofs are remembered
    /// for replay this long (plus the skew).
    #[must_use]
    pub fn proof_lifetime(mut self, lifetime: Duration) -> Self {
        self.proof_lifetime = lifetime;
        self
    }

    /// How far ahead of our clock a proof's `iat` may be (default 5 s).
    #[must_use]
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Requires server nonces (RFC 9449 9): a proof must carry a nonce made
    /// with `secret` (at least 32 bytes; give every instance the same) within
    /// the last one to two `rotation` periods; otherwise the answer is 401
    /// `use_dpop_nonce` with the current nonce in `DPoP-Nonce`.
    #[must_use]
    pub fn nonces(mut self, secret: impl AsRef<[u8]>, rotation: Duration) -> Self {
        self.nonce = Some((secret.as_ref().to_vec(), rotation));
        self
    }

    /// Where used proofs are remembered (default: a
    /// [`MemoryReplay`](crate::MemoryReplay) of this process; `RedisStore`
    /// shares them, so a proof replayed to another instance is refused too).
    #[must_use]
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay = Some(Arc::new(store));
        self
    }
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop")
            .field("public_url", &self.public_url)
            .field("required", &self.required)
            .field("algorithms", &self.algorithms)
            .field("proof_lifetime", &self.proof_lifetime)
            .field("nonces", &self.nonce.is_some())
            .field("custom_replay_store", &self.replay.is_some())
            .finish()
    }
}

/// A client key proven by a DPoP proof at a token request (a login): what
/// issued tokens are bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopKey(String);

impl DpopKey {
    pub(crate) fn new(jkt: String) -> DpopKey {
        DpopKey(jkt)
    }

    /// The key a verified token is bound to (`cnf.jkt`), to keep tokens
    /// issued in exchange for it (a refresh) bound to the same key.
    pub fn of<E>(claims: &Claims<E>) -> Option<DpopKey> {
        claims
            .cnf
            .as_ref()
            .and_then(|cnf| cnf.dpop_key())
            .map(|jkt| DpopKey(jkt.to_owned()))
    }

    /// The key's RFC 7638 SHA-256 thumbprint, as `cnf.jkt` carries it.
    pub fn thumbprint(&self) -> &str {
        &self.0
    }
}

/// DPoP as configured, ready for requests.
pub(crate) struct DpopCheck {
    /// The normalized public URL without a trailing `/`.
    base: String,
    pub(crate) required: bool,
    rules: proof::Rules,
    replay: Arc<dyn ReplayStore>,
    keys: ProofKeys,
}

impl DpopCheck {
    pub(crate) fn new(dpop: Dpop) -> Result<DpopCheck, ConfigError> {
        let base = htu::normalize(&dpop.public_url)
            .filter(|_| !dpop.public_url.contains(['?', '#']))
            .ok_or_else(|| {
                ConfigError::new(
                    "Dpop::new needs an absolute http(s) URL without query or fragment",
                )
            })?;
        if dpop.algorithms.is_empty() || dpop.algorithms.iter().any(|a| a.is_hmac()) {
            return Err(ConfigError::new(
                "DPoP proofs need at least one algorithm, and never HMAC",
            ));
        }
        if dpop.proof_lifetime.is_zero() {
            return Err(ConfigError::new("the DPoP proof lifetime must be positive"));
        }
        let nonces = match dpop.nonce {
            Some((secret, _)) if secret.len() < 32 => {
                return Err(ConfigError::new(
                    "the DPoP nonce secret needs at least 32 bytes",
                ));
            }
            Some((_, rotation)) if rotation.as_secs() == 0 => {
                return Err(ConfigError::new(
                    "DPoP nonces need a rotation of at least a second",
                ));
            }
            Some((secret, rotation)) => Some(Nonces::new(secret, rotation)),
            None => None,
        };
        Ok(DpopCheck {
            base: base.trim_end_matches('/').to_owned(),
            required: dpop.required,
            rules: proof::Rules {
                algorithms: dpop.algorithms,
                max_age: dpop.proof_lifetime,
                skew: dpop.clock_skew,
                nonces,
            },
            replay: dpop
                .replay
                .unwrap_or_else(|| Arc::new(MemoryReplay::default())),
            keys: ProofKeys::default(),
        })
    }

    /// The proof of a request whose token came with the DPoP scheme
    /// (`dpop_scheme`), checked against the request and `token`; `None` for a
    /// Bearer token, which `check_binding` later refuses if it is bound or DPoP is required.
    pub(crate) fn proof(
        &self,
        request: RequestHead<'_>,
        token: &str,
        dpop_scheme: bool,
        now: NumericDate,
    ) -> Result<Option<Unsigned>, AuthError> {
        if !dpop_scheme {
            // Bearer where DPoP is required: the binding stage refuses it.
            return Ok(None);
        }
        let value = one_proof(request.headers)?
            .ok_or(DpopError::InvalidProof("the request has no DPoP proof"))?;
        self.check(value, request, Some(token), now).map(Some)
    }

    /// The proof of a token request (a login), if it sent one, signature
    /// checked (there is no token to check first).
    pub(crate) fn token_request_proof(
        &self,
        request: RequestHead<'_>,
    ) -> Result<Option<Proof>, AuthError> {
        match one_proof(request.headers)? {
            // Not remembered: no token vouches for a login's key.
            Some(value) => Ok(Some(
                self.check(value, request, None, NumericDate::now())?
                    .verify(&self.keys, false)?,
            )),
            None => Ok(None),
        }
    }

    /// The signature of a proof whose key the verified token is bound to.
    pub(crate) fn verify_bound(&self, proof: Unsigned) -> Result<Proof, DpopError> {
        proof.verify(&self.keys, true)
    }

    fn check(
        &self,
        value: &str,
        request: RequestHead<'_>,
        token: Option<&str>,
        now: NumericDate,
    ) -> Result<Unsigned, AuthError> {
        let htu = self.htu(request.uri).ok_or(DpopError::InvalidProof(
            "the request's URI cannot be compared",
        ))?;
        let request = proof::Request {
            method: request.method.as_str(),
            htu: &htu,
            token,
            now,
        };
        Ok(proof::check(value, &request, &self.rules)?)
    }

    /// The URI a proof for `uri` must name: our public URL and the path
    /// (`None` for a path with dot segments: see `htu::has_dot_segments`).
    fn htu(&self, uri: &Uri) -> Option<String> {
        if htu::has_dot_segments(uri.path()) {
            return None;
        }
        htu::normalize(&format!("{}{}", self.base, uri.path()))
    }

    /// Asks the replay store whether `proof` is used for the first time;
    /// `subject`: the account of the token it came with (none at a login).
    /// `client`: the address a token request came from.
    pub(crate) fn first_use(
        &self,
        proof: &Proof,
        subject: Option<&str>,
        client: Option<std::net::IpAddr>,
    ) -> StoreFuture<bool> {
        self.replay.first_use(&ProofUse {
            id: &proof.id,
            key: &proof.jkt,
            subject,
            client,
            expires: proof.expires,
        })
    }

    /// The algorithms for the challenge's `algs`.
    pub(crate) fn algorithms(&self) -> &[Algorithm] {
        &self.rules.algorithms
    }

    pub(crate) fn nonces(&self) -> Option<&Nonces> {
        self.rules.nonces.as_ref()
    }
}

/// What a replay store's answer means for the request. A store that cannot
/// answer fails closed whatever the revocation setting: a proof we cannot
/// remember could be replayed.
pub(crate) fn replay_verdict(answer: Result<bool, StoreError>) -> Result<(), AuthError> {
    match answer {
        Ok(true) => Ok(()),
        Ok(false) => Err(DpopError::Replayed.into()),
        Err(e) if e.is_over_limit() => {
            tracing::debug!(error = %e, "tower-authx: DPoP proofs over a client's limit");
            Err(DpopError::TooManyProofs.into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "tower-authx: DPoP replay store unavailable");
            Err(AuthError::StoreUnavailable)
        }
    }
}

/// The one `DPoP` header, if any; two are refused (RFC 9449 4.3, step 1).
fn one_proof(headers: &HeaderMap) -> Result<Option<&str>, DpopError> {
    let mut values = headers.get_all(&DPOP).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(v), None) => v,
        (Some(_), Some(_)) => return Err(DpopError::InvalidProof("more than one DPoP header")),
    };
    if value.len() > proof::MAX_PROOF_LEN {
        return Err(DpopError::InvalidProof("the proof is too long"));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| DpopError::InvalidProof("the proof is not ASCII"))
}

/// Why a token without a proof is refused where DPoP is required.
const ONLY_DPOP: &str = "this resource takes DPoP-bound tokens only";

/// Before any network call about a token (introspection): where DPoP is
/// required, a request without the DPoP scheme is refused as the binding
/// check would refuse it later.
#[cfg(feature = "remote-keys")]
pub(crate) fn check_scheme(dpop_required: bool, dpop_scheme: bool) -> Result<(), AuthError> {
    if dpop_required && !dpop_scheme {
        return Err(AuthError::Dpop(DpopError::Binding(ONLY_DPOP)));
    }
    Ok(())
}

/// Whether a verified token's binding fits how it came: a bound token only
/// with a proof of its key (`proof_key`, the proof's thumbprint); a proof
/// only with a token bound to that key; a binding we cannot check never;
/// and, where DPoP is required, no token without a proof (whichever entry
/// point verifies it). Checked before the proof's signature, so a proof is
/// verified only with the key its token is bound to.
pub(crate) fn check_binding<E>(
    proof_key: Option<&str>,
    claims: &Claims<E>,
    dpop_required: bool,
) -> Result<(), AuthError> {
    let refuse = |why| Err(AuthError::Dpop(DpopError::Binding(why)));
    if dpop_required && proof_key.is_none() {
        return refuse(ONLY_DPOP);
    }
    // A certificate binding is the certificate check's (mtls.rs); any other
    // method we cannot check refuses.
    let bound_to = match &claims.cnf {
        None => None,
        Some(cnf) if cnf.other_methods || (cnf.jkt.is_none() && cnf.x5t_s256.is_none()) => {
            return refuse("the token is bound in a way this server cannot check");
        }
        Some(cnf) => cnf.jkt.as_deref(),
    };
    match (proof_key, bound_to) {
        (None, None) => Ok(()),
        (Some(proof_key), Some(jkt)) if proof_key == jkt => Ok(()),
        (Some(_), Some(_)) => refuse("the token is bound to another key than the proof's"),
        (Some(_), None) => refuse("the token is not DPoP-bound"),
        (None, Some(_)) => {
            refuse("the token is DPoP-bound: present it with the DPoP scheme and a proof")
        }
    }
}
