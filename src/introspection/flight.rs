//! What keeps introspection from flooding the authorization server: requests
//! with the same token share one call (single flight), and calls are bounded
//! in flight and per second, in all and per client address (so one client's
//! flood of made-up tokens takes its share, never everyone's); past a bound a
//! request is answered at once (503), never queued.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::cache::TokenHash;

/// One call's outcome, shared by every request that waited for it.
type Flight<T> = Arc<OnceCell<T>>;

/// The calls under way, by token.
pub(crate) struct Flights<T> {
    calls: Mutex<HashMap<TokenHash, Flight<T>>>,
}

impl<T: Clone> Flights<T> {
    pub(crate) fn new() -> Self {
        Flights {
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// `call`'s outcome, made once however many requests with the same token
    /// ask at the same time. If the request making the call goes away, a
    /// waiting one makes it instead.
    pub(crate) async fn share<F: Future<Output = T>>(
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

/// How many calls may be under way, and how many may start each second,
/// in all and per client address.
pub(super) struct Budget {
    in_flight: AtomicUsize,
    max_in_flight: usize,
    per_second: u32,
    /// The current second's start and the calls started in it.
    window: Mutex<Window>,
}

/// The current second: when it started, the calls started in it, and each
/// client's calls started in it and under way.
struct Window {
    started_at: Instant,
    started: u32,
    clients: HashMap<IpAddr, Share>,
}

/// One client's use of the budget.
#[derive(Clone, Copy, Default)]
struct Share {
    started: u32,
    in_flight: usize,
}

/// A client takes at most this part of either bound (at least one call).
const CLIENT_PART: usize = 8;

/// Clients followed at most; past it, the newcomers share one place (a
/// flood from many addresses at once is bounded by the budget in all).
const MAX_CLIENTS: usize = 4096;

/// A call's place in the budget, given back when the call ends.
pub(super) struct Ticket<'a> {
    budget: &'a Budget,
    client: Option<IpAddr>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.budget.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(client) = self.client {
            let mut window = self.budget.window();
            if let Some(share) = window.clients.get_mut(&client) {
                share.in_flight = share.in_flight.saturating_sub(1);
            }
        }
    }
}

impl Budget {
    pub(super) fn new(max_in_flight: usize, per_second: u32) -> Self {
        Budget {
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(1),
            per_second: per_second.max(1),
            window: Mutex::new(Window {
                started_at: Instant::now(),
                started: 0,
                clients: HashMap::new(),
            }),
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ticket for one call from `client` (its address, when known), or
    /// `None` when a bound is reached: the budget in all, or the client's
    /// share of it. A request whose address is not known (no
    /// `std::net::SocketAddr` in its extensions, `AuthX::verify`) counts
    /// against the budget in all only.
    pub(super) fn take(&self, client: Option<IpAddr>) -> Option<Ticket<'_>> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let client = self.start(client);
        if client.is_none() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        client.map(|client| Ticket {
            budget: self,
            client,
        })
    }

    /// Counts a call started for `client` in this second, if its share and
    /// the budget allow: `Some` with the client counted (or `None` inside,
    /// for a request of no known address).
    fn start(&self, client: Option<IpAddr>) -> Option<Option<IpAddr>> {
        let mut window = self.window();
        let now = Instant::now();
        if now.duration_since(window.started_at) >= Duration::from_secs(1) {
            window.started_at = now;
            window.started = 0;
            window.clients.retain(|_, share| {
                share.started = 0;
                share.in_flight > 0
            });
        }
        if window.started >= self.per_second {
            return None;
        }
        let client = client.map(|client| {
            if window.clients.len() >= MAX_CLIENTS && !window.clients.contains_key(&client) {
                IpAddr::from([0u8; 16])
            } else {
                client
            }
        });
        if let Some(client) = client {
            let per_second = (self.per_second as usize / CLIENT_PART).max(1) as u32;
            let in_flight = (self.max_in_flight / CLIENT_PART).max(1);
            let share = window.clients.entry(client).or_default();
            if share.started >= per_second || share.in_flight >= in_flight {
                return None;
            }
            share.started += 1;
            share.in_flight += 1;
        }
        window.started += 1;
        Some(client)
    }

    /// How long until a call may start again (for `Retry-After`).
    pub(super) fn retry_after(&self) -> Duration {
        Duration::from_secs(1).saturating_sub(self.window().started_at.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_calls_per_second_and_in_flight() {
        let budget = Budget::new(2, 3);
        let a = budget.take(None).unwrap();
        let b = budget.take(None).unwrap();
        assert!(budget.take(None).is_none(), "two in flight at most");
        drop(a);
        let c = budget.take(None).unwrap();
        drop((b, c));
        assert!(budget.take(None).is_none(), "three a second at most");
    }

    #[test]
    fn one_client_takes_its_share_and_leaves_the_rest_to_others() {
        let budget = Budget::new(32, 100);
        let flooder: IpAddr = "203.0.113.7".parse().unwrap();
        let held: Vec<_> = (0..4)
            .map(|_| budget.take(Some(flooder)).unwrap())
            .collect();
        assert!(budget.take(Some(flooder)).is_none(), "4 in flight a client");
        drop(held);
        let mut started = 4;
        while budget.take(Some(flooder)).is_some() {
            started += 1;
        }
        assert_eq!(started, 12, "12 a second a client");
        // Everyone else still gets calls.
        let other: IpAddr = "198.51.100.9".parse().unwrap();
        assert!(budget.take(Some(other)).is_some());
        assert!(budget.take(None).is_some());
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
