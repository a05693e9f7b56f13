//! The opt-in cache of verified tokens (as Envoy's `jwt_cache_config`): a token
//! seen again skips the header and signature work. Keyed by the whole token,
//! compared in full (no digest an attacker could collide), in a randomly seeded
//! map; only tokens that passed the signature ever enter. On every hit the
//! claims are read again and time, issuer, audience, the key's presence, the
//! route's policy and revocation are all checked again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::keys::Key;

/// What a verified token left behind.
pub(crate) struct Verified {
    /// The decoded payload, parsed again on every hit.
    pub(crate) payload: Box<[u8]>,
    /// The `kid` that chose its key, and that very key: a hit counts only while
    /// the same key is still the one the `kid` selects (a key removed or
    /// replaced by a JWKS refresh sends the token through full verification).
    pub(crate) kid: Option<Box<str>>,
    pub(crate) key: Arc<Key>,
    /// When the token expires: entries past it are dropped first.
    exp: f64,
}

/// A bounded map from token to what its verification found.
pub(crate) struct VerifiedCache {
    entries: RwLock<HashMap<Box<str>, Verified>>,
    capacity: usize,
}

impl VerifiedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedCache {
            entries: RwLock::new(HashMap::with_capacity(capacity.min(4096))),
            capacity,
        }
    }

    /// What `hit` makes of the entry for `token`, if there is one. It runs
    /// under the read lock, so a hit copies nothing out and touches no count
    /// the other cores also touch (cloning the entry's `Arc`s did, per request).
    pub(crate) fn get<T>(&self, token: &str, hit: impl FnOnce(&Verified) -> T) -> Option<T> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .map(hit)
    }

    pub(crate) fn insert(
        &self,
        token: &str,
        payload: &[u8],
        kid: Option<&str>,
        key: Arc<Key>,
        exp: f64,
        now: f64,
    ) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            // Expired tokens go first; if every entry is live, start over: O(n)
            // once per `capacity` insertions, and memory stays bounded.
            entries.retain(|_, v| v.exp > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            token.into(),
            Verified {
                payload: payload.into(),
                kid: kid.map(Box::from),
                key,
                exp,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expired_first() {
        let key = Arc::new(Key::hs256([1u8; 32]).unwrap());
        let cache = VerifiedCache::new(2);
        cache.insert("a", b"{}", None, key.clone(), 10.0, 0.0);
        cache.insert("b", b"{}", None, key.clone(), 100.0, 0.0);
        // Full: "a" has expired by now=50, so it makes room.
        cache.insert("c", b"{}", None, key.clone(), 100.0, 50.0);
        let kid = |token| cache.get(token, |seen| seen.kid.as_deref().map(str::to_owned));
        assert!(kid("a").is_none());
        assert!(kid("b").is_some() && kid("c").is_some());
        // Full of live entries: cleared rather than grown.
        cache.insert("d", b"{}", Some("k"), key, 100.0, 50.0);
        assert_eq!(cache.len(), 1);
        assert_eq!(kid("d"), Some(Some("k".to_owned())));
    }
}
