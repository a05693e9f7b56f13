//! [`MemoryStore`]: revocations and refresh sessions in this process, bounded
//! per subject and in all, each entry dropped once the tokens it concerns have
//! expired.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::subject::{Subject, Write, secs_ceil, warn_collapsed};
use super::{
    DEFAULT_ENTRIES_PER_SUBJECT, RefreshUse, RevocationChanges, RevocationStore, SessionInfo,
    StoreError, StoreFuture, TokenRecord,
};
use crate::claims::NumericDate;

/// The default store: in memory, for one instance. Answers without waiting.
///
/// Memory follows the number of sessions that were logged out or rotate, never
/// the number of requests or rotations: one entry per session, at most
/// [`per_subject`](Self::per_subject) per subject (then the subject's entries
/// collapse into one cut-off that logs it out everywhere), and at most
/// [`with_capacity`](Self::with_capacity) in all (one million by default),
/// past which new entries are refused with a [`StoreError`] rather than old
/// ones forgotten.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Which subjects may have entries, read without the lock: most checks
    /// are for subjects with none, and skip the lock every core contends for.
    marked: SubjectFilter,
    capacity: usize,
    per_subject: usize,
    /// Every write announced to this process's open streams.
    changes: RevocationChanges,
}

/// A bit per subject hash (4096 bits): set when the subject is written,
/// rebuilt from the entries when subjects expire. A clear bit means no
/// entries; a set one means "look".
#[derive(Debug)]
struct SubjectFilter([AtomicU64; 64]);

impl SubjectFilter {
    fn new() -> Self {
        SubjectFilter(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    /// FNV-1a: a few nanoseconds for a subject, no key needed (a collision
    /// only sends a check to the lock).
    fn bit(subject: &str) -> (usize, u64) {
        let hash = subject.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        ((hash >> 6) as usize % 64, 1 << (hash & 63))
    }

    fn may_have(&self, subject: &str) -> bool {
        let (word, bit) = Self::bit(subject);
        self.0[word].load(Ordering::Acquire) & bit != 0
    }

    /// Called with the store's lock held, before it is released.
    fn mark(&self, subject: &str) {
        let (word, bit) = Self::bit(subject);
        self.0[word].fetch_or(bit, Ordering::Release);
    }

    /// Called with the store's lock held: every subject with entries keeps
    /// its bit, others lose theirs.
    fn rebuild<'a>(&self, subjects: impl Iterator<Item = &'a str>) {
        let mut words = [0u64; 64];
        for subject in subjects {
            let (word, bit) = Self::bit(subject);
            words[word] |= bit;
        }
        for (atomic, value) in self.0.iter().zip(words) {
            atomic.store(value, Ordering::Release);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    subjects: HashMap<Box<str>, Subject>,
    /// (the latest time any entry of the subject matters, subject): a subject
    /// is dropped whole once that time has passed.
    by_expiry: BTreeSet<(u64, Box<str>)>,
    /// Entries held, all subjects together.
    len: usize,
    /// Whether subjects expired since the filter was last rebuilt.
    purged: bool,
}

impl State {
    fn purge(&mut self, now: u64) {
        while let Some(first) = self.by_expiry.first()
            && first.0 <= now
        {
            if let Some((_, subject)) = self.by_expiry.pop_first()
                && let Some(gone) = self.subjects.remove(&subject)
            {
                self.len -= gone.len();
                self.purged = true;
            }
        }
    }

    /// Runs `write` on `subject`'s entries, keeping the count, the expiry
    /// index and the capacity: a full store refuses a write that would add an
    /// entry and leaves the subject as it was.
    fn write<T>(
        &mut self,
        subject: &str,
        now: u64,
        capacity: usize,
        write: impl FnOnce(&mut Subject) -> T,
    ) -> Result<T, StoreError> {
        self.purge(now);
        let entries = self.subjects.entry(subject.into()).or_default();
        let (len_before, until_before) = (entries.len(), entries.until());
        let answer = if self.len >= capacity {
            // Rare: try the write on a copy, keep it only if it did not grow.
            let mut copy = entries.clone();
            let answer = write(&mut copy);
            if copy.len() > len_before {
                if len_before == 0 {
                    self.subjects.remove(subject);
                }
                return Err(StoreError::new("the memory store is full"));
            }
            *entries = copy;
            answer
        } else {
            write(entries)
        };
        let (len_after, until_after) = (entries.len(), entries.until());
        self.len = self.len - len_before + len_after;
        if len_before > 0 {
            self.by_expiry.remove(&(until_before, subject.into()));
        }
        if len_after > 0 {
            self.by_expiry.insert((until_after, subject.into()));
        } else {
            self.subjects.remove(subject);
        }
        Ok(answer)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_capacity(1_000_000)
    }
}

impl MemoryStore {
    /// An empty store holding at most `capacity` live entries in all (at
    /// least 1, as [`MemoryReplay::new`](crate::MemoryReplay::new)).
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            marked: SubjectFilter::new(),
            capacity: capacity.max(1),
            per_subject: DEFAULT_ENTRIES_PER_SUBJECT,
            changes: RevocationChanges::default(),
        }
    }

    /// How many entries one subject may hold (default 1000, at least 1) before
    /// they collapse into one cut-off that revokes every token of the subject
    /// issued until then.
    #[must_use]
    pub fn per_subject(mut self, entries: usize) -> Self {
        self.per_subject = entries.max(1);
        self
    }

    /// How many entries are held now (expired ones included until the next write).
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every write leaves the maps consistent before it can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write<T>(
        &self,
        subject: &str,
        write: impl FnOnce(&mut Subject, u64) -> Write<T>,
        collapsed: T,
    ) -> Result<T, StoreError> {
        let now = now_secs();
        let mut state = self.lock();
        // Marked before the write, so no check can miss what it adds.
        self.marked.mark(subject);
        let answer = state.write(subject, now, self.capacity, |entries| write(entries, now));
        if std::mem::take(&mut state.purged) {
            self.marked.rebuild(state.subjects.keys().map(|s| &**s));
        }
        drop(state);
        // Any write may revoke (a logout, a reused refresh token, a
        // subject's cut-off): its open streams look again.
        self.changes.announce(subject);
        let answer = answer?;
        Ok(match answer {
            Write::Done(answer) => answer,
            Write::Collapsed => {
                warn_collapsed();
                collapsed
            }
        })
    }
}

fn now_secs() -> u64 {
    NumericDate::now().as_secs_f64() as u64
}

impl RevocationStore for MemoryStore {
    fn is_revoked(&self, token: &TokenRecord<'_>) -> StoreFuture<bool> {
        if !self.marked.may_have(token.subject) {
            return StoreFuture::ready(Ok(false));
        }
        let state = self.lock();
        // The clock is read only for a subject with entries (most have none).
        let revoked = state
            .subjects
            .get(token.subject)
            .is_some_and(|entries| entries.is_revoked(token, now_secs()));
        StoreFuture::ready(Ok(revoked))
    }

    fn revoke(&self, token: &TokenRecord<'_>, horizon: NumericDate) -> StoreFuture<()> {
        let horizon = secs_ceil(horizon);
        let cap = self.per_subject;
        StoreFuture::ready(self.write(
            token.subject,
            |entries, now| entries.revoke(token, horizon, now, cap),
            (),
        ))
    }

    fn spend_refresh(
        &self,
        token: &TokenRecord<'_>,
        next: &str,
        horizon: NumericDate,
    ) -> StoreFuture<RefreshUse> {
        let Some(session) = token.rotation_session() else {
            return StoreFuture::ready(Err(StoreError::new(
                "a refresh token without jti cannot be spent",
            )));
        };
        let horizon = secs_ceil(horizon);
        let cap = self.per_subject;
        StoreFuture::ready(self.write(
            token.subject,
            |entries, now| entries.spend(token, session, next, horizon, now, cap),
            RefreshUse::FamilyRevoked,
        ))
    }

    fn record_session(
        &self,
        subject: &str,
        session: &SessionInfo,
        horizon: NumericDate,
    ) -> StoreFuture<()> {
        let horizon = secs_ceil(horizon);
        let cap = self.per_subject;
        StoreFuture::ready(self.write(
            subject,
            |entries, now| entries.record(session, horizon, now, cap),
            (),
        ))
    }

    fn session_refreshed(
        &self,
        subject: &str,
        id: &str,
        at: u64,
        horizon: NumericDate,
    ) -> StoreFuture<()> {
        if !self.marked.may_have(subject) {
            return StoreFuture::ready(Ok(()));
        }
        let horizon = secs_ceil(horizon);
        StoreFuture::ready(self.write(subject, |entries, _| entries.refreshed(id, at, horizon), ()))
    }

    fn changes(&self) -> Option<&RevocationChanges> {
        Some(&self.changes)
    }

    fn sessions(&self, subject: &str) -> StoreFuture<Vec<SessionInfo>> {
        if !self.marked.may_have(subject) {
            return StoreFuture::ready(Ok(Vec::new()));
        }
        let state = self.lock();
        let live = state
            .subjects
            .get(subject)
            .map(|entries| entries.live_sessions(now_secs()))
            .unwrap_or_default();
        StoreFuture::ready(Ok(live))
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    fn record<'a>(subject: &'a str, jti: &'a str, expires: NumericDate) -> TokenRecord<'a> {
        TokenRecord {
            subject,
            jti: Some(jti),
            session: None,
            issued_at: None,
            expires,
        }
    }

    fn answer<T>(future: StoreFuture<T>) -> Result<T, StoreError> {
        future
            .now_or_later()
            .unwrap_or_else(|_| panic!("memory answers at once"))
    }

    #[test]
    fn a_subject_without_entries_skips_the_lock_and_one_with_entries_does_not() {
        let store = MemoryStore::default();
        let later = NumericDate::now().plus(std::time::Duration::from_secs(60));
        assert!(!store.marked.may_have("alice"));
        answer(store.revoke(&record("alice", "t1", later), later)).unwrap();
        assert!(store.marked.may_have("alice"), "marked by its write");
        assert_eq!(
            answer(store.is_revoked(&record("alice", "t1", later))),
            Ok(true)
        );
        assert_eq!(
            answer(store.is_revoked(&record("alice", "t2", later))),
            Ok(false)
        );
    }

    #[test]
    fn expired_subjects_lose_their_mark_when_the_filter_is_rebuilt() {
        let store = MemoryStore::default();
        let soon = NumericDate::now().plus(std::time::Duration::from_millis(10));
        let later = NumericDate::now().plus(std::time::Duration::from_secs(60));
        answer(store.revoke(&record("bob", "t1", soon), soon)).unwrap();
        assert!(store.marked.may_have("bob"));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        // Any write purges what expired and rebuilds the filter.
        answer(store.revoke(&record("carol", "t1", later), later)).unwrap();
        assert!(store.marked.may_have("carol"));
        assert!(
            !store.marked.may_have("bob")
                || SubjectFilter::bit("bob") == SubjectFilter::bit("carol")
        );
    }
}
