//! One schedule per layer for every open stream's end: a heap of deadlines
//! and one task that wakes the streams whose credential has ended, four
//! times a second. Thousands of open streams are thousands of heap entries,
//! not thousands of timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;
use std::time::Duration;

use crate::claims::NumericDate;

/// How often the schedule looks: a stream ends at most this long after its
/// credential.
const TICK: Duration = Duration::from_millis(250);

/// One stream's end: set by the schedule, read by its body.
#[derive(Default)]
pub(super) struct Slot {
    ended: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    /// Whether the credential has ended; if not, `waker` is woken when it does.
    pub(super) fn ended(&self, waker: &Waker) -> bool {
        if self.ended.load(Ordering::Acquire) {
            return true;
        }
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker.clone());
        // Ended between the two looks: the schedule may have found no waker.
        self.ended.load(Ordering::Acquire)
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        if let Some(waker) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            waker.wake();
        }
    }
}

/// A deadline in milliseconds since the epoch, and its stream (gone when
/// the stream was dropped first).
struct Entry(u64, Weak<Slot>);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

#[derive(Default)]
pub(super) struct Schedule {
    deadlines: Mutex<BinaryHeap<Reverse<Entry>>>,
    running: AtomicBool,
}

fn millis(date: NumericDate) -> u64 {
    (date.as_secs_f64() * 1000.0) as u64
}

impl Schedule {
    /// A slot that ends at `deadline`; starts the schedule's task the first
    /// time (inside the runtime that polls the streams).
    pub(super) fn add(self: &Arc<Self>, deadline: NumericDate) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        if deadline.as_secs_f64() <= NumericDate::now().as_secs_f64() {
            slot.end();
            return slot;
        }
        self.deadlines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Reverse(Entry(millis(deadline), Arc::downgrade(&slot))));
        if !self.running.swap(true, Ordering::AcqRel) {
            let schedule = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    // The layer is gone: so is every stream it could end.
                    let Some(schedule) = schedule.upgrade() else {
                        return;
                    };
                    schedule.end_due();
                }
            });
        }
        slot
    }

    /// Ends every slot whose deadline has passed; forgets dropped streams.
    fn end_due(&self) {
        let now = millis(NumericDate::now());
        let mut due = Vec::new();
        {
            let mut deadlines = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
            while let Some(Reverse(Entry(at, _))) = deadlines.peek()
                && *at <= now
            {
                if let Some(Reverse(Entry(_, slot))) = deadlines.pop() {
                    due.push(slot);
                }
            }
        }
        for slot in due.iter().filter_map(Weak::upgrade) {
            slot.end();
        }
    }
}
