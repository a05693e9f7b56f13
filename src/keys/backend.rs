//! The crypto backend for public-key algorithms and remote-keys' TLS:
//! `aws-lc-rs` (the default; it wins when both are enabled) or `ring`. Both
//! speak the same API, so one file serves both. Without either, HMAC keys
//! still work and a public key is a configuration error
//! ([`ConfigError::NoBackend`]).
//!
//! Material is checked before it gets here (`material.rs`); signatures arrive
//! decoded. Nothing here panics on hostile input: every failure is `false` or
//! a [`ConfigError`].

use super::Algorithm;
use super::der::PublicDer;
use crate::error::ConfigError;

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs as imp;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring as imp;

#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
use imp::signature::{self, KeyPair as _, VerificationAlgorithm};

/// A public key ready to verify one algorithm's signatures. With aws-lc-rs the
/// key is parsed once; ring parses its (already checked) bytes per signature.
pub(crate) struct Verifier {
    #[cfg(feature = "aws-lc-rs")]
    key: signature::ParsedPublicKey,
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    key: signature::UnparsedPublicKey<Vec<u8>>,
}

impl Verifier {
    /// `bytes` as the backend takes them: PKCS#1 RSAPublicKey, an uncompressed
    /// EC point, or an Ed25519 point.
    #[cfg_attr(
        not(any(feature = "ring", feature = "aws-lc-rs")),
        allow(unused_variables)
    )]
    pub(crate) fn new(alg: Algorithm, bytes: Vec<u8>) -> Result<Verifier, ConfigError> {
        #[cfg(feature = "aws-lc-rs")]
        {
            let key = signature::ParsedPublicKey::new(verification(alg)?, bytes)
                .map_err(|e| ConfigError::unusable_key(format!("unusable {alg} key: {e}")))?;
            Ok(Verifier { key })
        }
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        {
            Ok(Verifier {
                key: signature::UnparsedPublicKey::new(verification(alg)?, bytes),
            })
        }
        #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
        Err(ConfigError::NoBackend)
    }

    /// Whether `signature` is the key's signature of `message`.
    #[cfg_attr(
        not(any(feature = "ring", feature = "aws-lc-rs")),
        allow(unused_variables)
    )]
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        #[cfg(feature = "aws-lc-rs")]
        return self.key.verify_sig(message, signature).is_ok();
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        return self.key.verify(message, signature).is_ok();
        #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
        false
    }
}

#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
fn verification(alg: Algorithm) -> Result<&'static dyn VerificationAlgorithm, ConfigError> {
    use signature as s;
    Ok(match alg {
        Algorithm::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &s::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &s::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &s::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &s::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &s::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &s::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &s::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &s::ED25519,
        _ => return Err(not_public_key(alg)),
    })
}

#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
fn not_public_key(alg: Algorithm) -> ConfigError {
    ConfigError::unusable_key(format!("{alg} is not a public-key algorithm"))
}

/// A private key that signs with one algorithm.
pub(crate) struct Signer {
    #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
    key: SigningKey,
}

#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
enum SigningKey {
    Rsa(signature::RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ec(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
}

impl Signer {
    /// A private key from its DER: PKCS#8 (any algorithm) or, when `pkcs1`,
    /// PKCS#1's RSAPrivateKey. Returns the key and its public half's DER as
    /// [`Verifier::new`] takes it.
    #[cfg_attr(
        not(any(feature = "ring", feature = "aws-lc-rs")),
        allow(unused_variables)
    )]
    pub(crate) fn new(
        alg: Algorithm,
        der: &[u8],
        pkcs1: bool,
    ) -> Result<(Signer, Vec<u8>), ConfigError> {
        #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
        {
            let refused = |e: imp::error::KeyRejected| {
                ConfigError::unusable_key(format!("unusable {alg} private key: {e}"))
            };
            let key = match alg {
                Algorithm::ES256 | Algorithm::ES384 => {
                    let curve = if alg == Algorithm::ES256 {
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING
                    } else {
                        &signature::ECDSA_P384_SHA384_FIXED_SIGNING
                    };
                    #[cfg(feature = "aws-lc-rs")]
                    let pair = signature::EcdsaKeyPair::from_pkcs8(curve, der);
                    #[cfg(not(feature = "aws-lc-rs"))]
                    let pair = signature::EcdsaKeyPair::from_pkcs8(
                        curve,
                        der,
                        &imp::rand::SystemRandom::new(),
                    );
                    SigningKey::Ec(pair.map_err(refused)?)
                }
                Algorithm::EdDSA => SigningKey::Ed25519(
                    // Unchecked: PKCS#8 v1 (what OpenSSL writes) has no public half to check.
                    signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(refused)?,
                ),
                a if a.is_rsa() => {
                    let pair = if pkcs1 {
                        signature::RsaKeyPair::from_der(der)
                    } else {
                        signature::RsaKeyPair::from_pkcs8(der)
                    };
                    SigningKey::Rsa(pair.map_err(refused)?, rsa_padding(alg))
                }
                // The constructors refuse secrets before they get here.
                _ => return Err(not_public_key(alg)),
            };
            let public = match &key {
                SigningKey::Rsa(pair, _) => pair.public_key().as_ref().to_vec(),
                SigningKey::Ec(pair) => pair.public_key().as_ref().to_vec(),
                SigningKey::Ed25519(pair) => pair.public_key().as_ref().to_vec(),
            };
            Ok((Signer { key }, public))
        }
        #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
        Err(ConfigError::NoBackend)
    }

    /// The signature of `message`, or `None` if the backend failed (its
    /// randomness, say).
    #[cfg_attr(
        not(any(feature = "ring", feature = "aws-lc-rs")),
        allow(unused_variables)
    )]
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
        {
            let rng = imp::rand::SystemRandom::new();
            match &self.key {
                SigningKey::Rsa(pair, padding) => {
                    #[cfg(feature = "aws-lc-rs")]
                    let len = pair.public_modulus_len();
                    #[cfg(not(feature = "aws-lc-rs"))]
                    let len = pair.public().modulus_len();
                    let mut signature = vec![0; len];
                    pair.sign(*padding, &rng, message, &mut signature).ok()?;
                    Some(signature)
                }
                SigningKey::Ec(pair) => Some(pair.sign(&rng, message).ok()?.as_ref().to_vec()),
                SigningKey::Ed25519(pair) => Some(pair.sign(message).as_ref().to_vec()),
            }
        }
        #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
        None
    }
}

#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
fn rsa_padding(alg: Algorithm) -> &'static dyn signature::RsaEncoding {
    match alg {
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => &signature::RSA_PKCS1_SHA256,
    }
}

/// The bytes [`Verifier::new`] takes for `public`.
pub(crate) fn verifier_bytes(public: &PublicDer<'_>) -> Vec<u8> {
    match public {
        PublicDer::Rsa { n, e } => super::der::write_rsa_public_key(n, e),
        PublicDer::Ec { point, .. } => point.to_vec(),
        PublicDer::Ed25519(x) => x.to_vec(),
    }
}

/// rustls's provider on the same backend, for remote-keys' HTTPS.
#[cfg(feature = "remote-keys")]
pub(crate) fn tls_provider() -> Result<rustls::crypto::CryptoProvider, ConfigError> {
    #[cfg(feature = "aws-lc-rs")]
    return Ok(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return Ok(rustls::crypto::ring::default_provider());
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    Err(ConfigError::NoBackend)
}

/// A new P-256 key pair as PKCS#8 DER (the test issuer's signing keys).
#[cfg(all(feature = "test-util", any(feature = "ring", feature = "aws-lc-rs")))]
pub(crate) fn generate_p256_pkcs8() -> Result<Vec<u8>, ConfigError> {
    let rng = imp::rand::SystemRandom::new();
    signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map(|pkcs8| pkcs8.as_ref().to_vec())
        .map_err(|_| ConfigError::unusable_key("the crypto backend could not make a key"))
}

/// Without a backend there is no key pair to make.
#[cfg(all(
    feature = "test-util",
    not(any(feature = "ring", feature = "aws-lc-rs"))
))]
pub(crate) fn generate_p256_pkcs8() -> Result<Vec<u8>, ConfigError> {
    Err(ConfigError::NoBackend)
}
