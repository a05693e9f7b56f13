//! The local view: revocation checks answered from this process's memory,
//! with Redis the source of truth.
//!
//! A subject's entries are read from Redis once (`HGETALL` on its hash) and
//! kept here. Every write script publishes the key it changed on one channel;
//! every instance subscribes (the feed) and drops what it kept of that key, so
//! the next check reads Redis again. While the feed is down (not yet
//! connected, disconnected, or silent past its heartbeat) the view is empty
//! and every check goes to Redis: nothing is ever answered from a view that
//! may have missed a change. Kept entries are also read again after
//! `max_age`, a bound that holds even if a message were lost.
//!
//! Staleness: see the feed (`feed.rs`), and never later than `max_age`
//! (10 s by default).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::scripts::{parse_cutoff, parse_session, parse_until};
use crate::store::subject::Subject;

/// What this process keeps of the revocation store.
pub(super) struct LocalView {
    /// Whether the feed is subscribed: only then is anything kept or answered.
    live: AtomicBool,
    /// Counts invalidations, so a read that raced one is not kept.
    epoch: AtomicU64,
    /// The epoch when a mark of an invalidation was last dropped for room.
    marks_dropped_at: AtomicU64,
    subjects: RwLock<HashMap<String, Kept>>,
    capacity: usize,
    max_age: Duration,
}

enum Kept {
    Entries(Arc<Subject>, Instant),
    /// Changed at this epoch: a read that started before must not be kept.
    Invalidated(u64),
}

impl LocalView {
    pub(super) fn new(capacity: usize, max_age: Duration) -> LocalView {
        LocalView {
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            marks_dropped_at: AtomicU64::new(0),
            subjects: RwLock::default(),
            capacity: capacity.max(1),
            max_age,
        }
    }

    /// Whether the feed is up (the view answers).
    pub(super) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// The kept entries of `key`, if the view may answer for it.
    pub(super) fn get(&self, key: &str) -> Option<Arc<Subject>> {
        if !self.is_live() {
            return None;
        }
        match self.read().get(key) {
            Some(Kept::Entries(subject, at)) if at.elapsed() < self.max_age => {
                Some(subject.clone())
            }
            _ => None,
        }
    }

    /// Where a read of Redis starts, to be kept by `keep` if nothing changed
    /// meanwhile; `None` while the feed is down.
    pub(super) fn start_read(&self) -> Option<u64> {
        self.is_live().then(|| self.epoch.load(Ordering::Acquire))
    }

    /// Keeps what a read that started at `started` found for `key`, unless
    /// the key changed (or the feed went down) since.
    pub(super) fn keep(&self, key: &str, subject: Subject, started: u64) {
        let mut subjects = self.write();
        let raced = match subjects.get(key) {
            Some(Kept::Invalidated(at)) => *at > started,
            _ => false,
        };
        // Invalidations whose marks were dropped for room may have been for
        // this key; a reset bumps the epoch too.
        if raced || self.marks_dropped_at.load(Ordering::Acquire) > started || !self.is_live() {
            return;
        }
        if !subjects.contains_key(key) && subjects.len() >= self.capacity {
            // Full: make room by forgetting some other subject (read again
            // from Redis when next asked); nothing is answered wrongly.
            drop_one(&mut subjects, &self.marks_dropped_at, &self.epoch);
        }
        subjects.insert(
            key.to_owned(),
            Kept::Entries(Arc::new(subject), Instant::now()),
        );
    }

    /// `key` changed in Redis.
    pub(super) fn invalidate(&self, key: &str) {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let mut subjects = self.write();
        if !subjects.contains_key(key) && subjects.len() >= self.capacity {
            drop_one(&mut subjects, &self.marks_dropped_at, &self.epoch);
        }
        subjects.insert(key.to_owned(), Kept::Invalidated(epoch));
    }

    /// Forgets every kept entry and every read under way, staying live
    /// (Redis's policy was found unsafe: what was read may miss an eviction).
    pub(super) fn forget(&self) {
        self.reset(self.is_live());
    }

    /// Forgets everything: the feed went up (nothing kept may be current)
    /// or down (nothing kept can be kept current).
    pub(super) fn reset(&self, live: bool) {
        let mut subjects = self.write();
        self.live.store(false, Ordering::Release);
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        self.marks_dropped_at.store(epoch, Ordering::Release);
        subjects.clear();
        self.live.store(live, Ordering::Release);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Kept>> {
        self.subjects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Kept>> {
        self.subjects.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn drop_one(subjects: &mut HashMap<String, Kept>, marks_dropped_at: &AtomicU64, epoch: &AtomicU64) {
    if let Some(victim) = subjects.keys().next().cloned()
        && let Some(Kept::Invalidated(_)) = subjects.remove(&victim)
    {
        marks_dropped_at.store(epoch.load(Ordering::Acquire), Ordering::Release);
    }
}

/// A subject's entries from its Redis hash, with its listed sessions.
pub(super) fn listing_of(fields: HashMap<String, String>) -> Subject {
    let listed: Vec<_> = fields
        .iter()
        .filter(|(field, _)| field.starts_with("m:"))
        .filter_map(|(_, value)| super::scripts::parse_listed(value))
        .collect();
    subject_of(fields).listing(listed)
}

/// A subject's entries from its Redis hash.
pub(super) fn subject_of(fields: HashMap<String, String>) -> Subject {
    let mut tokens = Vec::new();
    let mut sessions = Vec::new();
    let mut cutoff = None;
    for (field, value) in fields {
        if let Some(jti) = field.strip_prefix("t:") {
            tokens.extend(parse_until(&value).map(|until| (jti.into(), until)));
        } else if let Some(session) = field.strip_prefix("s:") {
            sessions.extend(parse_session(&value).map(|s| (session.into(), s)));
        } else if field == "cut" {
            cutoff = parse_cutoff(&value);
        }
    }
    Subject::from_entries(tokens, sessions, cutoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_view(capacity: usize) -> LocalView {
        let view = LocalView::new(capacity, Duration::from_secs(10));
        view.reset(true);
        view
    }

    #[test]
    fn nothing_is_kept_or_answered_while_the_feed_is_down() {
        let view = LocalView::new(10, Duration::from_secs(10));
        assert_eq!(view.start_read(), None);
        view.keep("a", Subject::default(), 0);
        assert!(view.get("a").is_none());
        view.reset(true);
        let started = view.start_read().unwrap();
        view.keep("a", Subject::default(), started);
        assert!(view.get("a").is_some());
        view.reset(false);
        assert!(
            view.get("a").is_none(),
            "a feed that went down empties the view"
        );
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let view = live_view(10);
        let started = view.start_read().unwrap();
        view.invalidate("a");
        view.keep("a", Subject::default(), started);
        assert!(view.get("a").is_none());
        // Another key's change does not matter.
        let started = view.start_read().unwrap();
        view.invalidate("b");
        view.keep("a", Subject::default(), started);
        assert!(view.get("a").is_some());
        view.invalidate("a");
        assert!(view.get("a").is_none());
    }

    #[test]
    fn a_full_view_forgets_others_and_never_keeps_what_a_dropped_mark_covered() {
        let view = live_view(2);
        for key in ["a", "b", "c"] {
            let started = view.start_read().unwrap();
            view.keep(key, Subject::default(), started);
        }
        assert!(view.read().len() <= 2);
        // A read that started before marks were dropped for room is not kept.
        let started = view.start_read().unwrap();
        view.invalidate("x");
        view.invalidate("y");
        view.invalidate("z");
        view.keep("x2", Subject::default(), started);
        assert!(view.get("x2").is_none());
    }

    #[test]
    fn entries_are_read_again_after_max_age() {
        let view = LocalView::new(10, Duration::from_millis(20));
        view.reset(true);
        let started = view.start_read().unwrap();
        view.keep("a", Subject::default(), started);
        assert!(view.get("a").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(view.get("a").is_none());
    }
}
