//! Proofs seen once: a DPoP proof (RFC 9449 11.1) is accepted once, on
//! whichever instance sees it first, and remembered only while it could still
//! be accepted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;

use super::{StoreError, StoreFuture};
use crate::claims::NumericDate;

/// How many proofs a [`MemoryReplay`] remembers by default.
pub const DEFAULT_REPLAY_CAPACITY: usize = 250_000;

/// How many live proofs one client key may have in a replay store by
/// default (with the default 60 s proof lifetime, about 150 requests a second).
pub const DEFAULT_PROOFS_PER_KEY: usize = 10_000;

/// How many live proofs one account (the tokens' `sub`), over all its keys,
/// may have in a replay store by default: every login may bind a new key, so
/// the per-key bound alone does not bound an account.
pub const DEFAULT_PROOFS_PER_SUBJECT: usize = 20_000;

/// A proof about to be accepted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProofUse<'a> {
    /// SHA-256 of the key's thumbprint and the proof's `jti`: what must be
    /// unique.
    pub id: &'a [u8; 32],
    /// The RFC 7638 thumbprint of the client's key, for per-key bounds.
    pub key: &'a str,
    /// The account the proof's token speaks for (its `sub`), for per-account
    /// bounds; `None` for a token request's proof (a login), which has no
    /// token yet.
    pub subject: Option<&'a str>,
    /// The client address a token request's proof came from (a
    /// `std::net::SocketAddr` in its extensions), for the bounds on login
    /// proofs; `None` when unknown, and for a resource request's proof.
    pub client: Option<IpAddr>,
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
/// Bounded, refusing rather than forgetting: at most `per_key` live proofs of
/// one client key and `per_subject` of one account (429 for that client
/// alone); once the store is half full, a client holding more than a
/// thousandth of it is refused too, so a flooder is refused before the store
/// fills and everyone else keeps working; past `capacity`, 503.
///
/// Proofs at token requests (logins, which have no account yet and may each
/// bring a new key) have a quarter of the store of their own, and one client
/// address (an IPv6 /64) a sixty-fourth of that: a login flood is refused
/// (429) on the login route and never fills the room resource requests need.
#[derive(Debug)]
pub struct MemoryReplay {
    state: Mutex<Seen>,
    capacity: usize,
    per_key: usize,
    per_subject: usize,
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<[u8; 32]>,
    per_key: HashMap<String, usize>,
    per_subject: HashMap<String, usize>,
    /// Live proofs of token requests, in all and per client address.
    logins: usize,
    per_client: HashMap<IpAddr, usize>,
    /// By expiry, soonest first.
    expiries: BinaryHeap<Reverse<Live>>,
}

/// A live proof: when it expires, its id, its key, its account (none for a
/// token request's) and, for a token request's, its client's address.
type Live = (u64, [u8; 32], String, Option<String>, Option<IpAddr>);

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
            per_subject: DEFAULT_PROOFS_PER_SUBJECT,
        }
    }

    /// At most `proofs` live proofs of one account, over all its keys (at
    /// least 1).
    #[must_use]
    pub fn per_subject(mut self, proofs: usize) -> Self {
        self.per_subject = proofs.max(1);
        self
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
        while let Some(Reverse((expires, ..))) = self.expiries.peek()
            && *expires <= now
        {
            let Some(Reverse((_, id, key, subject, client))) = self.expiries.pop() else {
                break;
            };
            self.ids.remove(&id);
            release(&mut self.per_key, &key);
            match subject {
                Some(subject) => release(&mut self.per_subject, &subject),
                None => self.logins = self.logins.saturating_sub(1),
            }
            if let Some(client) = client {
                release(&mut self.per_client, &client);
            }
        }
    }
}

/// One proof fewer for `owner`; the entry goes with its last proof.
fn release<K, Q>(counts: &mut HashMap<K, usize>, owner: &Q)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(count) = counts.get_mut(owner) {
        *count -= 1;
        if *count == 0 {
            counts.remove(owner);
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
        let by_key = seen.per_key.get(proof.key).copied().unwrap_or(0);
        let by_subject = proof
            .subject
            .and_then(|subject| seen.per_subject.get(subject).copied())
            .unwrap_or(0);
        if by_key >= self.per_key {
            return over_limit("too many live DPoP proofs for one key");
        }
        if by_subject >= self.per_subject {
            return over_limit("too many live DPoP proofs for one account");
        }
        // A token request's proof: the logins' own share, and its client's.
        let login_share = (self.capacity / 4).max(1);
        let client = proof.subject.is_none().then_some(proof.client).flatten();
        let by_client = client
            .and_then(|client| seen.per_client.get(&client).copied())
            .unwrap_or(0);
        if proof.subject.is_none() {
            if seen.logins >= login_share {
                return over_limit("DPoP proofs at token requests are at their share of the store");
            }
            if by_client >= (login_share / 64).max(1) {
                return over_limit("too many live DPoP proofs at token requests from one client");
            }
        }
        // Under pressure the heavy clients go first, before the store fills.
        let heavy = (self.capacity / 1000).max(1);
        if seen.ids.len() >= self.capacity / 2 && by_key.max(by_subject) >= heavy {
            return over_limit("the DPoP replay store is filling: heavy clients wait");
        }
        if seen.ids.len() >= self.capacity {
            return StoreFuture::ready(Err(StoreError::new("the DPoP replay store is full")));
        }
        let expires = (proof.expires.as_secs_f64().ceil() as u64).max(now + 1);
        seen.ids.insert(*proof.id);
        seen.per_key.insert(proof.key.to_owned(), by_key + 1);
        match proof.subject {
            Some(subject) => {
                seen.per_subject.insert(subject.to_owned(), by_subject + 1);
            }
            None => seen.logins += 1,
        }
        if let Some(client) = client {
            seen.per_client.insert(client, by_client + 1);
        }
        seen.expiries.push(Reverse((
            expires,
            *proof.id,
            proof.key.to_owned(),
            proof.subject.map(str::to_owned),
            client,
        )));
        StoreFuture::ready(Ok(true))
    }
}

fn over_limit(why: &str) -> StoreFuture<bool> {
    StoreFuture::ready(Err(StoreError::over_limit(why)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn proof<'a>(id: &'a [u8; 32], key: &'a str, secs: u64) -> ProofUse<'a> {
        ProofUse {
            id,
            key,
            subject: None,
            client: None,
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

    fn of<'a>(id: &'a [u8; 32], key: &'a str, subject: &'a str) -> ProofUse<'a> {
        ProofUse {
            subject: Some(subject),
            ..proof(id, key, 60)
        }
    }

    #[test]
    fn bounds_refuse_the_flooder_alone_instead_of_forgetting() {
        let store = MemoryReplay::new(4000).per_key(2).per_subject(3);
        assert_eq!(answer(&store, &proof(&[1; 32], "a", 60)), Ok(true));
        assert_eq!(answer(&store, &proof(&[2; 32], "a", 60)), Ok(true));
        let refused = answer(&store, &proof(&[3; 32], "a", 60)).unwrap_err();
        assert!(refused.is_over_limit(), "per key: {refused}");
        // One account, a new key per login: bounded over all its keys.
        assert_eq!(answer(&store, &of(&[4; 32], "k1", "s")), Ok(true));
        assert_eq!(answer(&store, &of(&[5; 32], "k2", "s")), Ok(true));
        assert_eq!(answer(&store, &of(&[6; 32], "k3", "s")), Ok(true));
        let refused = answer(&store, &of(&[7; 32], "k4", "s")).unwrap_err();
        assert!(refused.is_over_limit(), "per account: {refused}");
        // Others are not touched, and what is remembered is still a replay.
        assert_eq!(answer(&store, &of(&[8; 32], "k5", "t")), Ok(true));
        assert_eq!(answer(&store, &proof(&[1; 32], "a", 60)), Ok(false));
    }

    #[test]
    fn past_half_full_heavy_clients_are_refused_before_anyone_else() {
        let store = MemoryReplay::new(10);
        for i in 0..5u8 {
            assert_eq!(answer(&store, &of(&[i; 32], "heavy", "h")), Ok(true));
        }
        // Half full: the client that holds the most waits (429)...
        let refused = answer(&store, &of(&[9; 32], "heavy", "h")).unwrap_err();
        assert!(refused.is_over_limit(), "{refused}");
        // ...while new clients fill the rest, and only a full store is a 503.
        for i in 10..15u8 {
            let key = format!("light-{i}");
            assert_eq!(answer(&store, &of(&[i; 32], &key, &key)), Ok(true));
        }
        let full = answer(&store, &of(&[20; 32], "late", "late")).unwrap_err();
        assert!(!full.is_over_limit(), "{full}");
    }

    /// Issue 43, item 2: token requests' proofs (a new key per login, no
    /// account yet) have a quarter of the store, one client address a
    /// sixty-fourth of that; a login flood never fills the room of resource
    /// requests' proofs.
    #[test]
    fn login_proofs_have_a_share_of_their_own_and_each_client_a_part_of_it() {
        let store = MemoryReplay::new(4096);
        let flooder: IpAddr = "203.0.113.7".parse().unwrap();
        let from = |id: &'static [u8; 32], key: &'static str, client: IpAddr| ProofUse {
            client: Some(client),
            ..proof(id, key, 60)
        };
        let ids: Vec<[u8; 32]> = (0..2000u32)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.to_le_bytes());
                id[31] = 1;
                id
            })
            .collect();
        let ids: &'static [[u8; 32]] = ids.leak();
        let keys: &'static [String] = (0..2000)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .leak();
        // One address, a new key each time: 16 (1024 / 64), then 429.
        let mut accepted = 0;
        for i in 0..100 {
            match answer(&store, &from(&ids[i], &keys[i], flooder)) {
                Ok(true) => accepted += 1,
                Err(e) => assert!(e.is_over_limit(), "{e}"),
                Ok(false) => unreachable!(),
            }
        }
        assert_eq!(accepted, 16);
        // Many addresses: at most 1024 login proofs in all.
        for i in 100..2000 {
            let client = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            let _ = answer(&store, &from(&ids[i], &keys[i], client));
        }
        assert!(store.len() <= 1024, "{} login proofs", store.len());
        // Resource requests' proofs still find room.
        for i in 0..100u8 {
            let key = format!("resource-{i}");
            assert_eq!(answer(&store, &of(&[i; 32], &key, &key)), Ok(true));
        }
    }

    #[test]
    fn expired_proofs_are_dropped() {
        let store = MemoryReplay::new(1);
        let past = ProofUse {
            id: &[1; 32],
            key: "a",
            subject: None,
            client: None,
            expires: NumericDate::from_system_time(std::time::UNIX_EPOCH),
        };
        assert_eq!(answer(&store, &past), Ok(true));
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(answer(&store, &proof(&[2; 32], "a", 60)), Ok(true));
        assert_eq!(store.len(), 1);
    }
}
