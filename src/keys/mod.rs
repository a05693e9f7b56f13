//! Keys: each [`Key`] bound to exactly one [`Algorithm`], so a token can never
//! choose how its own signature is checked (no algorithm confusion), and its
//! material checked before any crypto library sees it; the crypto backend; key
//! sets chosen by `kid` ([`KeySet`]); publishing our public keys as a JWKS; and
//! where verification keys come from (ours, or an issuer's JWKS, `RemoteJwks`).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ConfigError;

mod mac;
mod publish;
#[cfg(feature = "remote-keys")]
pub(crate) mod remote;
mod set;
mod source;

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
            .ok_or_else(|| {
                ConfigError::unusable_key(format!("unknown or unsupported algorithm {s:?}"))
            })
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
/// Whether a JWK may verify signatures: no `use` but `sig`, and `key_ops`, when
/// present, naming `verify`.
pub(crate) fn jwk_is_for_signatures(jwk: &serde_json::Value) -> bool {
    let use_ok = jwk.get("use").is_none_or(|u| u == "sig");
    let ops_ok = jwk.get("key_ops").is_none_or(|ops| {
        ops.as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"))
    });
    use_ok && ops_ok
}

/// The sizes and shapes of a public JWK's members, checked before any crypto
/// library sees them (a 3-byte Ed25519 key made jsonwebtoken panic at the first
/// token naming it).
fn check_public_material<'a>(
    alg: Algorithm,
    member: &impl Fn(&str) -> Option<&'a str>,
) -> Result<(), ConfigError> {
    let bytes = |name: &str| -> Result<Vec<u8>, ConfigError> {
        member(name)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or_else(|| ConfigError::unusable_key(format!("the JWK has no base64url `{name}`")))
    };
    let exact = |name: &str, len: usize| -> Result<Vec<u8>, ConfigError> {
        let value = bytes(name)?;
        if value.len() != len {
            return Err(ConfigError::unusable_key(format!(
                "the {alg} JWK's `{name}` is {} bytes, not {len}",
                value.len()
            )));
        }
        Ok(value)
    };
    match alg {
        Algorithm::EdDSA => check_ed25519_point(&exact("x", 32)?),
        Algorithm::ES256 => exact("x", 32).and(exact("y", 32)).map(drop),
        Algorithm::ES384 => exact("x", 48).and(exact("y", 48)).map(drop),
        _ => check_rsa(&bytes("n")?, &bytes("e")?),
    }
}

/// An RSA public key fit to verify: a modulus of 2048 to 8192 bits (RFC 7518
/// 3.3), odd, and not made by the ROCA-flawed generator (CVE-2017-15361: its
/// private key can be computed); an odd exponent of at least 3 that fits 64 bits.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), ConfigError> {
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    let e = &e[e.iter().take_while(|b| **b == 0).count()..];
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) || n.last().is_none_or(|b| b % 2 == 0) {
        return Err(ConfigError::unusable_key(
            "the RSA key's modulus must be odd and have 2048 to 8192 bits",
        ));
    }
    let exponent = (e.len() <= 8).then(|| e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)));
    if !exponent.is_some_and(|e| e >= 3 && e % 2 == 1) {
        return Err(ConfigError::unusable_key(
            "the RSA key's exponent must be odd and at least 3",
        ));
    }
    if roca_fingerprint(n) {
        return Err(ConfigError::unusable_key(
            "the RSA key was made by a generator with the ROCA flaw (CVE-2017-15361)",
        ));
    }
    Ok(())
}

/// ROCA's test (Nemec et al., CCS 2017): a flawed modulus is, modulo each small
/// prime below, a power of 65537; a sound one almost never is for all of them.
fn roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u64; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n
            .iter()
            .fold(0u64, |acc, b| (acc * 256 + u64::from(*b)) % p);
        let generator = 65537 % p;
        let mut power = 1;
        for _ in 0..p {
            if power == residue {
                return true;
            }
            power = power * generator % p;
        }
        false
    })
}

/// Refuses an Ed25519 public key of small order (or a non-canonical encoding):
/// under such a key a forged signature (R = identity, S = 0) verifies.
fn check_ed25519_point(x: &[u8]) -> Result<(), ConfigError> {
    let mut y: [u8; 32] = x
        .try_into()
        .map_err(|_| ConfigError::unusable_key("an Ed25519 public key is 32 bytes"))?;
    y[31] &= 0x7f; // the sign of x does not change the order
    // p = 2^255 - 19: encodings of y >= p are non-canonical.
    let at_least_p = y[31] == 0x7f && y[1..31].iter().all(|b| *b == 0xff) && y[0] >= 0xed;
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    // The y of the points of order 8 (with either sign of x).
    const ORDER_8: [[u8; 32]; 2] = [
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
    ];
    let small = y == [0u8; 32] || y == one || y == minus_one || ORDER_8.contains(&y);
    if small || at_least_p {
        return Err(ConfigError::unusable_key(
            "the Ed25519 public key is of small order or not canonical",
        ));
    }
    Ok(())
}

/// The raw key of an Ed25519 SubjectPublicKeyInfo PEM, checked as a JWK's is.
fn check_ed25519_pem(public_pem: &[u8]) -> Result<(), ConfigError> {
    const PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let text = String::from_utf8_lossy(public_pem);
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.trim().chars())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| ConfigError::unusable_key("the Ed25519 PEM is not base64"))?;
    match der.strip_prefix(&PREFIX[..]) {
        Some(x) if der.len() == 44 => check_ed25519_point(x),
        _ => Err(ConfigError::unusable_key(
            "the Ed25519 PEM is not a SubjectPublicKeyInfo of 32 bytes",
        )),
    }
}

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
