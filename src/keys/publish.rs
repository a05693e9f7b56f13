//! Publishing: the RFC 7517 JWKS of our public keys, for
//! `/.well-known/jwks.json`.

use super::set::KeySet;
use crate::error::ConfigError;

/// The RFC 7517 JWKS of the public keys in `keys` (HMAC secrets never appear).
pub(crate) fn jwks(keys: &KeySet) -> Result<String, ConfigError> {
    let mut published = Vec::new();
    for key in keys.all().filter(|k| !k.alg.is_hmac()) {
        let mut jwk = serde_json::to_value(key.public_jwk()?)
            .map_err(|e| ConfigError::unusable_key(format!("unusable key: {e}")))?;
        if let Some(object) = jwk.as_object_mut() {
            object.insert("kid".into(), key.kid.clone().into());
            object.insert("alg".into(), key.alg.as_str().into());
            object.insert("use".into(), "sig".into());
        }
        published.push(jwk);
    }
    Ok(serde_json::json!({ "keys": published }).to_string())
}
