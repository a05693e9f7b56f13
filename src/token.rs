//! The wire format: issuing and verifying compact JWS tokens. The only module that
//! calls `jsonwebtoken` (for the signature arithmetic alone: the header, the claims
//! and the time checks are ours, so that every rule is one we chose).

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};

use crate::cache::VerifiedCache;
use crate::claims::{Audience, Claims, NumericDate};
use crate::error::{ConfigError, InvalidToken, IssueError};
use crate::keys::{Algorithm, Key};
use crate::keyset::KeyRing;

/// Makes sure jsonwebtoken has exactly one crypto provider, so no decode can panic.
pub(crate) fn ensure_crypto_backend() -> Result<(), ConfigError> {
    #[cfg(all(feature = "rust-crypto", feature = "aws-lc-rs"))]
    {
        // Both features on (cargo features add up across a dependency graph):
        // aws-lc-rs is the one somebody asked for on purpose. Losing the race to a
        // provider the application installed itself is fine: that one is used.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
    }
    jsonwebtoken::crypto::CryptoProvider::try_get_default()
        .map(|_| ())
        .ok_or_else(|| {
            ConfigError::new("no jsonwebtoken crypto provider: enable `rust-crypto` or `aws-lc-rs`")
        })
}

/// The JOSE header members we read. Anything else (`jwk`, `jku`, `x5u`, `x5c`) is
/// ignored: a token never tells us where to fetch a key.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    /// Names one of the keys we hold; never used to load a key.
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    enc: bool,
    #[serde(default, deserialize_with = "present")]
    zip: bool,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// `typ` is optional; when present it must say JWT (RFC 7519 5.1, RFC 9068 2.1).
fn acceptable_typ(typ: &str) -> bool {
    ["JWT", "at+jwt", "application/at+jwt"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(typ))
}

fn malformed(why: &'static str) -> InvalidToken {
    InvalidToken::Malformed(Cow::Borrowed(why))
}

/// Everything needed to check a token, prepared once at construction.
pub(crate) struct Verifier {
    pub(crate) keys: Keys,
    leeway: f64,
    issuer: Option<String>,
    audience: Vec<String>,
    pub(crate) max_len: usize,
    max_lifetime: Option<f64>,
    cache: Option<VerifiedCache>,
}

impl Verifier {
    pub(crate) fn new(
        keys: Keys,
        leeway: std::time::Duration,
        issuer: Option<String>,
        audience: Vec<String>,
        max_len: usize,
        max_lifetime: Option<std::time::Duration>,
        cache_capacity: Option<usize>,
    ) -> Self {
        Verifier {
            keys,
            leeway: leeway.as_secs_f64(),
            issuer,
            audience,
            max_len,
            max_lifetime: max_lifetime.map(|d| d.as_secs_f64()),
            cache: cache_capacity.map(VerifiedCache::new),
        }
    }

    /// Checks shape, header, signature, claim types and time; nothing about the
    /// route (type, freshness) which is the policy's business.
    pub(crate) fn verify<E: DeserializeOwned>(
        &self,
        token: &str,
        now: NumericDate,
    ) -> Result<Claims<E>, InvalidToken> {
        if token.len() > self.max_len {
            return Err(InvalidToken::TooLong);
        }
        if let Some(seen) = self.cache.as_ref().and_then(|c| c.get(token))
            && self
                .keys
                .select(seen.kid.as_deref())
                .is_ok_and(|key| Arc::ptr_eq(&key, &seen.key))
        {
            // Its signature was checked with the very key its kid still selects;
            // time and claims are checked again.
            return self.claims(&seen.payload, now);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a JWT has three segments"));
        };

        let mut header_buf = [0u8; 512];
        let header_json = decode_b64(header_b64, &mut header_buf)
            .ok_or_else(|| malformed("the header is not base64url"))?;
        // RFC 7515 4: a JSON object. serde would also read a struct from an array.
        if header_json.trim_ascii_start().first() != Some(&b'{') {
            return Err(malformed("the header is not a JWS header"));
        }
        let header: JoseHeader<'_> = serde_json::from_slice(&header_json)
            .map_err(|_| malformed("the header is not a JWS header"))?;
        // The key is chosen by our rules (kid or default), and its algorithm
        // must be the token's: a key never serves two algorithms.
        let key = self.keys.select(header.kid.as_deref())?;
        if header.alg != key.alg.as_str() {
            return Err(InvalidToken::Algorithm);
        }
        if header.crit {
            return Err(malformed("unsupported critical header extension"));
        }
        if header.enc || header.zip {
            return Err(malformed("encrypted tokens are not accepted"));
        }
        if header.typ.as_deref().is_some_and(|t| !acceptable_typ(t)) {
            return Err(malformed("the header's typ is not JWT"));
        }

        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verify_signature(signed.as_bytes(), signature_b64) {
            return Err(InvalidToken::Signature);
        }

        let mut payload_buf = [0u8; 2048];
        let payload = decode_b64(payload_b64, &mut payload_buf)
            .ok_or_else(|| malformed("the payload is not base64url"))?;
        let claims = self.claims(&payload, now)?;
        if let Some(cache) = &self.cache {
            let exp = claims.exp.as_secs_f64();
            let kid = header.kid.as_deref();
            cache.insert(token, &payload, kid, key.clone(), exp, now.as_secs_f64());
        }
        Ok(claims)
    }

    /// The claims of a payload whose signature is verified, checked for time,
    /// issuer and audience.
    fn claims<E: DeserializeOwned>(
        &self,
        payload: &[u8],
        now: NumericDate,
    ) -> Result<Claims<E>, InvalidToken> {
        let claims: Claims<E> = serde_json::from_slice(payload).map_err(claims_error)?;
        self.check_time(&claims, now)?;
        self.check_issuer_and_audience(&claims)?;
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

/// base64url without padding, decoded into `stack` when it fits (the common
/// case: no allocation), else onto the heap. Canonical: no padding, no stray bits.
fn decode_b64<'a>(input: &str, stack: &'a mut [u8]) -> Option<Cow<'a, [u8]>> {
    if base64::decoded_len_estimate(input.len()) <= stack.len() {
        let len = URL_SAFE_NO_PAD.decode_slice(input, stack).ok()?;
        Some(Cow::Borrowed(&stack[..len]))
    } else {
        URL_SAFE_NO_PAD.decode(input).ok().map(Cow::Owned)
    }
}

/// A claims error without serde's "at line 1 column 9" and without any value.
fn claims_error(e: serde_json::Error) -> InvalidToken {
    let msg = e.to_string();
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => &msg,
    };
    let msg = if e.is_data() {
        msg.to_owned()
    } else {
        "the payload is not a JSON object".to_owned()
    };
    InvalidToken::Claims(Cow::Owned(msg))
}

/// Where verification keys come from: our own set, or an issuer's JWKS.
#[derive(Clone)]
pub(crate) enum Keys {
    Local(KeyRing),
    #[cfg(feature = "jwks")]
    Remote(crate::jwks::RemoteJwks),
}

impl Keys {
    fn select(&self, kid: Option<&str>) -> Result<Arc<Key>, InvalidToken> {
        match self {
            Keys::Local(ring) => ring.select(kid),
            #[cfg(feature = "jwks")]
            Keys::Remote(remote) => remote.ring().select(kid),
        }
    }
}

/// Signs claims with the configured key; the header is encoded once.
pub(crate) struct Signer {
    alg: Algorithm,
    key: jsonwebtoken::EncodingKey,
    header_b64: String,
}

impl Signer {
    pub(crate) fn new(key: &Key) -> Option<Signer> {
        let encoding = key.encoding.clone()?;
        // Members sorted as PyJWT writes them: {"alg":..,"kid":..,"typ":"JWT"}.
        let mut header = serde_json::Map::new();
        header.insert("alg".into(), key.alg.as_str().into());
        if let Some(kid) = &key.kid {
            header.insert("kid".into(), kid.as_str().into());
        }
        header.insert("typ".into(), "JWT".into());
        let header_b64 = URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header).to_string());
        Some(Signer {
            alg: key.alg,
            key: encoding,
            header_b64,
        })
    }

    pub(crate) fn alg(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, IssueError> {
        let payload = serde_json::to_vec(claims).map_err(|e| IssueError(e.to_string()))?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = jsonwebtoken::crypto::sign(token.as_bytes(), &self.key, self.alg.to_jwt())
            .map_err(|e| IssueError(e.to_string()))?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }
}

/// The audience we write into tokens we issue: one string, or a list for several.
pub(crate) fn audience_claim(audience: &[String]) -> Option<Audience> {
    match audience {
        [] => None,
        [one] => Some(Audience::One(one.clone())),
        many => Some(Audience::Many(many.to_vec())),
    }
}
