//! What the store knows of Redis's memory: whether every primary's
//! `maxmemory-policy` is `noeviction` (an evicted logout is a token that works
//! again), and whether each has room to spare for revocations. Asked again
//! every second at most (one request asks, the others go on with the last
//! answer), so a policy changed at run time, or a failover to a primary set
//! up otherwise, is seen within about two seconds.
//!
//! Two things cannot wait for the next look. A burst of DPoP proofs could
//! cross the proofs' line between two looks: near it, each proof's own
//! script reads the node's memory before it writes. And the local view must
//! not keep trusting what it read while the policy was unknown: it answers
//! only while the last look is fresh and safe, and a look that finds an
//! unsafe policy empties it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{OnceLock, Weak};
use std::time::Duration;

use redis::Value;

use super::link::{Link, info_texts};
use super::store_error;
use super::view::LocalView;
use crate::claims::NumericDate;
use crate::store::StoreError;

/// How long an answer holds before Redis is asked again.
const RECHECK: Duration = Duration::from_secs(1);

/// How long requests go on with the last answer while one of them asks.
const STALE_AT_MOST: Duration = Duration::from_secs(2);

/// How long the last answer holds while Redis cannot be asked at all (a
/// primary down during a failover): as long as a local view may keep an
/// entry, then every command fails closed.
const UNREACHABLE_AT_MOST: Duration = Duration::from_secs(10);

/// DPoP proofs stop being written above this share of `maxmemory`, so that
/// a flood of proofs cannot leave logouts without room.
pub(super) const PROOFS_UP_TO: f64 = 0.9;

/// Why a DPoP proof is refused near `maxmemory` (503).
pub(super) const NEAR_MAXMEMORY: &str =
    "Redis is near its maxmemory: DPoP proofs wait, so that logouts keep their room";

/// How far below the proofs' line a node must be for its proofs to skip
/// reading its memory in the write: more than one node can take in proofs
/// before the next look (one node runs about 100,000 proof scripts a second
/// here, under 200 bytes each: 20 MB/s, over the `STALE_AT_MOST` an answer
/// may be old), with a wide margin for faster machines.
const FAR_FROM_THE_LINE: f64 = 256.0 * 1024.0 * 1024.0;

/// The last answer, as atomics: every command looks at it.
#[derive(Default)]
pub(super) struct PolicyWatch {
    /// When Redis last answered (ms since the epoch; 0: never).
    checked_ms: AtomicU64,
    /// Its answer: `noeviction` on every primary.
    safe: AtomicBool,
    /// Its answer: every primary below `PROOFS_UP_TO` of its `maxmemory`.
    room_for_proofs: AtomicBool,
    /// Its answer: every primary `FAR_FROM_THE_LINE` below it (or unbounded).
    far_from_the_line: AtomicBool,
    /// The local view, emptied when a look finds an unsafe policy.
    view: OnceLock<Weak<LocalView>>,
    /// A request is asking now.
    asking: AtomicBool,
    /// When an unsafe policy was last logged (s; at most every 10 s).
    logged_at: AtomicU64,
}

/// What a command needs of Redis's memory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// A revocation or a check: the policy must be `noeviction`.
    Safe,
    /// A DPoP proof: that, and room left for revocations.
    RoomForProofs,
}

impl PolicyWatch {
    /// `Ok` when Redis is known to be fit for `need`, asking it when the
    /// last answer is too old. One request asks; the others go on with the
    /// last answer while it is at most `STALE_AT_MOST` old. When Redis cannot
    /// be asked (a primary down in a failover) the last answer holds up to
    /// `UNREACHABLE_AT_MOST`, and then every command fails closed.
    pub(super) async fn ensure(&self, link: &Link, need: Need) -> Result<(), StoreError> {
        let age = self.age();
        if age >= RECHECK {
            let asker = !self.asking.swap(true, Ordering::AcqRel);
            if asker || age >= STALE_AT_MOST {
                let asked = self.ask(link).await;
                if asker {
                    self.asking.store(false, Ordering::Release);
                }
                if let Err(e) = asked
                    && self.age() >= UNREACHABLE_AT_MOST
                {
                    return Err(e);
                }
            }
        }
        self.verdict(need)
    }

    /// Asks Redis (every primary of a cluster) now and keeps its answer; an
    /// error only when Redis could not be asked.
    pub(super) async fn ask(&self, link: &Link) -> Result<(), StoreError> {
        let mut conn = link.conn().await.map_err(store_error)?;
        let info: Value = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        let mut nodes = Vec::new();
        for text in info_texts(&info) {
            collect_from_text(&text, &mut nodes);
        }
        let unsafe_policy = match nodes.iter().find(|n| n.policy != "noeviction") {
            Some(node) => Some(node.policy.clone()),
            None if nodes.is_empty() => Some("unknown".to_owned()),
            None => None,
        };
        let below = |margin: f64| {
            nodes.iter().all(|node| {
                node.max == 0 || (node.used as f64) + margin < PROOFS_UP_TO * node.max as f64
            })
        };
        self.room_for_proofs.store(below(0.0), Ordering::Relaxed);
        self.far_from_the_line
            .store(below(FAR_FROM_THE_LINE), Ordering::Relaxed);
        self.safe.store(unsafe_policy.is_none(), Ordering::Relaxed);
        self.checked_ms.store(now_ms(), Ordering::Release);
        if let Some(policy) = &unsafe_policy {
            // What the view read since the last look may miss an eviction.
            if let Some(view) = self.view.get().and_then(Weak::upgrade) {
                view.forget();
            }
            self.log_unsafe(policy);
        }
        Ok(())
    }

    /// The local view to empty when a look finds an unsafe policy.
    pub(super) fn watch_view(&self, view: Weak<LocalView>) {
        let _ = self.view.set(view);
    }

    /// Whether the local view may answer now: the last look is fresh (under
    /// `RECHECK` old) and found the policy safe. Otherwise the request reads
    /// Redis through `ensure`, which looks again.
    pub(super) fn view_may_answer(&self) -> bool {
        self.age() < RECHECK && self.safe.load(Ordering::Relaxed)
    }

    /// The share of `maxmemory` a proof's script must check before it
    /// writes, or 0 when every node is known to be far from the line.
    pub(super) fn proofs_line(&self) -> f64 {
        if self.age() < STALE_AT_MOST && self.far_from_the_line.load(Ordering::Relaxed) {
            0.0
        } else {
            PROOFS_UP_TO
        }
    }

    fn age(&self) -> Duration {
        match self.checked_ms.load(Ordering::Acquire) {
            0 => Duration::MAX,
            at => Duration::from_millis(now_ms().saturating_sub(at)),
        }
    }

    pub(super) fn verdict(&self, need: Need) -> Result<(), StoreError> {
        if !self.safe.load(Ordering::Relaxed) {
            return Err(StoreError::new(
                "Redis maxmemory-policy is not noeviction: it may evict revocations and bring \
                 logged-out tokens back; set it to noeviction",
            ));
        }
        if need == Need::RoomForProofs && !self.room_for_proofs.load(Ordering::Relaxed) {
            return Err(StoreError::new(NEAR_MAXMEMORY));
        }
        Ok(())
    }

    fn log_unsafe(&self, policy: &str) {
        let now = now_ms() / 1000;
        let last = self.logged_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10
            && self
                .logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                policy,
                "tower-authx: Redis may evict revocations (maxmemory-policy must be noeviction); refusing to use it"
            );
        }
    }
}

fn now_ms() -> u64 {
    (NumericDate::now().as_secs_f64() * 1000.0) as u64
}

/// What one node said of its memory.
struct Node {
    policy: String,
    used: u64,
    max: u64,
}

/// One node's INFO text: its policy (a node that names none counts as
/// unsafe: none is collected), its used and its maximum memory.
fn collect_from_text(text: &str, out: &mut Vec<Node>) {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
    };
    if let Some(policy) = field("maxmemory_policy:") {
        out.push(Node {
            policy: policy.to_owned(),
            used: field("used_memory:")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            max: field("maxmemory:")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        });
    }
}
