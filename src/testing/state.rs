//! What the mock issuer holds, and how it signs: shared by the server
//! (`issuer.rs`) and the tokens made on demand (`token.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64};

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::keys::{Algorithm, Key};
use crate::token::Signer;

/// A new ES256 key pair, named by its thumbprint.
pub(super) fn new_key() -> Result<Key, ConfigError> {
    let der = crate::keys::backend::generate_p256_pkcs8()?;
    let key = Key::signing_der(Algorithm::ES256, &der)?;
    let kid = key.thumbprint().unwrap_or_default();
    Ok(key.with_kid(kid))
}

/// What the issuer holds and what it was asked.
pub(super) struct State {
    pub(super) url: String,
    pub(super) audience: String,
    /// Its keys, the signing one last.
    pub(super) keys: Mutex<Vec<Key>>,
    pub(super) down: AtomicBool,
    pub(super) delay_ms: AtomicU64,
    pub(super) requests: Mutex<HashMap<String, u64>>,
    /// Opaque tokens and what introspection answers about them.
    pub(super) opaque: Mutex<HashMap<String, Value>>,
    pub(super) dpop_nonce: Mutex<Option<String>>,
}

impl State {
    pub(super) fn current_key(&self) -> Key {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.last().cloned().expect("the issuer always has a key")
    }
}

/// `claims` signed with `key`, the header naming its `kid` and `typ`.
pub(super) fn sign(key: &Key, typ: &str, claims: &Map<String, Value>) -> String {
    let mut header = Map::new();
    header.insert("alg".into(), key.algorithm().as_str().into());
    if let Some(kid) = key.kid() {
        header.insert("kid".into(), kid.into());
    }
    header.insert("typ".into(), typ.into());
    Signer::with_header(key, &header)
        .and_then(|signer| signer.sign(claims).ok())
        .expect("the mock issuer's key signs")
}
