//! Proof keys already decoded and checked, by algorithm and RFC 7638
//! thumbprint: a client's steady stream of proofs costs one signature check
//! each, no key decoding. Bounded; only keys bound to a verified token that
//! have signed a valid proof are remembered, so a flood of fresh keys (which
//! needs valid tokens bound to them) cannot fill it with garbage.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::keys::{Algorithm, Key};

/// How many proof keys are remembered: past it, one is forgotten per new one.
const CAPACITY: usize = 4096;

#[derive(Default)]
pub(crate) struct ProofKeys {
    /// By thumbprint; the algorithm it was checked for beside it (a key used
    /// with another algorithm is a miss, and replaces it).
    keys: RwLock<HashMap<String, (Algorithm, Arc<Key>)>>,
}

impl ProofKeys {
    pub(crate) fn get(&self, alg: Algorithm, jkt: &str) -> Option<Arc<Key>> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.get(jkt)
            .filter(|(checked_for, _)| *checked_for == alg)
            .map(|(_, key)| key.clone())
    }

    pub(crate) fn remember(&self, alg: Algorithm, jkt: &str, key: Arc<Key>) {
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if keys.len() >= CAPACITY && !keys.contains_key(jkt) {
            // An arbitrary one (the map's order is randomly seeded).
            if let Some(old) = keys.keys().next().cloned() {
                keys.remove(&old);
            }
        }
        keys.insert(jkt.to_owned(), (alg, key));
    }
}

impl std::fmt::Debug for ProofKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKeys").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_bound_to_the_algorithm() {
        let keys = ProofKeys::default();
        let key = Arc::new(Key::hs256([1u8; 32]).unwrap());
        for i in 0..CAPACITY + 10 {
            keys.remember(Algorithm::ES256, &i.to_string(), key.clone());
        }
        assert_eq!(keys.keys.read().unwrap().len(), CAPACITY);
        keys.remember(Algorithm::ES256, "mine", key.clone());
        assert!(keys.get(Algorithm::ES256, "mine").is_some());
        assert!(keys.get(Algorithm::ES384, "mine").is_none());
        assert!(keys.get(Algorithm::ES256, "another").is_none());
    }
}
