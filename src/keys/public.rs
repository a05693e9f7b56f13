//! A public key: its checked material, the JWK members it is published as
//! (and its RFC 7638 thumbprint computed from), and the backend's verifier.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::Algorithm;
use super::backend::{Verifier, verifier_bytes};
use super::der::PublicDer;
use super::material::check_public;
use crate::error::ConfigError;

/// A checked public key, ready to verify `alg`.
pub(crate) struct PublicKey {
    /// The RFC 7638 required members, in lexical order, base64url where binary.
    members: Vec<(&'static str, String)>,
    verifier: Verifier,
}

impl PublicKey {
    pub(crate) fn new(alg: Algorithm, public: &PublicDer<'_>) -> Result<PublicKey, ConfigError> {
        check_public(alg, public)?;
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let members = match public {
            PublicDer::Rsa { n, e } => vec![("e", b64(e)), ("kty", "RSA".into()), ("n", b64(n))],
            PublicDer::Ec { p384, point } => {
                let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                let crv = if *p384 { "P-384" } else { "P-256" };
                vec![
                    ("crv", crv.into()),
                    ("kty", "EC".into()),
                    ("x", b64(x)),
                    ("y", b64(y)),
                ]
            }
            PublicDer::Ed25519(x) => {
                vec![
                    ("crv", "Ed25519".into()),
                    ("kty", "OKP".into()),
                    ("x", b64(x)),
                ]
            }
        };
        Ok(PublicKey {
            members,
            verifier: Verifier::new(alg, verifier_bytes(public))?,
        })
    }

    /// The material of a JWK's members (its key type already matched to `alg`).
    pub(crate) fn from_jwk<'a>(
        alg: Algorithm,
        member: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<PublicKey, ConfigError> {
        let bytes = |name: &str| -> Result<Vec<u8>, ConfigError> {
            member(name)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or_else(|| {
                    ConfigError::unusable_key(format!("the JWK has no base64url `{name}`"))
                })
        };
        match alg {
            Algorithm::EdDSA => PublicKey::new(alg, &PublicDer::Ed25519(&bytes("x")?)),
            Algorithm::ES256 | Algorithm::ES384 => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                let coordinate = if alg == Algorithm::ES384 { 48 } else { 32 };
                if x.len() != coordinate || y.len() != coordinate {
                    return Err(ConfigError::unusable_key(format!(
                        "the {alg} JWK's coordinates are not {coordinate} bytes each"
                    )));
                }
                let point = [&[4u8][..], &x, &y].concat();
                let p384 = alg == Algorithm::ES384;
                PublicKey::new(
                    alg,
                    &PublicDer::Ec {
                        p384,
                        point: &point,
                    },
                )
            }
            _ => {
                let (n, e) = (bytes("n")?, bytes("e")?);
                // A JWK's integers are unsigned, big-endian, without leading zeros
                // (RFC 7518 6.3.1); tolerate them, as the checks do.
                let trim = |v: &[u8]| v[v.iter().take_while(|b| **b == 0).count()..].to_vec();
                PublicKey::new(
                    alg,
                    &PublicDer::Rsa {
                        n: &trim(&n),
                        e: &trim(&e),
                    },
                )
            }
        }
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify(message, signature)
    }

    /// The public JWK's key members (`kty`, `crv`, `x`, `y`, `n`, `e`).
    pub(crate) fn jwk(&self) -> serde_json::Map<String, serde_json::Value> {
        self.members
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.as_str().into()))
            .collect()
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the required members in
    /// lexical order without whitespace (their values need no escaping).
    pub(crate) fn thumbprint(&self) -> String {
        let mut canonical = String::from("{");
        for (i, (name, value)) in self.members.iter().enumerate() {
            if i > 0 {
                canonical.push(',');
            }
            canonical.push_str(&format!(r#""{name}":"{value}""#));
        }
        canonical.push('}');
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}
