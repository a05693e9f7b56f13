//! The wire format of a compact JWS token, verified with the key it is handed:
//! its header read by our rules, its signature checked by the key (its crypto
//! backend, aws-lc-rs or ring, does the arithmetic), its claims read strictly and
//! checked for time, issuer and audience. Where keys come from is not this
//! module's business: it asks the caller for the key a `kid` names.

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;

mod cache;
pub(crate) mod header;
mod rules;
mod sign;

use crate::base64url;
use crate::claims::{ClaimPath, Claims, ClaimsSeed, NumericDate, Seal};
use crate::error::InvalidToken;
use crate::keys::Key;
use cache::VerifiedCache;
pub(crate) use header::JoseHeader;
pub use rules::IssuerRules;
pub(crate) use sign::Signer;

fn malformed(why: &'static str) -> InvalidToken {
    InvalidToken::Malformed(Cow::Borrowed(why))
}

/// What a token's payload says, read into `T` without verifying anything:
/// only to choose how to verify it or how to refuse it, never to accept it.
fn unverified<T: DeserializeOwned>(token: &str) -> Option<T> {
    let (_, payload_b64, _) = segments(token).ok()?;
    let mut buffer = base64url::stack::<2048>();
    let payload = base64url::decode(payload_b64, &mut buffer)?;
    serde_json::from_slice(&payload).ok()
}

/// The `iat` a token says it has, unverified: to tell "a key the issuer
/// rotated in, not yet fetched" (503) from "a key that does not exist" (401).
/// A date in the future is no date.
pub(crate) fn unverified_issued_at(token: &str, now: NumericDate) -> Option<f64> {
    #[derive(serde::Deserialize)]
    struct Peek {
        iat: Option<f64>,
    }
    let iat = unverified::<Peek>(token)?.iat?;
    (iat.is_finite() && iat >= 0.0 && iat <= now.as_secs_f64() + 60.0).then_some(iat)
}

/// The `exp` a JWT says it has, unverified: for a client that holds a token
/// it cannot verify (an exchanged one), to never use it past its end.
#[cfg(feature = "remote-keys")]
pub(crate) fn unverified_expiry(token: &str) -> Option<f64> {
    #[derive(serde::Deserialize)]
    struct Peek {
        exp: Option<f64>,
    }
    unverified::<Peek>(token)?.exp.filter(|exp| exp.is_finite())
}

/// The `iss` a token says it is from, unverified: to choose whose keys and
/// rules verify it. A payload that is not base64url JSON is malformed (a
/// garbage token is told so, not "invalid issuer"); a token that names no
/// issuer, or names it with another type than a string, names none.
#[cfg(feature = "remote-keys")]
pub(crate) fn unverified_issuer(token: &str) -> Result<Option<String>, InvalidToken> {
    #[derive(serde::Deserialize)]
    struct Peek {
        iss: Option<String>,
    }
    match unverified::<Peek>(token) {
        Some(peek) => Ok(peek.iss),
        None if unverified::<serde::de::IgnoredAny>(token).is_some() => Ok(None),
        None => Err(malformed("the payload is not base64url-encoded JSON")),
    }
}

/// The payload of a compact JWS whose header's `typ` is `typ`, signed with
/// the key `key` gives for its `kid` and `alg` (whose algorithm must be
/// the header's): for signed documents that are not tokens (RFC 9701
/// introspection answers). `Err(Unverified::KeyMissing)` when `key` holds
/// none.
#[cfg(feature = "remote-keys")]
pub(crate) fn verified_payload<'k>(
    jws: &str,
    typ: &str,
    key: impl Fn(Option<&str>, &str) -> Result<Cow<'k, Arc<Key>>, InvalidToken>,
) -> Result<Vec<u8>, Unverified> {
    let (header_b64, payload_b64, signature_b64) = segments(jws)?;
    let mut buffer = base64url::stack::<512>();
    let header = header::read_as(header_b64, &mut buffer, header::Typ::Exactly(typ))?;
    let key = match key(header.kid.as_deref(), &header.alg) {
        Ok(key) => key,
        Err(InvalidToken::UnknownKey) => return Err(Unverified::KeyMissing(header.into_owned())),
        Err(e) => return Err(e.into()),
    };
    if header.alg != key.algorithm().as_str() || key.algorithm().is_hmac() {
        return Err(InvalidToken::Algorithm.into());
    }
    let signed = &jws[..header_b64.len() + 1 + payload_b64.len()];
    if !key.verify_signature(signed.as_bytes(), signature_b64) {
        return Err(InvalidToken::Signature.into());
    }
    let mut buffer = base64url::stack::<0>();
    base64url::decode(payload_b64, &mut buffer)
        .map(Cow::into_owned)
        .ok_or_else(|| malformed("the payload is not base64url").into())
}

/// Whether `token` has a compact JWS's shape (three segments), so that its
/// issuer's keys can verify it; anything else is opaque.
#[cfg(feature = "remote-keys")]
pub(crate) fn is_jws(token: &str) -> bool {
    segments(token).is_ok()
}

/// The three segments of a compact JWS (JWE's five and anything else refused).
/// (`memchr` finds the dots in half the time `str::split` takes here.)
fn segments(token: &str) -> Result<(&str, &str, &str), InvalidToken> {
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    match (dots.next(), dots.next(), dots.next()) {
        (Some(first), Some(second), None) => Ok((
            &token[..first],
            &token[first + 1..second],
            &token[second + 1..],
        )),
        _ => Err(malformed("a JWT has three segments")),
    }
}

/// Why a token was not verified: it is invalid, or it names a key the caller
/// does not hold now (its header comes back, so that nothing is read twice
/// once the key has been fetched).
#[derive(Debug)]
pub(crate) enum Unverified {
    Invalid(InvalidToken),
    KeyMissing(JoseHeader<'static>),
}

impl From<InvalidToken> for Unverified {
    fn from(e: InvalidToken) -> Self {
        Unverified::Invalid(e)
    }
}

/// Everything needed to check a token, prepared once at construction.
pub(crate) struct Verifier {
    /// What marks the claims this verifier vouches for (its `AuthX`'s).
    seal: Seal,
    leeway: f64,
    issuer: Option<String>,
    audience: Vec<String>,
    max_len: usize,
    max_lifetime: Option<f64>,
    cache: Option<VerifiedCache>,
    /// Where the permission set is read from (the issuer's `Idp`).
    permissions: Box<[ClaimPath]>,
    /// Only tokens whose header's `typ` is `at+jwt` (RFC 9068).
    require_at_jwt: bool,
}

impl Verifier {
    /// The verifier of `rules`, marking what it vouches for with `seal`.
    /// `own_keys`: the keys are ours (AuthX's wildcards are then read in
    /// its `scopes` claim alone).
    pub(crate) fn new(seal: Seal, rules: &IssuerRules, own_keys: bool) -> Self {
        Verifier {
            seal: seal.reading(rules.wildcards(own_keys)),
            leeway: rules.leeway.as_secs_f64(),
            issuer: rules.issuer.clone(),
            audience: rules.audiences.clone(),
            max_len: rules.max_token_len,
            max_lifetime: rules.max_lifetime.map(|d| d.as_secs_f64()),
            cache: rules.verified_cache.map(VerifiedCache::new),
            permissions: rules.permissions.as_ref().map_or_else(
                || Box::new([]) as Box<[ClaimPath]>,
                |idp| idp.paths().into(),
            ),
            require_at_jwt: rules.at_jwt_only,
        }
    }

    /// The longest token it takes.
    #[cfg(feature = "remote-keys")]
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Checks shape, header, signature, claim types and time; nothing about
    /// the route (type, freshness), which is the policy's business. `key`
    /// gives the key a `kid` names (or, for none, the key that serves the
    /// token's `alg`).
    pub(crate) fn verify<'k, E: DeserializeOwned>(
        &self,
        token: &str,
        now: NumericDate,
        key: impl Fn(Option<&str>, &str) -> Result<Cow<'k, Arc<Key>>, InvalidToken>,
    ) -> Result<Claims<E>, Unverified> {
        if token.len() > self.max_len {
            return Err(InvalidToken::TooLong.into());
        }
        // A token seen before, whose kid still selects the very key its
        // signature was checked with: time and claims are checked again.
        let reuse = |seen: &cache::Verified| {
            key(seen.kid.as_deref(), seen.key.algorithm().as_str())
                .is_ok_and(|key| Arc::ptr_eq(&*key, &seen.key))
                .then(|| self.claims(&seen.payload, now))
        };
        if let Some(Some(claims)) = self.cache.as_ref().and_then(|c| c.get(token, reuse)) {
            #[cfg(feature = "metrics")]
            metrics::counter!(crate::metrics::VERIFIED_CACHE, "result" => "hit").increment(1);
            return Ok(claims?);
        }
        #[cfg(feature = "metrics")]
        if self.cache.is_some() {
            metrics::counter!(crate::metrics::VERIFIED_CACHE, "result" => "miss").increment(1);
        }
        let parts = segments(token)?;
        let mut buffer = base64url::stack::<512>();
        let header = header::read(parts.0, &mut buffer)?;
        match key(header.kid.as_deref(), &header.alg) {
            Ok(key) => Ok(self.verify_parts(token, parts, &header, &key, now)?),
            Err(InvalidToken::UnknownKey) => Err(Unverified::KeyMissing(header.into_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// The rest of [`verify`](Self::verify) for a token whose `header` was
    /// read, with the key it names.
    pub(crate) fn verify_with<E: DeserializeOwned>(
        &self,
        token: &str,
        header: &JoseHeader<'_>,
        key: &Arc<Key>,
        now: NumericDate,
    ) -> Result<Claims<E>, InvalidToken> {
        self.verify_parts(token, segments(token)?, header, key, now)
    }

    /// [`verify_with`](Self::verify_with) of a token already cut in its segments.
    fn verify_parts<E: DeserializeOwned>(
        &self,
        token: &str,
        (header_b64, payload_b64, signature_b64): (&str, &str, &str),
        header: &JoseHeader<'_>,
        key: &Arc<Key>,
        now: NumericDate,
    ) -> Result<Claims<E>, InvalidToken> {
        // The key's algorithm must be the token's: a key never serves two.
        if header.alg != key.algorithm().as_str() {
            return Err(InvalidToken::Algorithm);
        }
        if self.require_at_jwt && !header.access_typed {
            return Err(malformed("the header's typ is not at+jwt"));
        }
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verify_signature(signed.as_bytes(), signature_b64) {
            return Err(InvalidToken::Signature);
        }
        let mut payload_buf = base64url::stack::<2048>();
        let payload = base64url::decode(payload_b64, &mut payload_buf)
            .ok_or_else(|| malformed("the payload is not base64url"))?;
        let claims = self.claims(&payload, now)?;
        if let Some(cache) = &self.cache {
            let exp = claims.exp.as_secs_f64();
            let kid = header.kid.as_deref();
            cache.insert(token, &payload, kid, key.clone(), exp, now.as_secs_f64());
        }
        Ok(claims)
    }

    /// The claims of a payload vouched for otherwise (an introspection
    /// answer), read and checked as a verified token's.
    #[cfg(feature = "remote-keys")]
    pub(crate) fn read_payload<E: DeserializeOwned>(
        &self,
        payload: &[u8],
        now: NumericDate,
    ) -> Result<Claims<E>, InvalidToken> {
        self.claims(payload, now)
    }

    /// The claims of a payload whose signature is verified, checked for time,
    /// issuer and audience.
    fn claims<E: DeserializeOwned>(
        &self,
        payload: &[u8],
        now: NumericDate,
    ) -> Result<Claims<E>, InvalidToken> {
        // UTF-8 checked once here rather than string by string inside serde_json.
        let payload = std::str::from_utf8(payload).map_err(|_| not_json())?;
        // Not boxed: the extensions box them (one allocation, not two).
        let mut reader = serde_json::Deserializer::from_str(payload);
        let claims = serde::de::DeserializeSeed::deserialize(
            ClaimsSeed::<E>::new(&self.permissions),
            &mut reader,
        )
        .and_then(|claims| reader.end().map(|()| claims))
        .map_err(claims_error)?;
        let mut claims: Claims<E> = claims;
        self.check_time(&claims, now)?;
        self.check_issuer_and_audience(&claims)?;
        claims.verified_by = self.seal;
        Ok(claims)
    }

    fn check_time<E>(&self, claims: &Claims<E>, now: NumericDate) -> Result<(), InvalidToken> {
        let now = now.as_secs_f64();
        if now >= claims.exp.as_secs_f64() + self.leeway {
            return Err(InvalidToken::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.as_secs_f64() > now + self.leeway)
        {
            return Err(InvalidToken::NotYetValid);
        }
        if claims
            .iat
            .is_some_and(|iat| iat.as_secs_f64() > now + self.leeway)
        {
            return Err(InvalidToken::IssuedInFuture);
        }
        if let Some(max) = self.max_lifetime {
            // From issue (or from now, for a token that does not say) to expiry.
            let start = claims.iat.map_or(now, NumericDate::as_secs_f64);
            if claims.exp.as_secs_f64() - start > max {
                return Err(InvalidToken::Lifetime);
            }
        }
        Ok(())
    }

    fn check_issuer_and_audience<E>(&self, claims: &Claims<E>) -> Result<(), InvalidToken> {
        if let Some(issuer) = &self.issuer
            && claims.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(InvalidToken::Issuer);
        }
        // RFC 8725 3.9: a token meant for somebody (any `aud`) is not meant for a
        // service that expects no audience.
        let aud_ok = match &claims.aud {
            None => self.audience.is_empty(),
            Some(aud) => aud
                .iter()
                .any(|a| self.audience.iter().any(|ours| ours == a)),
        };
        if aud_ok {
            Ok(())
        } else {
            Err(InvalidToken::Audience)
        }
    }
}

/// A claims error without serde's "at line 1 column 9" and without any value.
fn claims_error(e: serde_json::Error) -> InvalidToken {
    if !e.is_data() {
        return not_json();
    }
    let mut msg = e.to_string();
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    InvalidToken::Claims(Cow::Owned(msg))
}

fn not_json() -> InvalidToken {
    InvalidToken::Claims(Cow::Borrowed("the payload is not a JSON object"))
}
