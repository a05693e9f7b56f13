//! What keeps introspection from flooding the authorization server: requests
//! with the same token share one call (single flight), and calls are bounded
//! in flight and per second; past either bound a request is answered at once
//! (503), never queued.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::cache::TokenHash;

/// One call's outcome, shared by every request that waited for it.
type Flight<T> = Arc<OnceCell<T>>;

/// The calls under way, by token.
pub(super) struct Flights<T> {
    calls: Mutex<HashMap<TokenHash, Flight<T>>>,
}

impl<T: Clone> Flights<T> {
    pub(super) fn new() -> Self {
        Flights {
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// `call`'s outcome, made once however many requests with the same token
    /// ask at the same time. If the request making the call goes away, a
    /// waiting one makes it instead.
    pub(super) async fn share<F: Future<Output = T>>(
        &self,
        key: TokenHash,
        call: impl FnOnce() -> F,
    ) -> T {
        let seat = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            Seat {
                flights: self,
                key,
                flight: calls.entry(key).or_default().clone(),
            }
        };
        seat.flight.get_or_init(call).await.clone()
    }
}

/// A request's place in a flight: the last one out (or the first out after
/// the outcome is in) takes the flight off the board.
struct Seat<'a, T> {
    flights: &'a Flights<T>,
    key: TokenHash,
    flight: Flight<T>,
}

impl<T> Drop for Seat<'_, T> {
    fn drop(&mut self) {
        let mut calls = self.flights.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = calls.get(&self.key)
            && Arc::ptr_eq(current, &self.flight)
            // Counted under the lock every new seat is taken under: the
            // board's reference and ours are the last two.
            && (self.flight.initialized() || Arc::strong_count(&self.flight) <= 2)
        {
            calls.remove(&self.key);
        }
    }
}

/// How many calls may be under way, and how many may start each second.
pub(super) struct Budget {
    in_flight: AtomicUsize,
    max_in_flight: usize,
    per_second: u32,
    /// The current second's start and the calls started in it.
    window: Mutex<(Instant, u32)>,
}

/// A call's place in the budget, given back when the call ends.
pub(super) struct Ticket<'a>(&'a Budget);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Budget {
    pub(super) fn new(max_in_flight: usize, per_second: u32) -> Self {
        Budget {
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(1),
            per_second: per_second.max(1),
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// A ticket for one call, or `None` when the bounds are reached.
    pub(super) fn take(&self) -> Option<Ticket<'_>> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let ticket = Ticket(self);
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            *window = (now, 0);
        }
        if window.1 >= self.per_second {
            return None;
        }
        window.1 += 1;
        Some(ticket)
    }

    /// How long until a call may start again (for `Retry-After`).
    pub(super) fn retry_after(&self) -> Duration {
        let window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        Duration::from_secs(1).saturating_sub(window.0.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_calls_per_second_and_in_flight() {
        let budget = Budget::new(2, 3);
        let a = budget.take().unwrap();
        let b = budget.take().unwrap();
        assert!(budget.take().is_none(), "two in flight at most");
        drop(a);
        let c = budget.take().unwrap();
        drop((b, c));
        assert!(budget.take().is_none(), "three a second at most");
    }

    #[tokio::test]
    async fn concurrent_requests_with_one_token_share_one_call() {
        let flights = Arc::new(Flights::<u32>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, calls) = (flights.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .share([1; 32], || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        7
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            flights.calls.lock().unwrap().is_empty(),
            "nothing left behind"
        );
    }

    #[tokio::test]
    async fn a_flight_whose_requests_all_went_away_leaves_nothing_behind() {
        let flights = Flights::<u32>::new();
        let abandoned = flights.share([2; 32], std::future::pending);
        let _ = tokio::time::timeout(Duration::from_millis(10), abandoned).await;
        assert!(flights.calls.lock().unwrap().is_empty());
    }
}
