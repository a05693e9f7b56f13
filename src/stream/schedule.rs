//! One schedule per `AuthX` for every open stream: a heap of deadlines that
//! one task looks at four times a second, and an index by subject that a
//! store's announcement of a revocation reaches. Thousands of open streams
//! are thousands of small entries, not thousands of timers or store polls:
//! the store is asked about a stream only when its subject changed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Ended;
use crate::claims::{Claims, NumericDate};
use crate::store::{Change, Listener, RevocationStore, TokenRecord};

/// How often the schedule looks at the deadlines: a stream ends at most this
/// long after its credential.
const TICK: Duration = Duration::from_millis(250);

/// Subjects announced and not yet looked at, at most; past it the next look
/// covers every stream (memory stays bounded under a flood of logouts).
const PENDING_SUBJECTS: usize = 4096;

/// How long an announcement is remembered for streams that open after it: a
/// guard asked the store, the revocation was announced, then the stream was
/// registered; the stream is looked at once.
const RECENT: Duration = Duration::from_secs(1);

/// Announcements remembered at most (past it, every stream that opens
/// within `RECENT` is looked at once).
const RECENT_SUBJECTS: usize = 1024;

/// What a stream's credential is, as the store and the deadline need it.
#[derive(Clone, Debug)]
pub(crate) struct Credential {
    pub(crate) iss: Option<String>,
    pub(crate) sub: String,
    pub(crate) jti: Option<String>,
    pub(crate) fam: Option<String>,
    pub(crate) iat: Option<NumericDate>,
    pub(crate) exp: NumericDate,
}

impl Credential {
    pub(crate) fn of<E>(claims: &Claims<E>) -> Credential {
        Credential {
            iss: claims.iss.clone(),
            sub: claims.sub.clone(),
            jti: claims.jti.clone(),
            fam: claims.fam.clone(),
            iat: claims.iat,
            exp: claims.exp,
        }
    }

    fn record(&self) -> TokenRecord<'_> {
        TokenRecord {
            subject: &self.sub,
            jti: self.jti.as_deref(),
            session: self.fam.as_deref(),
            issued_at: self.iat,
            expires: self.exp,
        }
    }
}

/// One open stream: its credential, whether (and why) it ended, who waits.
pub(crate) struct Slot {
    id: u64,
    schedule: Weak<Schedule>,
    ended: AtomicU8,
    wakers: Mutex<Vec<Waker>>,
    credential: Mutex<(Credential, u64)>,
}

impl Slot {
    /// Why the stream ended; if it has not, `waker` is woken when it does.
    pub(crate) fn ended(&self, waker: &Waker) -> Option<Ended> {
        if let Some(ended) = self.has_ended() {
            return Some(ended);
        }
        {
            let mut wakers = lock(&self.wakers);
            if !wakers.iter().any(|w| w.will_wake(waker)) {
                wakers.push(waker.clone());
            }
        }
        // Ended between the two looks: the schedule may have found no waker.
        self.has_ended()
    }

    pub(crate) fn has_ended(&self) -> Option<Ended> {
        Ended::of(self.ended.load(Ordering::Acquire))
    }

    /// The credential the stream runs on now.
    pub(crate) fn credential(&self) -> Credential {
        lock(&self.credential).0.clone()
    }

    /// Ends the stream (the first reason stays).
    pub(crate) fn end(&self, why: Ended) {
        if self
            .ended
            .compare_exchange(0, why.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        #[cfg(feature = "metrics")]
        metrics::counter!(crate::metrics::STREAMS_ENDED, "reason" => why.as_str()).increment(1);
        tracing::debug!(
            reason = why.as_str(),
            "tower-authx: a stream ended with its credential"
        );
        for waker in lock(&self.wakers).drain(..) {
            waker.wake();
        }
    }

    /// Goes on with `credential` (a renewal that passed every check).
    pub(crate) fn renew(&self, credential: Credential) {
        let Some(schedule) = self.schedule.upgrade() else {
            return;
        };
        let deadline = schedule.deadline(&credential);
        *lock(&self.credential) = (credential, deadline);
        lock(&schedule.state)
            .deadlines
            .push(Reverse((deadline, self.id)));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(schedule) = self.schedule.upgrade() else {
            return;
        };
        let subject = &self
            .credential
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .sub;
        let mut state = lock(&schedule.state);
        state.live.remove(&self.id);
        if let Some(ids) = state.by_subject.get_mut(subject.as_str()) {
            ids.remove(&self.id);
            if ids.is_empty() {
                state.by_subject.remove(subject.as_str());
            }
        }
        #[cfg(feature = "metrics")]
        metrics::gauge!(crate::metrics::STREAMS_OPEN).decrement(1.0);
    }
}

#[derive(Default)]
struct State {
    /// (deadline in ms since the epoch, slot id); stale entries (a slot gone
    /// or renewed) are skipped when due and swept when they outnumber the
    /// live ones.
    deadlines: BinaryHeap<Reverse<(u64, u64)>>,
    live: HashMap<u64, Weak<Slot>>,
    by_subject: HashMap<String, HashSet<u64>>,
    pending: HashSet<String>,
    pending_all: bool,
    /// Subjects announced within `RECENT`, oldest first.
    recent: std::collections::VecDeque<(Instant, String)>,
    /// When everything was last announced (or `recent` overflowed).
    recent_all: Option<Instant>,
}

impl State {
    fn remember(&mut self, change: Change<'_>) {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RECENT)
        {
            self.recent.pop_front();
        }
        match change {
            Change::Subject(subject) if self.recent.len() < RECENT_SUBJECTS => {
                self.recent.push_back((now, subject.to_owned()));
            }
            _ => self.recent_all = Some(now),
        }
    }

    /// Whether `subject` may have been revoked just before its stream opened.
    fn recently_announced(&self, subject: &str) -> bool {
        self.recent_all.is_some_and(|at| at.elapsed() <= RECENT)
            || self
                .recent
                .iter()
                .any(|(at, s)| s == subject && at.elapsed() <= RECENT)
    }
}

/// Every open stream of one `AuthX`.
pub(crate) struct Schedule {
    state: Mutex<State>,
    store: Arc<dyn RevocationStore>,
    /// Each issuer's leeway (`None`: our own tokens).
    leeway: HashMap<Option<String>, Duration>,
    /// Wakes the task when a change is announced (apart, so the task holds
    /// no strong reference while it waits).
    wake: Arc<Notify>,
    running: AtomicBool,
    next_id: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn millis(date: NumericDate) -> u64 {
    (date.as_secs_f64() * 1000.0) as u64
}

impl Schedule {
    pub(crate) fn new(
        store: Arc<dyn RevocationStore>,
        leeway: HashMap<Option<String>, Duration>,
    ) -> Schedule {
        Schedule {
            state: Mutex::default(),
            store,
            leeway,
            wake: Arc::default(),
            running: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
        }
    }

    fn deadline(&self, credential: &Credential) -> u64 {
        let leeway = self
            .leeway
            .get(&credential.iss)
            .or_else(|| self.leeway.get(&None))
            .copied()
            .unwrap_or_default();
        millis(credential.exp) + leeway.as_millis() as u64
    }

    /// A slot for a stream opened with `credential`; starts the schedule's
    /// task the first time (inside the runtime that serves the streams).
    pub(crate) fn watch(self: &Arc<Self>, credential: Credential) -> Arc<Slot> {
        let deadline = self.deadline(&credential);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let subject = credential.sub.clone();
        let slot = Arc::new(Slot {
            id,
            schedule: Arc::downgrade(self),
            ended: AtomicU8::new(0),
            wakers: Mutex::default(),
            credential: Mutex::new((credential, deadline)),
        });
        #[cfg(feature = "metrics")]
        metrics::gauge!(crate::metrics::STREAMS_OPEN).increment(1.0);
        if deadline <= millis(NumericDate::now()) {
            slot.end(Ended::Expired);
        }
        {
            let mut state = lock(&self.state);
            state.live.insert(id, Arc::downgrade(&slot));
            // Announced after its guard asked the store: looked at once.
            let look = state.recently_announced(&subject);
            if look {
                if state.pending.len() >= PENDING_SUBJECTS {
                    state.pending_all = true;
                } else {
                    state.pending.insert(subject.clone());
                }
            }
            state.by_subject.entry(subject).or_default().insert(id);
            state.deadlines.push(Reverse((deadline, id)));
            if state.deadlines.len() > 2 * state.live.len() + 1024 {
                sweep(&mut state);
            }
            if look {
                self.wake.notify_one();
            }
        }
        self.start();
        if !self.running.load(Ordering::Acquire) {
            tracing::warn!(
                "tower-authx: a stream opened outside a tokio runtime: it will not end with \
                 its credential (EndWithCredentialLayer needs tokio)"
            );
        }
        slot
    }

    /// Listens to the store's announcements and starts the task, once; from
    /// within a runtime (the layer's constructor when it runs in one, else
    /// the first stream): from then on announcements are remembered for
    /// streams that open after them.
    pub(crate) fn start(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err()
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        if let Some(changes) = self.store.changes() {
            let listener: Weak<dyn Listener> = Arc::downgrade(self) as Weak<Schedule>;
            changes.listen(listener);
        } else {
            tracing::warn!(
                "tower-authx: this revocation store announces no revocations: \
                 open streams end at their credential's expiry only"
            );
        }
        let schedule = Arc::downgrade(self);
        let wake = self.wake.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::Instant::now() + TICK;
            loop {
                let _ = tokio::time::timeout_at(tick, wake.notified()).await;
                // The AuthX is gone: so is every stream it could end.
                let Some(schedule) = schedule.upgrade() else {
                    return;
                };
                if tokio::time::Instant::now() >= tick {
                    schedule.end_due();
                    tick = tokio::time::Instant::now() + TICK;
                }
                schedule.look_again().await;
            }
        });
    }

    /// Ends every stream whose deadline has passed.
    fn end_due(&self) {
        let now = millis(NumericDate::now());
        let mut due = Vec::new();
        {
            let mut state = lock(&self.state);
            while let Some(Reverse((at, _))) = state.deadlines.peek()
                && *at <= now
            {
                if let Some(Reverse((at, id))) = state.deadlines.pop()
                    && let Some(slot) = state.live.get(&id).and_then(Weak::upgrade)
                {
                    due.push((at, slot));
                }
            }
        }
        for (at, slot) in due {
            // A renewed stream has a later deadline of its own in the heap.
            if lock(&slot.credential).1 <= at {
                slot.end(Ended::Expired);
            }
        }
    }

    /// Asks the store about the streams of every subject announced since
    /// the last look.
    async fn look_again(&self) {
        let slots: Vec<Arc<Slot>> = {
            let mut state = lock(&self.state);
            let all = std::mem::take(&mut state.pending_all);
            let subjects = std::mem::take(&mut state.pending);
            if all {
                state.live.values().filter_map(Weak::upgrade).collect()
            } else {
                subjects
                    .iter()
                    .filter_map(|s| state.by_subject.get(s.as_str()))
                    .flatten()
                    .filter_map(|id| state.live.get(id).and_then(Weak::upgrade))
                    .collect()
            }
        };
        for slot in slots {
            if slot.has_ended().is_some() {
                continue;
            }
            let credential = slot.credential();
            match self.store.is_revoked(&credential.record()).await {
                Ok(true) => slot.end(Ended::Revoked),
                Ok(false) => {}
                // Admitted streams go on while the store cannot answer; the
                // feed announces everything again once it is back.
                Err(error) => {
                    tracing::debug!(%error, "tower-authx: an open stream's revocation check failed")
                }
            }
        }
    }
}

impl Listener for Schedule {
    fn changed(&self, change: Change<'_>) {
        {
            let mut state = lock(&self.state);
            state.remember(change);
            match change {
                Change::Subject(subject) if !state.pending_all => {
                    // Only subjects with open streams are worth a look.
                    if state.by_subject.contains_key(subject) {
                        if state.pending.len() >= PENDING_SUBJECTS {
                            state.pending.clear();
                            state.pending_all = true;
                        } else {
                            state.pending.insert(subject.to_owned());
                        }
                    }
                }
                Change::Subject(_) => {}
                Change::Everything => {
                    state.pending.clear();
                    state.pending_all = true;
                }
            }
        }
        self.wake.notify_one();
    }
}

/// Drops the heap's entries of slots that are gone.
fn sweep(state: &mut State) {
    let live = &state.live;
    state
        .deadlines
        .retain(|Reverse((_, id))| live.contains_key(id));
}
