//! The client side of DPoP (RFC 9449 4): proofs this service signs for the
//! requests it sends with a DPoP-bound token (or to get one).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, Uri};
use sha2::{Digest, Sha256};

use crate::claims::NumericDate;
use crate::error::{ConfigError, IssueError};
use crate::keys::Key;
use crate::token::Signer;

/// A client's DPoP key: signs a fresh proof for each request it sends.
pub struct DpopSigner {
    signer: Signer,
    jkt: String,
}

impl fmt::Debug for DpopSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopSigner")
            .field("alg", &self.signer.alg())
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

impl DpopSigner {
    /// Proofs signed with `key`, an asymmetric private key (ES256, EdDSA,
    /// RS256, ...): its public half travels in each proof's header.
    pub fn new(key: Key) -> Result<DpopSigner, ConfigError> {
        let (Some(jwk), Some(jkt)) = (key.public_jwk(), key.thumbprint()) else {
            return Err(ConfigError::unusable_key(
                "a DPoP key is an asymmetric key pair, not an HMAC secret",
            ));
        };
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "dpop+jwt".into());
        header.insert("alg".into(), key.algorithm().as_str().into());
        header.insert("jwk".into(), serde_json::Value::Object(jwk));
        let signer = Signer::with_header(&key, &header).ok_or_else(|| {
            ConfigError::unusable_key("a DPoP key must be a private key that can sign")
        })?;
        Ok(DpopSigner { signer, jkt })
    }

    /// The key's RFC 7638 thumbprint: what a token bound to it names in
    /// `cnf.jkt`.
    pub fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// A proof for `method` on `uri` (its query and fragment left out), for
    /// `access_token` when one is sent (`ath`), with the server's `nonce` when
    /// it asked for one.
    pub fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, IssueError> {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(IssueError("a DPoP proof names an absolute URI".into()));
        };
        let mut claims = serde_json::Map::new();
        claims.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
        claims.insert("htm".into(), method.as_str().into());
        claims.insert(
            "htu".into(),
            format!("{scheme}://{authority}{}", uri.path()).into(),
        );
        let now = NumericDate::now().as_secs_f64().floor() as u64;
        claims.insert("iat".into(), now.into());
        if let Some(token) = access_token {
            let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            claims.insert("ath".into(), ath.into());
        }
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        self.signer.sign(&claims)
    }
}

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "ring")))]
mod tests {
    use super::*;
    use crate::keys::Algorithm;

    fn part(jws: &str, at: usize) -> serde_json::Value {
        let segment = jws.split('.').nth(at).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    #[test]
    fn a_proof_names_the_request_and_carries_only_the_public_key() {
        let pem = include_bytes!("../../tests/fixtures/keys/ec256_private.pem");
        let signer = DpopSigner::new(Key::signing_pem(Algorithm::ES256, pem).unwrap()).unwrap();
        let uri: Uri = "https://api.example/orders/7?x=1#f".parse().unwrap();
        let proof = signer
            .proof(&Method::GET, &uri, Some("the-token"), Some("n-1"))
            .unwrap();
        let (header, claims) = (part(&proof, 0), part(&proof, 1));
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header["jwk"]["x"].is_string() && header["jwk"].get("d").is_none());
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://api.example/orders/7");
        assert_eq!(claims["nonce"], "n-1");
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"the-token"));
        assert_eq!(claims["ath"], ath.as_str());
        let again = signer.proof(&Method::GET, &uri, None, None).unwrap();
        assert_ne!(part(&again, 1)["jti"], claims["jti"]);
        assert!(part(&again, 1).get("ath").is_none());
        assert_eq!(signer.thumbprint().len(), 43);
    }

    #[test]
    fn a_secret_or_a_public_key_cannot_sign_proofs() {
        assert!(DpopSigner::new(Key::hmac(Algorithm::HS256, [7u8; 32]).unwrap()).is_err());
        let public = include_bytes!("../../tests/fixtures/keys/ec256_public.pem");
        assert!(DpopSigner::new(Key::verifying_pem(Algorithm::ES256, public).unwrap()).is_err());
    }
}
