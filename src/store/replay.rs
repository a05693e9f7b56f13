//! Proofs seen once: a DPoP proof (RFC 9449 11.1) is accepted once, on
//! whichever instance sees it first, and remembered only while it could still
//! be accepted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Mutex;

use super::{StoreError, StoreFuture};
use crate::claims::NumericDate;

/// How many proofs a [`MemoryReplay`] remembers by default.
pub const DEFAULT_REPLAY_CAPACITY: usize = 250_000;

/// How many live proofs one client key may have in a [`MemoryReplay`] by
/// default (with the default 60 s proof lifetime, about 150 requests a second).
pub const DEFAULT_PROOFS_PER_KEY: usize = 10_000;

/// A proof about to be accepted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProofUse<'a> {
    /// SHA-256 of the key's thumbprint and the proof's `jti`: what must be
    /// unique.
    pub id: &'a [u8; 32],
    /// The RFC 7638 thumbprint of the client's key, for per-key bounds.
    pub key: &'a str,
    /// When the proof could no longer be accepted anyway.
    pub expires: NumericDate,
}

/// Where the proofs already used are remembered: in this process
/// ([`MemoryReplay`], the default) or shared by every instance
/// (`RedisStore`, feature `redis`).
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `proof` until it expires: `true` when it was not seen before,
    /// `false` for a replay. Atomic: of two instances seeing one proof at
    /// once, exactly one is told `true`.
    fn first_use(&self, proof: &ProofUse<'_>) -> StoreFuture<bool>;
}

/// Proofs remembered in this process, for one instance (several instances
/// need a shared store, or a proof replayed to another instance passes).
/// Bounded: at most `capacity` proofs, and at most `per_key` of one client
/// key; past either bound a proof is refused (503) rather than forgotten,
/// so a client flooding with one key slows only itself.
#[derive(Debug)]
pub struct MemoryReplay {
    state: Mutex<Seen>,
    capacity: usize,
    per_key: usize,
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<[u8; 32]>,
    per_key: HashMap<String, usize>,
    /// By expiry, soonest first.
    expiries: BinaryHeap<Reverse<(u64, [u8; 32], String)>>,
}

impl Default for MemoryReplay {
    fn default() -> Self {
        MemoryReplay::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl MemoryReplay {
    /// A store for at most `capacity` live proofs (at least 1).
    pub fn new(capacity: usize) -> MemoryReplay {
        MemoryReplay {
            state: Mutex::default(),
            capacity: capacity.max(1),
            per_key: DEFAULT_PROOFS_PER_KEY,
        }
    }

    /// At most `proofs` live proofs of one client key (at least 1).
    #[must_use]
    pub fn per_key(mut self, proofs: usize) -> Self {
        self.per_key = proofs.max(1);
        self
    }

    /// How many proofs are remembered now.
    pub fn len(&self) -> usize {
        self.lock().ids.len()
    }

    /// Whether no proof is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Seen {
    fn purge(&mut self, now: u64) {
        while let Some(Reverse((expires, _, _))) = self.expiries.peek()
            && *expires <= now
        {
            let Some(Reverse((_, id, key))) = self.expiries.pop() else {
                break;
            };
            self.ids.remove(&id);
            if let Some(count) = self.per_key.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.per_key.remove(&key);
                }
            }
        }
    }
}

impl ReplayStore for MemoryReplay {
    fn first_use(&self, proof: &ProofUse<'_>) -> StoreFuture<bool> {
        let now = NumericDate::now().as_secs_f64() as u64;
        let mut seen = self.lock();
        seen.purge(now);
        if seen.ids.contains(proof.id) {
            return StoreFuture::ready(Ok(false));
        }
        if seen.ids.len() >= self.capacity {
            return StoreFuture::ready(Err(StoreError::new("the DPoP replay store is full")));
        }
        let count = seen.per_key.get(proof.key).copied().unwrap_or(0);
        if count >= self.per_key {
            return StoreFuture::ready(Err(StoreError::new(
                "too many live DPoP proofs for one key",
            )));
        }
        let expires = (proof.expires.as_secs_f64().ceil() as u64).max(now + 1);
        seen.ids.insert(*proof.id);
        seen.per_key.insert(proof.key.to_owned(), count + 1);
        seen.expiries
            .push(Reverse((expires, *proof.id, proof.key.to_owned())));
        StoreFuture::ready(Ok(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn proof<'a>(id: &'a [u8; 32], key: &'a str, secs: u64) -> ProofUse<'a> {
        ProofUse {
            id,
            key,
            expires: NumericDate::now().plus(Duration::from_secs(secs)),
        }
    }

    fn answer(store: &MemoryReplay, p: &ProofUse<'_>) -> Result<bool, StoreError> {
        store
            .first_use(p)
            .now_or_later()
            .unwrap_or_else(|_| panic!("memory answers at once"))
    }

    #[test]
    fn a_proof_is_accepted_once() {
        let store = MemoryReplay::default();
        let p = proof(&[1; 32], "k", 60);
        assert_eq!(answer(&store, &p), Ok(true));
        assert_eq!(answer(&store, &p), Ok(false));
        assert_eq!(answer(&store, &proof(&[2; 32], "k", 60)), Ok(true));
    }

    #[test]
    fn bounds_refuse_instead_of_forgetting_and_one_key_cannot_crowd_out_another() {
        let store = MemoryReplay::new(3).per_key(2);
        assert_eq!(answer(&store, &proof(&[1; 32], "a", 60)), Ok(true));
        assert_eq!(answer(&store, &proof(&[2; 32], "a", 60)), Ok(true));
        assert!(
            answer(&store, &proof(&[3; 32], "a", 60)).is_err(),
            "per key"
        );
        assert_eq!(answer(&store, &proof(&[4; 32], "b", 60)), Ok(true));
        assert!(answer(&store, &proof(&[5; 32], "c", 60)).is_err(), "full");
        // What is remembered is still refused as a replay.
        assert_eq!(answer(&store, &proof(&[1; 32], "a", 60)), Ok(false));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn expired_proofs_are_dropped() {
        let store = MemoryReplay::new(1);
        let past = ProofUse {
            id: &[1; 32],
            key: "a",
            expires: NumericDate::from_system_time(std::time::UNIX_EPOCH),
        };
        assert_eq!(answer(&store, &past), Ok(true));
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(answer(&store, &proof(&[2; 32], "a", 60)), Ok(true));
        assert_eq!(store.len(), 1);
    }
}
