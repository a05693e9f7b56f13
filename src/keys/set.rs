//! Several keys across services: one signs, all verify, chosen by the token's
//! `kid` (never by trying each key); the public ones are published as an RFC 7517
//! JWKS.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Algorithm, Key};
use crate::error::{ConfigError, InvalidToken};

/// The keys of an [`AuthX`](crate::AuthX): one that signs (optional: a resource
/// server only verifies) and any number that verify, each bound to one
/// algorithm. Asymmetric keys without a `kid` get their RFC 7638 thumbprint
/// (SHA-256) as `kid`; HMAC secrets never do (a thumbprint would leak a hash of
/// the secret).
///
/// ```
/// # use tower_authx::{Algorithm, Key, KeySet};
/// # let (new_private, new_public) = (include_bytes!("../../tests/fixtures/keys/ec256_private.pem"), include_bytes!("../../tests/fixtures/keys/ec256_public.pem"));
/// # let old_public = include_bytes!("../../tests/fixtures/keys/rsa_public.pem");
/// // Rotation: sign with the new key, keep verifying (and publishing) the old one.
/// let keys = KeySet::new(Key::signing_pem_pair(Algorithm::ES256, new_private, new_public)?)
///     .with_previous(Key::verifying_pem(Algorithm::RS256, old_public)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeySet {
    pub(crate) signing: Option<Key>,
    pub(crate) verifying: Vec<Key>,
}

impl KeySet {
    /// Signs (and verifies) with `signing`.
    pub fn new(signing: Key) -> KeySet {
        KeySet {
            signing: Some(signing),
            verifying: Vec::new(),
        }
    }

    /// Verifies only, with these keys (a resource server).
    pub fn verify_only(keys: impl IntoIterator<Item = Key>) -> KeySet {
        KeySet {
            signing: None,
            verifying: keys.into_iter().collect(),
        }
    }

    /// Keeps verifying (and publishing) a key that no longer signs, so tokens it
    /// signed stay valid until they expire (AuthX's `JWT_PREVIOUS_*`, by `kid`).
    #[must_use]
    pub fn with_previous(self, key: Key) -> KeySet {
        self.with_verifying(key)
    }

    /// Adds a key that verifies.
    #[must_use]
    pub fn with_verifying(mut self, key: Key) -> KeySet {
        self.verifying.push(key);
        self
    }

    /// The signature keys of an RFC 7517 JWKS document, verify-only (a
    /// resource server configured with its issuer's keys). Entries meant for
    /// something else (`use` other than `sig`, `key_ops` without `verify`) are
    /// left out; every other entry must be a usable key, checked as strictly as
    /// [`Key::verifying_jwk`] does (an entry without `alg` takes RS256, ES256, ES384
    /// or EdDSA from its key type and curve). Secrets and public keys never mix
    /// in one set, and no `kid` names two keys.
    pub fn from_jwks(jwks: &str) -> Result<KeySet, ConfigError> {
        let keys = jwks_entries(jwks.as_bytes())?
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                key.map_err(|e| ConfigError::unusable_key(format!("JWKS key {i}: {e}")))
            })
            .collect::<Result<Vec<Key>, ConfigError>>()?;
        let secrets = keys.iter().filter(|k| k.alg.is_hmac()).count();
        if secrets > 0 && secrets < keys.len() {
            return Err(ConfigError::unusable_key(
                "the JWKS mixes secrets and public keys: a token could choose which kind verifies it",
            ));
        }
        Ok(KeySet::verify_only(keys))
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Key> {
        self.signing.iter().chain(&self.verifying)
    }

    /// Gives asymmetric keys their thumbprint `kid` (inside `AuthX::new`).
    pub(crate) fn name_keys(&mut self) {
        let keys = self.signing.iter_mut().chain(self.verifying.iter_mut());
        for key in keys {
            if key.kid.is_none() {
                key.kid = key.thumbprint();
            }
        }
    }
}

impl From<Key> for KeySet {
    fn from(key: Key) -> KeySet {
        KeySet::new(key)
    }
}

/// The signature keys of an issuer's JWKS document (as fetched, or as
/// saved): unusable entries are skipped, and so are secrets (a published
/// secret is no secret).
#[cfg(feature = "remote-keys")]
pub(crate) fn signature_keys(document: &[u8]) -> Result<KeyRing, ConfigError> {
    let keys = jwks_entries(document)?
        .into_iter()
        .filter_map(Result::ok)
        .filter(|key| !key.algorithm().is_hmac());
    Ok(KeyRing::from_keys(keys))
}

/// Each signature key of a JWKS document, parsed (or why it cannot be used);
/// entries for other uses are left out.
pub(crate) fn jwks_entries(document: &[u8]) -> Result<Vec<Result<Key, ConfigError>>, ConfigError> {
    let document: serde_json::Value = serde_json::from_slice(document)
        .map_err(|_| ConfigError::unusable_key("the JWKS is not JSON"))?;
    let entries = document
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| ConfigError::unusable_key("the JWKS has no \"keys\" array"))?;
    Ok(entries
        .iter()
        .filter(|jwk| super::jwk_is_for_signatures(jwk))
        .map(|jwk| {
            let member = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
            let alg: Algorithm = match (member("alg"), member("kty"), member("crv")) {
                (Some(alg), _, _) => alg.parse()?,
                (None, Some("RSA"), _) => Algorithm::RS256,
                (None, Some("EC"), Some("P-256")) => Algorithm::ES256,
                (None, Some("EC"), Some("P-384")) => Algorithm::ES384,
                (None, Some("OKP"), Some("Ed25519")) => Algorithm::EdDSA,
                (None, kty, _) => {
                    return Err(ConfigError::unusable_key(format!(
                        "no supported algorithm for key type {}",
                        kty.unwrap_or("(none)")
                    )));
                }
            };
            Key::verifying_jwk(alg, &jwk.to_string())
        })
        .collect())
}

/// The verifying side of a key set, ready for lookups by `kid`.
#[derive(Clone, Default)]
pub(crate) struct KeyRing {
    by_kid: HashMap<String, Arc<Key>>,
    /// For tokens without `kid` (AuthX's and flask's): the signing key, or the
    /// only key.
    default: Option<Arc<Key>>,
}

impl KeyRing {
    /// The algorithms its keys serve, each once, in a stable order.
    pub(crate) fn algorithms(&self) -> Vec<Algorithm> {
        let mut algorithms: Vec<Algorithm> = self
            .by_kid
            .values()
            .chain(&self.default)
            .map(|key| key.algorithm())
            .collect();
        algorithms.sort_by_key(|alg| alg.as_str());
        algorithms.dedup();
        algorithms
    }

    pub(crate) fn new(keys: &KeySet) -> Result<KeyRing, ConfigError> {
        let mut ring = KeyRing::default();
        for key in keys.all() {
            let key = Arc::new(key.clone());
            if let Some(kid) = &key.kid
                && ring.by_kid.insert(kid.clone(), key.clone()).is_some()
            {
                return Err(ConfigError::unusable_key(format!(
                    "two keys share the kid {kid:?}"
                )));
            }
        }
        ring.default = match (&keys.signing, keys.verifying.as_slice()) {
            (Some(signing), _) => Some(Arc::new(signing.clone())),
            (None, [only]) => Some(Arc::new(only.clone())),
            _ => None,
        };
        if ring.default.is_none() && ring.by_kid.is_empty() {
            return Err(ConfigError::unusable_key(
                "a key set needs at least one key",
            ));
        }
        Ok(ring)
    }

    /// A ring of keys fetched from a JWKS (by `kid` only). A `kid` that names
    /// two keys names neither: which one was meant cannot be known.
    #[cfg(feature = "remote-keys")]
    pub(crate) fn from_keys(keys: impl IntoIterator<Item = Key>) -> KeyRing {
        let mut ring = KeyRing::default();
        let mut ambiguous = Vec::new();
        for key in keys {
            if let Some(kid) = key.kid.clone()
                && ring.by_kid.insert(kid.clone(), Arc::new(key)).is_some()
            {
                ambiguous.push(kid);
            }
        }
        for kid in ambiguous {
            ring.by_kid.remove(&kid);
        }
        if ring.by_kid.len() == 1 {
            ring.default = ring.by_kid.values().next().cloned();
        }
        ring
    }

    /// The key for a token's `kid`. The `kid` only names a key we already hold:
    /// it never loads one. Where no key has a `kid` (HMAC set-ups), it is ignored.
    pub(crate) fn select(&self, kid: Option<&str>) -> Result<&Arc<Key>, InvalidToken> {
        let found = match kid {
            // One key (the common case): a comparison instead of hashing the kid.
            Some(kid) if self.by_kid.len() == 1 => self
                .by_kid
                .iter()
                .next()
                .filter(|(known, _)| known.as_str() == kid)
                .map(|(_, key)| key),
            Some(kid) if !self.by_kid.is_empty() => self.by_kid.get(kid),
            _ => self.default.as_ref(),
        };
        found.ok_or(InvalidToken::UnknownKey)
    }

    /// The one key that serves `alg`, for a token that names none: refused
    /// when no key or several keys serve it.
    #[cfg(feature = "remote-keys")]
    pub(crate) fn serving(&self, alg: &str) -> Result<&Arc<Key>, InvalidToken> {
        let mut serving = self
            .by_kid
            .values()
            .filter(|key| key.algorithm().as_str() == alg);
        match (serving.next(), serving.next()) {
            (Some(key), None) => Ok(key),
            (None, _) => Err(InvalidToken::Algorithm),
            (Some(_), Some(_)) => Err(InvalidToken::Malformed(
                "the token names no key (kid), and several of the issuer's keys serve its alg"
                    .into(),
            )),
        }
    }

    /// How many keys are held by `kid`.
    #[cfg(feature = "remote-keys")]
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len()
    }

    #[cfg(feature = "remote-keys")]
    pub(crate) fn contains(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }
}
