//! Publishing: the RFC 7517 JWKS of our public keys, for
//! `/.well-known/jwks.json`.

use super::set::KeySet;

/// The RFC 7517 JWKS of the public keys in `keys` (HMAC secrets never appear).
pub(crate) fn jwks(keys: &KeySet) -> String {
    let published: Vec<_> = keys
        .all()
        .filter_map(|key| {
            let mut jwk = key.public_jwk()?;
            jwk.insert("kid".into(), key.kid.clone().into());
            jwk.insert("alg".into(), key.alg.as_str().into());
            jwk.insert("use".into(), "sig".into());
            Some(serde_json::Value::Object(jwk))
        })
        .collect();
    serde_json::json!({ "keys": published }).to_string()
}
