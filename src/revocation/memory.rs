//! [`MemoryStore`]: revocations and refresh families in this process, bounded,
//! each entry dropped once the token it concerns has expired.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::{RefreshUse, RevocationStore, StoreError, StoreFuture};
use crate::claims::NumericDate;

/// The default store: in memory, for one instance. Answers without waiting.
///
/// Entries live until the token they concern expires (then they no longer
/// matter) and are dropped as new ones arrive, so memory follows the number of
/// live revoked or spent tokens, never the number of requests. A hard cap
/// ([`with_capacity`](Self::with_capacity), one million by default) makes a full
/// store refuse new entries with a [`StoreError`] rather than forget old ones.
#[derive(Debug)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
    capacity: usize,
}

/// What an entry is about; one map per kind, so lookups borrow the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Token = 0,
    Family = 1,
    Spent = 2,
}

#[derive(Debug, Default)]
struct Entries {
    /// Per kind: id -> expiry (whole seconds).
    until: [HashMap<Box<str>, u64>; 3],
    by_expiry: BTreeSet<(u64, Kind, Box<str>)>,
}

impl Entries {
    fn live(&self, kind: Kind, id: &str, now: u64) -> bool {
        self.until[kind as usize]
            .get(id)
            .is_some_and(|until| *until > now)
    }

    fn len(&self) -> usize {
        self.until.iter().map(HashMap::len).sum()
    }

    fn purge(&mut self, now: u64) {
        while let Some(first) = self.by_expiry.first()
            && first.0 <= now
        {
            let (_, kind, id) = self.by_expiry.pop_first().expect("first exists");
            self.until[kind as usize].remove(&id);
        }
    }

    fn insert(
        &mut self,
        kind: Kind,
        id: &str,
        until: u64,
        capacity: usize,
    ) -> Result<(), StoreError> {
        if let Some(old) = self.until[kind as usize].get(id).copied() {
            if old >= until {
                return Ok(());
            }
            self.by_expiry.remove(&(old, kind, Box::from(id)));
        } else if self.len() >= capacity {
            return Err(StoreError::new("the memory store is full"));
        }
        self.until[kind as usize].insert(Box::from(id), until);
        self.by_expiry.insert((until, kind, Box::from(id)));
        Ok(())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_capacity(1_000_000)
    }
}

impl MemoryStore {
    /// An empty store holding at most `capacity` live entries.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryStore {
            entries: Mutex::new(Entries::default()),
            capacity,
        }
    }

    /// How many entries are held now (expired ones included until the next write).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere cannot leave the maps inconsistent: writes are
        // single insert/remove pairs.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, kind: Kind, id: &str, until: NumericDate) -> Result<(), StoreError> {
        let now = now_secs();
        let until = until_secs(until);
        let mut entries = self.lock();
        entries.purge(now);
        if until <= now {
            return Ok(()); // already expired: nothing to remember
        }
        entries.insert(kind, id, until, self.capacity)
    }
}

fn now_secs() -> u64 {
    NumericDate::now().as_secs_f64() as u64
}

/// Rounded up, so an entry outlives its token by less than a second, never less.
fn until_secs(until: NumericDate) -> u64 {
    until.as_secs_f64().ceil() as u64
}

impl RevocationStore for MemoryStore {
    fn is_revoked(&self, jti: &str, family: Option<&str>) -> StoreFuture<bool> {
        let now = now_secs();
        let entries = self.lock();
        let revoked = entries.live(Kind::Token, jti, now)
            || family.is_some_and(|f| entries.live(Kind::Family, f, now));
        StoreFuture::ready(Ok(revoked))
    }

    fn revoke(&self, jti: &str, until: NumericDate) -> StoreFuture<()> {
        StoreFuture::ready(self.write(Kind::Token, jti, until))
    }

    fn revoke_family(&self, family: &str, until: NumericDate) -> StoreFuture<()> {
        StoreFuture::ready(self.write(Kind::Family, family, until))
    }

    fn spend_refresh(
        &self,
        jti: &str,
        family: &str,
        until: NumericDate,
        family_until: NumericDate,
    ) -> StoreFuture<RefreshUse> {
        let now = now_secs();
        let mut entries = self.lock();
        entries.purge(now);
        if entries.live(Kind::Family, family, now) {
            return StoreFuture::ready(Ok(RefreshUse::FamilyRevoked));
        }
        let result = if entries.live(Kind::Spent, jti, now) {
            entries
                .insert(
                    Kind::Family,
                    family,
                    until_secs(family_until),
                    self.capacity,
                )
                .map(|()| RefreshUse::Reused)
        } else {
            entries
                .insert(
                    Kind::Spent,
                    jti,
                    until_secs(until).max(now + 1),
                    self.capacity,
                )
                .map(|()| RefreshUse::First)
        };
        StoreFuture::ready(result)
    }
}
