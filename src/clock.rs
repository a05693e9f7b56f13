//! The clock every check reads when `test-util` is on: the wall clock,
//! moved by tokio's paused time (`testing::skew` says how far). In a test run with `#[tokio::test(start_paused =
//! true)]` (tokio's own `test-util` feature), `tokio::time::advance` moves
//! what the guards, the verified-token cache and the mock issuer call now,
//! so expiry and freshness windows are tested without sleeping. Each runtime
//! has its own paused clock, so tests running side by side do not move each
//! other's time; without a paused runtime it is the wall clock.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

/// The wall clock and the monotonic one, read together once.
static ORIGIN: OnceLock<(SystemTime, Instant)> = OnceLock::new();

/// The time now, by the current runtime's (possibly paused) clock.
pub(crate) fn now() -> SystemTime {
    let (wall, at) = *ORIGIN.get_or_init(|| (SystemTime::now(), Instant::now()));
    let tick = tokio::time::Instant::now().into_std();
    match tick.checked_duration_since(at) {
        Some(ahead) => wall + ahead,
        // A paused runtime made before the origin was read.
        None => wall - at.duration_since(tick),
    }
}

/// How far the test clock is from the wall clock (zero unless a paused
/// runtime's clock was advanced): for a test to say what it moved.
pub fn skew() -> std::time::Duration {
    now().duration_since(SystemTime::now()).unwrap_or_default()
}
