//! The tokens exchanged, by the caller's token's hash (the exchange's
//! audience, resource, scope and actor are fixed per `TokenExchange`, so the
//! hash alone is the key): each used until the sooner of its end and the
//! caller's, bounded in number. A memory dump holds no caller's token.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ExchangedToken;
use crate::introspection::cache::TokenHash;

pub(super) struct ExchangeCache {
    capacity: usize,
    entries: Mutex<HashMap<TokenHash, ExchangedToken>>,
}

impl ExchangeCache {
    pub(super) fn new(capacity: usize) -> Self {
        ExchangeCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The token for `key`, while it may be used at `now`.
    pub(super) fn get(&self, key: &TokenHash, now: f64) -> Option<ExchangedToken> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|t| t.use_until > now).cloned()
    }

    /// Keeps `token` for `key`; when full, the ended entries go first, then
    /// the one ending soonest.
    pub(super) fn insert(&self, key: TokenHash, token: ExchangedToken, now: f64) {
        if self.capacity == 0 || token.use_until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, t| t.use_until > now);
            if entries.len() >= self.capacity
                && let Some(soonest) = entries
                    .iter()
                    .min_by(|a, b| a.1.use_until.total_cmp(&b.1.use_until))
                    .map(|(k, _)| *k)
            {
                entries.remove(&soonest);
            }
        }
        entries.insert(key, token);
    }

    pub(super) fn remove(&self, key: &TokenHash) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}
