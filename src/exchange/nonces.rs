//! The DPoP nonces servers hand out (RFC 9449 8 and 9), by origin: the token
//! endpoint's and each downstream service's, each sent back until the server
//! gives another. Bounded: a nonce is an optimization, never a must.

use std::collections::HashMap;
use std::sync::Mutex;

use http::{HeaderMap, Uri};

/// At most this many origins are remembered.
const MAX_ORIGINS: usize = 256;
/// A nonce longer than this is not kept.
const MAX_NONCE_LEN: usize = 512;

#[derive(Default)]
pub(super) struct DpopNonces {
    by_origin: Mutex<HashMap<String, String>>,
}

fn origin(uri: &Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or_default(),
        uri.authority().map_or("", |a| a.as_str())
    )
}

impl DpopNonces {
    /// The nonce `uri`'s server gave last.
    pub(super) fn get(&self, uri: &Uri) -> Option<String> {
        let nonces = self.by_origin.lock().unwrap_or_else(|e| e.into_inner());
        nonces.get(&origin(uri)).cloned()
    }

    /// Keeps the `DPoP-Nonce` an answer from `uri`'s server carries; whether
    /// it is a new one.
    pub(super) fn note(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_LEN)
        else {
            return false;
        };
        let mut nonces = self.by_origin.lock().unwrap_or_else(|e| e.into_inner());
        let origin = origin(uri);
        if nonces.get(&origin).is_some_and(|held| held == nonce) {
            return false;
        }
        if nonces.len() >= MAX_ORIGINS && !nonces.contains_key(&origin) {
            nonces.clear();
        }
        nonces.insert(origin, nonce.to_owned());
        true
    }
}
