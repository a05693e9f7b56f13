//! Signing: the one place tokens are made. The header is encoded once per key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::error::IssueError;
use crate::keys::{Algorithm, Key};

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
