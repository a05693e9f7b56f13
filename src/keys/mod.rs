//! Keys: each [`Key`] bound to exactly one [`Algorithm`], so a token can never
//! choose how its own signature is checked (no algorithm confusion), and its
//! material checked before any crypto library sees it; the crypto backend; key
//! sets chosen by `kid` ([`KeySet`]); publishing our public keys as a JWKS; and
//! where verification keys come from (ours, or an issuer's JWKS, `RemoteJwks`).

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ConfigError;

mod algorithm;
pub(crate) mod backend;
mod der;
#[cfg(feature = "remote-keys")]
pub(crate) mod fetch;
mod mac;
mod material;
mod public;
mod publish;
#[cfg(feature = "remote-keys")]
pub(crate) mod remote;
#[cfg(feature = "remote-keys")]
mod saved;
mod set;
mod source;

pub use algorithm::Algorithm;
use backend::Signer;
pub(crate) use material::jwk_is_for_signatures;
use public::PublicKey;
pub(crate) use publish::jwks;
#[cfg(feature = "remote-keys")]
pub use remote::{KeysHealth, RemoteJwks};
pub(crate) use set::KeyRing;
pub use set::KeySet;
pub(crate) use source::{KeyFuture, KeySource};

/// A signing and/or verifying key, bound to one algorithm. Cheap to clone.
#[derive(Clone)]
pub struct Key {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    /// Set only for HMAC keys shorter than the algorithm's output size.
    pub(crate) weak_secret: bool,
    verifier: Verifying,
    /// The private half of a public-key pair (an HMAC secret signs itself).
    signer: Option<Arc<Signer>>,
}

/// How a key checks signatures.
#[derive(Clone)]
enum Verifying {
    /// An HMAC secret, ready without per-token setup.
    Secret(Arc<mac::Mac>),
    Public(Arc<PublicKey>),
}

impl Key {
    /// An HMAC secret (HS256, HS384 or HS512) used to both sign and verify.
    ///
    /// A secret shorter than the algorithm's output size (32, 48 or 64 bytes) is
    /// accepted here but refused by [`AuthX::new`](crate::AuthX::new) unless the
    /// configuration opts in with
    /// [`danger_allow_weak_secret`](crate::AuthXConfig::danger_allow_weak_secret).
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Key, ConfigError> {
        let secret = secret.as_ref();
        if !alg.is_hmac() {
            return Err(ConfigError::unusable_key(format!(
                "{alg} is not an HMAC algorithm"
            )));
        }
        let mac = mac::Mac::new(alg, secret)
            .ok_or_else(|| ConfigError::unusable_key("the HMAC secret is unusable"))?;
        Ok(Key {
            alg,
            kid: None,
            weak_secret: secret.len() < alg.hmac_min_secret_len(),
            verifier: Verifying::Secret(Arc::new(mac)),
            signer: None,
        })
    }

    /// An HS256 secret, as AuthX's `JWT_SECRET_KEY`.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Key, ConfigError> {
        Key::hmac(Algorithm::HS256, secret)
    }

    /// An asymmetric key pair from PEM: the private key signs, the public key
    /// verifies. The public key must be the private key's.
    pub fn signing_pem_pair(
        alg: Algorithm,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Key, ConfigError> {
        let public = Key::verifying_pem(alg, public_pem)?;
        let key = Key::signing_pem(alg, private_pem)?;
        if public.public_jwk() != key.public_jwk() {
            return Err(ConfigError::unusable_key(
                "the public key is not the private key's public half",
            ));
        }
        Ok(key)
    }

    /// An asymmetric key pair from the private key's PEM alone (PKCS#8
    /// `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE KEY`); the public half is derived
    /// from it.
    pub fn signing_pem(alg: Algorithm, private_pem: &[u8]) -> Result<Key, ConfigError> {
        refuse_secret(alg)?;
        let pem = der::pem(private_pem)?;
        let pkcs1 = match pem.label.as_str() {
            "PRIVATE KEY" => false,
            "RSA PRIVATE KEY" if alg.is_rsa() => true,
            "EC PRIVATE KEY" => {
                return Err(ConfigError::unusable_key(
                    "SEC1 EC keys are not supported: convert with `openssl pkcs8 -topk8 -nocrypt`",
                ));
            }
            other => {
                return Err(ConfigError::unusable_key(format!(
                    "a {alg} private key is a PRIVATE KEY PEM (PKCS#8), not {other}"
                )));
            }
        };
        Key::from_private_der(alg, &pem.der, pkcs1)
    }

    fn from_private_der(alg: Algorithm, der: &[u8], pkcs1: bool) -> Result<Key, ConfigError> {
        let (signer, public) = Signer::new(alg, der, pkcs1)?;
        let public = match alg {
            Algorithm::EdDSA => der::PublicDer::Ed25519(&public),
            Algorithm::ES256 | Algorithm::ES384 => der::PublicDer::Ec {
                p384: alg == Algorithm::ES384,
                point: &public,
            },
            _ => der::rsa_public_key(&public)?,
        };
        let mut key = Key::public(alg, PublicKey::new(alg, &public)?);
        key.signer = Some(Arc::new(signer));
        Ok(key)
    }

    fn public(alg: Algorithm, public: PublicKey) -> Key {
        Key {
            alg,
            kid: None,
            weak_secret: false,
            verifier: Verifying::Public(Arc::new(public)),
            signer: None,
        }
    }

    /// A public key from DER that only verifies: SubjectPublicKeyInfo, as
    /// `openssl pkey -pubout -outform DER` writes it.
    pub fn verifying_der(alg: Algorithm, public_der: &[u8]) -> Result<Key, ConfigError> {
        refuse_secret(alg)?;
        Key::verifying_public(alg, &der::spki(public_der)?)
    }

    /// A key pair from the private key's DER (PKCS#8, as `openssl pkcs8 -topk8
    /// -nocrypt -outform DER` writes it); the public half is derived from it.
    pub fn signing_der(alg: Algorithm, private_der: &[u8]) -> Result<Key, ConfigError> {
        refuse_secret(alg)?;
        Key::from_private_der(alg, private_der, false)
    }

    /// A public key from PEM that only verifies (a resource server's key): a
    /// `PUBLIC KEY` (SubjectPublicKeyInfo), an `RSA PUBLIC KEY` (PKCS#1) or a
    /// `CERTIFICATE` (its key; the certificate itself is not checked).
    pub fn verifying_pem(alg: Algorithm, public_pem: &[u8]) -> Result<Key, ConfigError> {
        refuse_secret(alg)?;
        let pem = der::pem(public_pem)?;
        Key::verifying_public(alg, &der::public_key(&pem)?)
    }

    fn verifying_public(alg: Algorithm, public: &der::PublicDer<'_>) -> Result<Key, ConfigError> {
        Ok(Key::public(alg, PublicKey::new(alg, public)?))
    }

    /// A verifying key from one RFC 7517 JWK (a JSON object), bound to `alg`.
    /// The key type must fit the algorithm (`oct` for HS*, `RSA` for RS*/PS*,
    /// `EC` on the matching curve for ES*, `OKP` Ed25519 for EdDSA), and a JWK
    /// `alg`, when present, must be `alg`: no key is ever used with two algorithms.
    /// An `oct` key also signs. The JWK's `kid` becomes the key's.
    pub fn verifying_jwk(alg: Algorithm, jwk: &str) -> Result<Key, ConfigError> {
        let value: serde_json::Value = serde_json::from_str(jwk)
            .map_err(|_| ConfigError::unusable_key("the JWK is not JSON"))?;
        Key::verifying_jwk_value(alg, &value)
    }

    /// [`verifying_jwk`](Self::verifying_jwk) of a parsed JWK.
    pub(crate) fn verifying_jwk_value(
        alg: Algorithm,
        value: &serde_json::Value,
    ) -> Result<Key, ConfigError> {
        let member = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
        if let Some(declared) = member("alg")
            && declared != alg.as_str()
        {
            return Err(ConfigError::unusable_key(format!(
                "the JWK is for {declared}, not {alg}"
            )));
        }
        if !jwk_is_for_signatures(value) {
            return Err(ConfigError::unusable_key(
                "the JWK is not for signatures (`use` or `key_ops`)",
            ));
        }
        let fits = match (member("kty"), alg) {
            (Some("oct"), a) => a.is_hmac(),
            (Some("RSA"), a) => a.as_str().starts_with("RS") || a.as_str().starts_with("PS"),
            (Some("EC"), Algorithm::ES256) => member("crv") == Some("P-256"),
            (Some("EC"), Algorithm::ES384) => member("crv") == Some("P-384"),
            (Some("OKP"), Algorithm::EdDSA) => member("crv") == Some("Ed25519"),
            _ => false,
        };
        if !fits {
            return Err(ConfigError::unusable_key(format!(
                "the JWK's key type does not fit {alg}"
            )));
        }
        let key = if alg.is_hmac() {
            let secret = member("k")
                .and_then(|k| URL_SAFE_NO_PAD.decode(k).ok())
                .ok_or_else(|| ConfigError::unusable_key("the oct JWK has no base64url `k`"))?;
            Key::hmac(alg, secret)?
        } else {
            Key::public(alg, PublicKey::from_jwk(alg, member)?)
        };
        Ok(match member("kid") {
            Some(kid) => key.with_kid(kid),
            None => key,
        })
    }

    /// Whether `signature_b64` (base64url, as in a JWS) is this key's signature
    /// of `message` (a JWS signing input): the one signature check every token
    /// goes through.
    pub fn verify_signature(&self, message: &[u8], signature_b64: &str) -> bool {
        match &self.verifier {
            Verifying::Secret(mac) => mac.verify(message, signature_b64),
            Verifying::Public(public) => {
                // The longest signature (RSA-8192) is 1024 bytes.
                let mut stack = crate::base64url::stack::<1024>();
                signature_b64.len() <= 1366
                    && crate::base64url::decode(signature_b64, &mut stack)
                        .is_some_and(|signature| public.verify(message, &signature))
            }
        }
    }

    /// The signature of `message` (a JWS signing input), if this key signs.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match (&self.verifier, &self.signer) {
            (Verifying::Secret(mac), _) => Some(mac.tag(message)),
            (_, Some(signer)) => signer.sign(message),
            _ => None,
        }
    }

    /// Whether this key can sign.
    pub(crate) fn can_sign(&self) -> bool {
        matches!(self.verifier, Verifying::Secret(_)) || self.signer.is_some()
    }

    /// The public half's JWK key members (never a secret or a private member):
    /// what is published. `None` for an HMAC secret.
    pub(crate) fn public_jwk(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match &self.verifier {
            Verifying::Public(public) => Some(public.jwk()),
            Verifying::Secret(_) => None,
        }
    }

    /// The public half's RFC 7638 SHA-256 thumbprint. `None` for an HMAC secret
    /// (a thumbprint would leak a hash of the secret).
    pub(crate) fn thumbprint(&self) -> Option<String> {
        match &self.verifier {
            Verifying::Public(public) => Some(public.thumbprint()),
            Verifying::Secret(_) => None,
        }
    }

    /// Names this key: the `kid` written into the header of the tokens it signs.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Key {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this key is bound to.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key's id, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// Refuses an HMAC algorithm where a public or private key is given: the one
/// check every asymmetric constructor starts with.
fn refuse_secret(alg: Algorithm) -> Result<(), ConfigError> {
    if alg.is_hmac() {
        return Err(ConfigError::unusable_key(format!(
            "{alg} takes a secret (Key::hmac), not a public or private key"
        )));
    }
    Ok(())
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("can_sign", &self.can_sign())
            .finish_non_exhaustive()
    }
}

/// Without a backend (`--no-default-features`), HMAC still issues and verifies,
/// and a public key is a configuration error that names the features.
#[cfg(all(test, not(any(feature = "ring", feature = "aws-lc-rs"))))]
mod without_backend {
    use super::{Algorithm, Key};
    use crate::error::ConfigError;

    #[test]
    fn hmac_works_and_public_keys_name_the_features() {
        let key = Key::hs256([7u8; 32]).unwrap();
        let tag = key.sign(b"a.b").unwrap();
        let tag_b64 = base64::Engine::encode(&super::URL_SAFE_NO_PAD, tag);
        assert!(key.verify_signature(b"a.b", &tag_b64));
        let pem = include_bytes!("../../tests/fixtures/keys/ec256_public.pem");
        let refused = Key::verifying_pem(Algorithm::ES256, pem).unwrap_err();
        assert_eq!(refused, ConfigError::NoBackend);
        assert!(refused.to_string().contains("`aws-lc-rs`"), "{refused}");
    }
}
