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
//! Staleness: a logout on one instance reaches the others one pub/sub
//! delivery later while the feed is up; if the feed's connection dies
//! silently, after at most the heartbeat plus its timeout (2 s); and never
//! later than `max_age` (10 s by default).

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use futures_core::Stream;

use super::{parse_cutoff, parse_session, parse_until};
use crate::store::subject::Subject;

/// How long the feed may stay silent before it is pinged, and how long the
/// ping may take.
const HEARTBEAT: Duration = Duration::from_secs(1);

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

    /// Forgets everything: the feed went up (nothing kept may be current)
    /// or down (nothing kept can be kept current).
    fn reset(&self, live: bool) {
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

/// Keeps `view` current from `channel` on any of `nodes` (a cluster's
/// messages reach every node), until the view is dropped. Messages name the
/// changed key: `key_prefix` and the subject.
pub(super) fn spawn_feed(
    view: Weak<LocalView>,
    nodes: Vec<String>,
    channel: String,
    key_prefix: String,
) {
    tokio::spawn(async move {
        let mut failures = 0u32;
        for url in nodes.iter().cycle() {
            match subscribe(url, &channel).await {
                Ok(subscribed) => {
                    failures = 0;
                    let Some(strong) = view.upgrade() else { return };
                    strong.reset(true);
                    drop(strong);
                    tracing::info!(
                        "tower-authx: revocation feed up; answering from the local view"
                    );
                    let gone = follow(subscribed, &view, &key_prefix).await;
                    if let Some(strong) = view.upgrade() {
                        strong.reset(false);
                    }
                    if gone {
                        return;
                    }
                    tracing::warn!("tower-authx: revocation feed down; asking Redis directly");
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(error = %e, "tower-authx: revocation feed cannot subscribe; asking Redis directly");
                    }
                }
            }
            if view.strong_count() == 0 {
                return;
            }
            let backoff = Duration::from_millis(50 * u64::from(failures.min(20)));
            tokio::time::sleep(backoff).await;
        }
    });
}

async fn subscribe(
    url: &str,
    channel: &str,
) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let client = redis::Client::open(url)?;
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub.split())
    };
    match tokio::time::timeout(HEARTBEAT, connect).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from(std::io::Error::from(
            std::io::ErrorKind::TimedOut,
        ))),
    }
}

/// Applies the feed's messages until it ends or falls silent past its
/// heartbeat; `true` when the view itself is gone.
async fn follow(
    (mut sink, mut stream): (redis::aio::PubSubSink, redis::aio::PubSubStream),
    view: &Weak<LocalView>,
    key_prefix: &str,
) -> bool {
    loop {
        let next = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx));
        match tokio::time::timeout(HEARTBEAT, next).await {
            Ok(Some(message)) => {
                let Some(view) = view.upgrade() else {
                    return true;
                };
                match message.get_payload::<String>() {
                    Ok(key) => match key.strip_prefix(key_prefix) {
                        Some(subject) => view.invalidate(subject),
                        None => return false,
                    },
                    // A message we cannot read may have named anything.
                    Err(_) => return false,
                }
            }
            Ok(None) => return false,
            Err(_) => {
                if view.strong_count() == 0 {
                    return true;
                }
                let pong = tokio::time::timeout(HEARTBEAT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return false;
                }
            }
        }
    }
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
