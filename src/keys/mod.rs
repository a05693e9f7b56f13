//! Keys: each [`Key`] bound to exactly one [`Algorithm`], so a token can never
//! choose how its own signature is checked (no algorithm confusion), and its
//! material checked before any crypto library sees it; the crypto backend; key
//! sets chosen by `kid` ([`KeySet`]); publishing our public keys as a JWKS; and
//! where verification keys come from (ours, or an issuer's JWKS, `RemoteJwks`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ConfigError;

mod algorithm;
#[cfg(feature = "remote-keys")]
pub(crate) mod fetch;
mod mac;
mod material;
mod publish;
#[cfg(feature = "remote-keys")]
pub(crate) mod remote;
mod set;
mod source;

pub use algorithm::Algorithm;
pub(crate) use material::jwk_is_for_signatures;
use material::{check_ed25519_pem, check_public_material};
pub(crate) use publish::jwks;
#[cfg(feature = "remote-keys")]
pub use remote::{KeysHealth, RemoteJwks};
pub(crate) use set::KeyRing;
pub use set::KeySet;
pub(crate) use source::{KeyFuture, KeySource};

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
        .ok_or(ConfigError::NoBackend)
}

/// A signing and/or verifying key, bound to one algorithm.
#[derive(Clone)]
pub struct Key {
    pub(crate) alg: Algorithm,
    pub(crate) encoding: Option<jsonwebtoken::EncodingKey>,
    pub(crate) decoding: jsonwebtoken::DecodingKey,
    pub(crate) kid: Option<String>,
    /// Set only for HMAC keys shorter than the algorithm's output size.
    pub(crate) weak_secret: bool,
    /// An HMAC secret, ready to verify without jsonwebtoken's per-token setup.
    pub(crate) mac: Option<mac::Mac>,
}

impl Key {
    /// An HMAC secret (HS256, HS384 or HS512) used to both sign and verify.
    ///
    /// A secret shorter than the algorithm's output size (32, 48 or 64 bytes) is
    /// accepted here but refused by [`AuthX::new`](crate::AuthX::new) unless the
    /// configuration opts in with
    /// [`allow_weak_secret`](crate::AuthXConfig::allow_weak_secret).
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Key, ConfigError> {
        let secret = secret.as_ref();
        if !alg.is_hmac() {
            return Err(ConfigError::unusable_key(format!(
                "{alg} is not an HMAC algorithm"
            )));
        }
        let encoding = jsonwebtoken::EncodingKey::from_secret(secret).map_err(ConfigError::key)?;
        let decoding = jsonwebtoken::DecodingKey::from_secret(secret).map_err(ConfigError::key)?;
        Ok(Key {
            alg,
            encoding: Some(encoding),
            decoding,
            kid: None,
            weak_secret: secret.len() < alg.hmac_min_secret_len(),
            mac: mac::Mac::new(alg, secret),
        })
    }

    /// An HS256 secret, as AuthX's `JWT_SECRET_KEY`.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Key, ConfigError> {
        Key::hmac(Algorithm::HS256, secret)
    }

    /// An asymmetric key pair from PEM: the private key signs, the public key verifies.
    pub fn signing_pem_pair(
        alg: Algorithm,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Key, ConfigError> {
        let mut key = Key::verifying_pem(alg, public_pem)?;
        key.encoding = Some(signing_pem(alg, private_pem)?);
        Ok(key)
    }

    /// An asymmetric key pair from the private key's PEM alone (PKCS#8, or
    /// PKCS#1 for RSA); the public half is derived from it.
    pub fn signing_pem(alg: Algorithm, private_pem: &[u8]) -> Result<Key, ConfigError> {
        ensure_crypto_backend()?;
        let encoding = signing_pem(alg, private_pem)?;
        let public = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, alg.to_jwt())
            .map_err(ConfigError::key)?;
        Ok(Key {
            alg,
            decoding: jsonwebtoken::DecodingKey::from_jwk(&public).map_err(ConfigError::key)?,
            encoding: Some(encoding),
            kid: None,
            weak_secret: false,
            mac: None,
        })
    }

    /// A public key from DER that only verifies: SubjectPublicKeyInfo, as
    /// `openssl pkey -pubout -outform DER` writes it.
    pub fn verifying_der(alg: Algorithm, public_der: &[u8]) -> Result<Key, ConfigError> {
        Key::verifying_pem(alg, pem_wrap("PUBLIC KEY", public_der).as_bytes())
    }

    /// A key pair from the private key's DER (PKCS#8, as `openssl pkcs8 -topk8
    /// -nocrypt -outform DER` writes it); the public half is derived from it.
    pub fn signing_der(alg: Algorithm, private_der: &[u8]) -> Result<Key, ConfigError> {
        Key::signing_pem(alg, pem_wrap("PRIVATE KEY", private_der).as_bytes())
    }

    /// A public key from PEM that only verifies (a resource server's key).
    pub fn verifying_pem(alg: Algorithm, public_pem: &[u8]) -> Result<Key, ConfigError> {
        use jsonwebtoken::DecodingKey as Dec;
        let decoding = match alg {
            a if a.is_hmac() => {
                return Err(ConfigError::unusable_key(format!(
                    "{alg} takes a secret, not a PEM key"
                )));
            }
            Algorithm::ES256 | Algorithm::ES384 => Dec::from_ec_pem(public_pem),
            Algorithm::EdDSA => {
                check_ed25519_pem(public_pem)?;
                Dec::from_ed_pem(public_pem)
            }
            _ => Dec::from_rsa_pem(public_pem),
        }
        .map_err(ConfigError::key)?;
        Ok(Key {
            alg,
            encoding: None,
            decoding,
            kid: None,
            weak_secret: false,
            mac: None,
        })
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
            check_public_material(alg, &member)?;
            let parsed = <jsonwebtoken::jwk::Jwk as serde::Deserialize>::deserialize(value)
                .map_err(|e| ConfigError::unusable_key(format!("unusable JWK: {e}")))?;
            Key {
                alg,
                encoding: None,
                decoding: jsonwebtoken::DecodingKey::from_jwk(&parsed).map_err(ConfigError::key)?,
                kid: None,
                weak_secret: false,
                mac: None,
            }
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
        if let Some(mac) = &self.mac {
            return mac.verify(message, signature_b64);
        }
        // A key can exist before any AuthX chose the crypto provider.
        ensure_crypto_backend().is_ok()
            && jsonwebtoken::crypto::verify(
                signature_b64,
                message,
                &self.decoding,
                self.alg.to_jwt(),
            )
            .unwrap_or(false)
    }

    /// The public half as a JWK (never a secret or a private member): what is
    /// published, and what the RFC 7638 thumbprint `kid` is computed from.
    pub(crate) fn public_jwk(&self) -> Result<jsonwebtoken::jwk::Jwk, ConfigError> {
        jsonwebtoken::jwk::Jwk::from_decoding_key(&self.decoding, Some(self.alg.to_jwt()))
            .map_err(ConfigError::key)
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

/// The signing half of an asymmetric key, from PEM.
fn signing_pem(
    alg: Algorithm,
    private_pem: &[u8],
) -> Result<jsonwebtoken::EncodingKey, ConfigError> {
    use jsonwebtoken::EncodingKey as Enc;
    match alg {
        a if a.is_hmac() => Err(ConfigError::unusable_key(format!(
            "{alg} takes a secret, not a PEM key"
        ))),
        Algorithm::ES256 | Algorithm::ES384 => {
            Enc::from_ec_pem(private_pem).map_err(ConfigError::key)
        }
        Algorithm::EdDSA => Enc::from_ed_pem(private_pem).map_err(ConfigError::key),
        _ => Enc::from_rsa_pem(private_pem).map_err(ConfigError::key),
    }
}

/// DER in PEM armour, so one parser reads both.
fn pem_wrap(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("can_sign", &self.encoding.is_some())
            .finish_non_exhaustive()
    }
}
