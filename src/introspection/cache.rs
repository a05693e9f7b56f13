//! Answers kept for a while (off unless configured): bounded, each entry at
//! most until the token's `exp` and at most the configured time, only active
//! answers, keyed by the token's SHA-256 (the token itself is never held, so
//! a memory dump or a debug print shows no usable credential).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::answer::Answer;

/// A token's cache and flight key.
pub(crate) type TokenHash = [u8; 32];

pub(crate) fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

pub(super) struct AnswerCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<TokenHash, (Arc<Answer>, Instant)>>,
}

impl AnswerCache {
    pub(super) fn new(ttl: Duration, capacity: usize) -> Self {
        AnswerCache {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn get(&self, key: &TokenHash) -> Option<Arc<Answer>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((answer, until)) if Instant::now() < *until => Some(answer.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps an active answer until its token's `exp` (Unix seconds, `now`
    /// being the present one) or the configured time, whichever comes first.
    pub(super) fn insert(&self, key: TokenHash, answer: Arc<Answer>, now_unix: f64) {
        let left = answer.exp().map_or(self.ttl, |exp| {
            Duration::from_secs_f64((exp - now_unix).clamp(0.0, 1e9))
        });
        let keep = left.min(self.ttl);
        if keep.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= self.capacity {
                // Full of live answers: one makes room (any one: each is
                // asked again on its next use, at worst).
                if let Some(victim) = entries.keys().next().copied() {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(key, (answer, now + keep));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::introspection::answer::{Reading, Verdict, read};

    fn answer(exp: f64) -> Arc<Answer> {
        let body = format!(r#"{{"active":true,"sub":"a","token_type":"Bearer","exp":{exp}}}"#);
        let reading = Reading {
            iss: "https://as",
            untyped_is_access: false,
        };
        match read(body.as_bytes(), reading).unwrap() {
            Verdict::Active(answer) => Arc::new(answer),
            Verdict::Inactive => unreachable!(),
        }
    }

    #[test]
    fn an_answer_lives_no_longer_than_its_token() {
        let cache = AnswerCache::new(Duration::from_secs(60), 10);
        let now = 1_000_000.0;
        cache.insert(hash("expired"), answer(now - 1.0), now);
        cache.insert(hash("live"), answer(now + 30.0), now);
        assert!(cache.get(&hash("expired")).is_none());
        assert!(cache.get(&hash("live")).is_some());
        assert!(cache.get(&hash("never seen")).is_none());
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let cache = AnswerCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            cache.insert(hash(&i.to_string()), answer(2e9), 1e9);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&hash("9")).is_some(), "the newest answer is kept");
    }
}
