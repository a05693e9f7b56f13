//! Key material: each key is bound to exactly one algorithm, so a token can never
//! choose how its own signature is checked (no algorithm confusion).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ConfigError;

/// A JWS signing algorithm (RFC 7518). `none` does not exist here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Whether this is an HMAC (shared secret) algorithm.
    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }

    /// The HMAC output size in bytes, which is also the shortest safe secret
    /// (RFC 7518 3.2).
    fn hmac_min_secret_len(self) -> usize {
        match self {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        }
    }

    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Algorithm::HS256 => J::HS256,
            Algorithm::HS384 => J::HS384,
            Algorithm::HS512 => J::HS512,
            Algorithm::RS256 => J::RS256,
            Algorithm::RS384 => J::RS384,
            Algorithm::RS512 => J::RS512,
            Algorithm::PS256 => J::PS256,
            Algorithm::PS384 => J::PS384,
            Algorithm::PS512 => J::PS512,
            Algorithm::ES256 => J::ES256,
            Algorithm::ES384 => J::ES384,
            Algorithm::EdDSA => J::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ConfigError;

    /// Exact, case-sensitive names only (`"none"` and `"hs256"` are refused).
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ConfigError::new(format!("unknown or unsupported algorithm {s:?}")))
    }
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
            return Err(ConfigError::new(format!("{alg} is not an HMAC algorithm")));
        }
        let encoding = jsonwebtoken::EncodingKey::from_secret(secret).map_err(ConfigError::key)?;
        let decoding = jsonwebtoken::DecodingKey::from_secret(secret).map_err(ConfigError::key)?;
        Ok(Key {
            alg,
            encoding: Some(encoding),
            decoding,
            kid: None,
            weak_secret: secret.len() < alg.hmac_min_secret_len(),
        })
    }

    /// An HS256 secret, as AuthX's `JWT_SECRET_KEY`.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Key, ConfigError> {
        Key::hmac(Algorithm::HS256, secret)
    }

    /// An asymmetric key pair from PEM: the private key signs, the public key verifies.
    pub fn from_pem(
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
    pub fn from_private_pem(alg: Algorithm, private_pem: &[u8]) -> Result<Key, ConfigError> {
        crate::token::ensure_crypto_backend()?;
        let encoding = signing_pem(alg, private_pem)?;
        let public = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, alg.to_jwt())
            .map_err(ConfigError::key)?;
        Ok(Key {
            alg,
            decoding: jsonwebtoken::DecodingKey::from_jwk(&public).map_err(ConfigError::key)?,
            encoding: Some(encoding),
            kid: None,
            weak_secret: false,
        })
    }

    /// A public key from DER that only verifies: SubjectPublicKeyInfo, as
    /// `openssl pkey -pubout -outform DER` writes it.
    pub fn verifying_der(alg: Algorithm, public_der: &[u8]) -> Result<Key, ConfigError> {
        Key::verifying_pem(alg, pem_wrap("PUBLIC KEY", public_der).as_bytes())
    }

    /// A key pair from the private key's DER (PKCS#8, as `openssl pkcs8 -topk8
    /// -nocrypt -outform DER` writes it); the public half is derived from it.
    pub fn from_private_der(alg: Algorithm, private_der: &[u8]) -> Result<Key, ConfigError> {
        Key::from_private_pem(alg, pem_wrap("PRIVATE KEY", private_der).as_bytes())
    }

    /// A public key from PEM that only verifies (a resource server's key).
    pub fn verifying_pem(alg: Algorithm, public_pem: &[u8]) -> Result<Key, ConfigError> {
        use jsonwebtoken::DecodingKey as Dec;
        let decoding = match alg {
            a if a.is_hmac() => {
                return Err(ConfigError::new(format!(
                    "{alg} takes a secret, not a PEM key"
                )));
            }
            Algorithm::ES256 | Algorithm::ES384 => Dec::from_ec_pem(public_pem),
            Algorithm::EdDSA => Dec::from_ed_pem(public_pem),
            _ => Dec::from_rsa_pem(public_pem),
        }
        .map_err(ConfigError::key)?;
        Ok(Key {
            alg,
            encoding: None,
            decoding,
            kid: None,
            weak_secret: false,
        })
    }

    /// A verifying key from one RFC 7517 JWK (a JSON object), bound to `alg`.
    /// The key type must fit the algorithm (`oct` for HS*, `RSA` for RS*/PS*,
    /// `EC` on the matching curve for ES*, `OKP` Ed25519 for EdDSA), and a JWK
    /// `alg`, when present, must be `alg`: no key is ever used with two algorithms.
    /// An `oct` key also signs. The JWK's `kid` becomes the key's.
    pub fn from_jwk(alg: Algorithm, jwk: &str) -> Result<Key, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(jwk).map_err(|_| ConfigError::new("the JWK is not JSON"))?;
        let member = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
        if let Some(declared) = member("alg")
            && declared != alg.as_str()
        {
            return Err(ConfigError::new(format!(
                "the JWK is for {declared}, not {alg}"
            )));
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
            return Err(ConfigError::new(format!(
                "the JWK's key type does not fit {alg}"
            )));
        }
        let key = if alg.is_hmac() {
            let secret = member("k")
                .and_then(|k| URL_SAFE_NO_PAD.decode(k).ok())
                .ok_or_else(|| ConfigError::new("the oct JWK has no base64url `k`"))?;
            Key::hmac(alg, secret)?
        } else {
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(value.clone())
                .map_err(|e| ConfigError::new(format!("unusable JWK: {e}")))?;
            Key {
                alg,
                encoding: None,
                decoding: jsonwebtoken::DecodingKey::from_jwk(&parsed).map_err(ConfigError::key)?,
                kid: None,
                weak_secret: false,
            }
        };
        Ok(match member("kid") {
            Some(kid) => key.with_kid(kid),
            None => key,
        })
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
        a if a.is_hmac() => Err(ConfigError::new(format!(
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
