//! Signing: the one place tokens are made. The header is encoded once per key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::error::IssueError;
use crate::keys::{Algorithm, Key};

/// Signs claims with the configured key; the header is encoded once.
pub(crate) struct Signer {
    key: Key,
    header_b64: String,
}

impl Signer {
    pub(crate) fn new(key: &Key) -> Option<Signer> {
        // Members sorted as PyJWT writes them: {"alg":..,"kid":..,"typ":"JWT"}.
        let mut header = serde_json::Map::new();
        header.insert("alg".into(), key.alg.as_str().into());
        if let Some(kid) = &key.kid {
            header.insert("kid".into(), kid.as_str().into());
        }
        header.insert("typ".into(), "JWT".into());
        Signer::with_header(key, &header)
    }

    /// A signer that writes `header` (which must name the key's `alg`).
    pub(crate) fn with_header(
        key: &Key,
        header: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Signer> {
        if !key.can_sign() {
            return None;
        }
        let header_b64 =
            URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header.clone()).to_string());
        Some(Signer {
            key: key.clone(),
            header_b64,
        })
    }

    pub(crate) fn alg(&self) -> Algorithm {
        self.key.alg
    }

    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, IssueError> {
        let payload = serde_json::to_vec(claims).map_err(|e| IssueError(e.to_string()))?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self
            .key
            .sign(token.as_bytes())
            .ok_or_else(|| IssueError("the crypto backend could not sign".into()))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}
