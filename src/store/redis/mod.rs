//! [`RedisStore`] (feature `redis`): revocations and refresh sessions shared by
//! every instance through Redis (one node or a cluster), one hash per subject,
//! each write one atomic script, the same rules as the memory store (see
//! `subject.rs`); the DPoP proofs already used, one sorted set per account;
//! and, when asked for, a local view that answers checks from memory.
//!
//! Here the store and its builder; the two stores' contracts in `stores.rs`;
//! commands and scripts in `command.rs` and `scripts.rs`; connections in
//! `link.rs`; the eviction-policy watch in `policy.rs`; the local view and its
//! feed in `view.rs` and `feed.rs`.

mod command;
mod feed;
mod link;
mod policy;
mod scripts;
mod stores;
mod view;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use self::command::{Command, ReplicaWait, Replicated, worth_retrying};
use self::feed::spawn_feed;
use self::link::{Link, replicas_per_primary};
use self::policy::{Need, PolicyWatch};
use self::view::LocalView;

use super::subject::{millis, secs_ceil};
use super::{
    DEFAULT_ENTRIES_PER_SUBJECT, DEFAULT_PROOFS_PER_KEY, DEFAULT_PROOFS_PER_SUBJECT,
    RevocationChanges, StoreError, StoreFuture,
};
use crate::claims::NumericDate;

/// A store in Redis, for services on many machines: a logout on one instance is
/// refused on all, and survives restarts. One multiplexed connection, reused by
/// every request and re-established by itself after Redis comes back; commands
/// time out (one second by default) so an unreachable Redis is a quick 503.
/// Several comma-separated node URLs (or [`cluster`](Self::cluster)) mean a
/// Redis Cluster: every key the store writes together is one key, so every
/// script runs on one slot, and the cluster client follows failovers.
///
/// With [`local_view`](Self::local_view), checks are answered from memory,
/// kept current by a feed of every write (see its documentation for the
/// staleness bound); writes (logout, rotation) always go to Redis.
///
/// Each subject is one hash, `<prefix>sub:<sub>`, holding at most
/// [`per_subject`](Self::per_subject) entries and expiring with the last of
/// them (see [`RevocationStore`](crate::RevocationStore) for what an entry is).
///
/// Redis must never evict these keys (an evicted logout is a token that works
/// again): the store checks that `maxmemory-policy` is `noeviction` before its
/// first command and every second after, and fails closed (every answer a
/// [`StoreError`], so guarded routes answer 503) while it is not; the local
/// view answers only while that check is fresh, and is emptied when it fails.
/// [`connect`](Self::connect) checks at start, to refuse to run instead.
///
/// DPoP proofs keep a tenth of `maxmemory` free for revocations: past 90%
/// they are refused (503), checked by each proof's own script when a node is
/// within 256 MiB of that line, so no burst can cross it between two looks.
#[derive(Clone)]
pub struct RedisStore {
    link: Link,
    /// The node URLs, for the local view's feed.
    nodes: Arc<[String]>,
    prefix: String,
    per_subject: usize,
    /// Live DPoP proofs one account, or one key without an account, may have.
    proofs_per_subject: usize,
    proofs_per_key: usize,
    scripts: Arc<Scripts>,
    policy: Arc<PolicyWatch>,
    view: Option<ViewSettings>,
    /// How long the local view keeps a subject (set in any order with `local_view`).
    view_max_age: Duration,
    /// Replicas that must have every write before it counts, and how long to wait.
    replicas: Option<ReplicaWait>,
    /// Writes counted on a node that had no replica to copy them to.
    unreplicated: Arc<Unreplicated>,
    /// Where writes that wait for replicas go: connections of their own, so
    /// a `WAIT` never holds up the checks.
    writes: Option<Link>,
    /// Every instance's writes, announced to this process's open streams.
    announced: Arc<Announced>,
}

/// The feed's announcements to open streams, and the feed that carries them
/// when no local view is configured (a view that is never asked, kept only
/// to keep its feed running).
#[derive(Default)]
pub(super) struct Announced {
    pub(super) changes: RevocationChanges,
    feed_only: OnceLock<Arc<LocalView>>,
}

/// The local view as configured, started on first use (within the runtime).
#[derive(Clone)]
struct ViewSettings {
    capacity: usize,
    started: Arc<OnceLock<Arc<LocalView>>>,
}

/// Writes counted on a node without a replica: counted, and said loudly
/// (at most once a minute in the log).
#[derive(Debug, Default)]
struct Unreplicated {
    count: AtomicU64,
    last_warned: Mutex<Option<std::time::Instant>>,
}

impl Unreplicated {
    fn note(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(crate::metrics::UNREPLICATED_WRITES).increment(1);
        let mut last = self.last_warned.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *last = Some(std::time::Instant::now());
            tracing::warn!(
                writes = self.count.load(Ordering::Relaxed),
                "tower-authx: a Redis primary has no replica: writes count without one \
                 (a failover now would lose them); bring its replica back"
            );
        }
    }
}

/// How long a write waits for a replica when `connect` finds replicas.
const DEFAULT_REPLICA_WAIT: Duration = Duration::from_millis(500);

/// How long a local view keeps a subject by default.
const DEFAULT_VIEW_MAX_AGE: Duration = Duration::from_secs(10);

/// How many subjects a local view keeps by default.
pub const DEFAULT_VIEW_CAPACITY: usize = 100_000;

struct Scripts {
    revoke: redis::Script,
    spend: redis::Script,
    first_use: redis::Script,
    record_session: redis::Script,
    session_refreshed: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("per_subject", &self.per_subject)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store at `url` (`redis://host:port/db`), with the key prefix `authx:`.
    /// Connects lazily: Redis may be down when the service starts. Must be
    /// called within a Tokio runtime.
    pub fn new(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::with_timeout(url, Duration::from_secs(1))
    }

    /// Like [`new`](Self::new), then connects and checks that Redis is safe to
    /// use (reachable, `maxmemory-policy noeviction`): an error means do not start.
    ///
    /// Where every primary has a replica connected, writes then wait for one
    /// ([`wait_for_replicas`](Self::wait_for_replicas)`(1, 500 ms)`): a logout
    /// answered 200 survives the primary's failure. Turn it off with
    /// `wait_for_replicas(0, ..)` (faster writes, a logout lost in a failover).
    ///
    /// One URL that turns out to be a node of a Redis Cluster (`cluster_enabled:1`,
    /// a managed cluster's single endpoint) gives a cluster store seeded by it.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        let mut store = RedisStore::new(url)?;
        if let Link::Node(..) = store.link
            && store.link.is_cluster_node().await?
        {
            store = RedisStore::cluster([url])?;
        }
        store.check_policy().await?;
        // Replication is asynchronous: where every primary has a replica, a
        // write counts only once one has it, or a failover right after a
        // logout could take the logout with it.
        let replicas = replicas_per_primary(&store.link).await?;
        if !replicas.is_empty() && replicas.iter().all(|n| *n >= 1) {
            store = store.wait_for_replicas(1, DEFAULT_REPLICA_WAIT);
        }
        Ok(store)
    }

    /// Like [`new`](Self::new), with `timeout` for connecting and for each command.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let link = Link::open(url, timeout)?;
        Ok(RedisStore::on(link, url.split(',')))
    }

    /// A store in the Redis Cluster reached through any of `nodes`
    /// (`redis://host:port` each; the others are discovered).
    pub fn cluster<'a>(nodes: impl IntoIterator<Item = &'a str>) -> Result<RedisStore, StoreError> {
        let nodes: Vec<&str> = nodes.into_iter().collect();
        let link = Link::cluster(nodes.iter().copied(), Duration::from_secs(1))?;
        Ok(RedisStore::on(link, nodes))
    }

    fn on<'a>(link: Link, nodes: impl IntoIterator<Item = &'a str>) -> RedisStore {
        let nodes = nodes
            .into_iter()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        RedisStore {
            link,
            nodes,
            prefix: "authx:".to_owned(),
            per_subject: DEFAULT_ENTRIES_PER_SUBJECT,
            proofs_per_subject: DEFAULT_PROOFS_PER_SUBJECT,
            proofs_per_key: DEFAULT_PROOFS_PER_KEY,
            scripts: Arc::new(Scripts {
                revoke: redis::Script::new(&format!("{}{}", scripts::PRELUDE, scripts::REVOKE)),
                spend: redis::Script::new(&format!("{}{}", scripts::PRELUDE, scripts::SPEND)),
                first_use: redis::Script::new(scripts::FIRST_USE),
                record_session: redis::Script::new(&format!(
                    "{}{}",
                    scripts::PRELUDE,
                    scripts::RECORD_SESSION
                )),
                session_refreshed: redis::Script::new(&format!(
                    "{}{}",
                    scripts::PRELUDE,
                    scripts::SESSION_REFRESHED
                )),
            }),
            policy: Arc::default(),
            view: None,
            view_max_age: DEFAULT_VIEW_MAX_AGE,
            replicas: None,
            unreplicated: Arc::default(),
            writes: None,
            announced: Arc::default(),
        }
    }

    /// Answers revocation checks from this process's memory: each subject's
    /// entries are read from Redis once and kept (at most `capacity`
    /// subjects; past that, others are forgotten and read again), and a feed
    /// of every write (Redis pub/sub, one channel per prefix) drops what a
    /// write changed, so the next check reads Redis again. While the feed is
    /// down, checks go to Redis; Redis stays the source of truth, and writes
    /// always go there.
    ///
    /// Staleness: a logout on one instance is seen by the others one pub/sub
    /// delivery later while the feed is up (about a millisecond on a LAN);
    /// if the feed's connection dies silently, within its 1 s heartbeat
    /// plus 1 s; and never later than [`local_view_max_age`](Self::local_view_max_age)
    /// (10 s by default), whatever happens to the feed.
    #[must_use]
    pub fn local_view(mut self, capacity: usize) -> Self {
        self.view = Some(ViewSettings {
            capacity,
            started: Arc::default(),
        });
        self
    }

    /// How long the local view keeps a subject before reading it again, even
    /// with no change announced (default 10 s): the longest a logout can go
    /// unseen by this instance, whatever happens to the feed. Before or after
    /// [`local_view`](Self::local_view), in either order.
    #[must_use]
    pub fn local_view_max_age(mut self, max_age: Duration) -> Self {
        self.view_max_age = max_age;
        self
    }

    /// Counts a write (logout, rotation, login) only once `replicas`
    /// replicas of the node that took it have it, or every replica that node
    /// has connected when it has fewer, waiting at most `timeout` (Redis
    /// `WAIT`, in one pipeline with the write); a node whose replicas are
    /// connected but do not confirm in time makes the write a
    /// [`StoreError`] (503), to be tried again. Replication is asynchronous:
    /// without this, a primary that fails right after a logout can take the
    /// logout with it when its replica takes over.
    ///
    /// A node with no replica at all (a failover just promoted its replica,
    /// and the dead node has not come back) loses durability, not
    /// availability: its writes count, each a `warn` log (at most one a
    /// minute), the metric `authx_store_unreplicated_writes_total` and
    /// [`writes_without_replica`](Self::writes_without_replica) for your
    /// readiness probe; they wait out `timeout` first. To refuse them
    /// instead, use [`require_replicas`](Self::require_replicas). Off by
    /// default ([`connect`](Self::connect) turns it on where every primary
    /// has a replica).
    ///
    /// Writes then go on connections of their own (`WAIT` blocks the
    /// connection it is sent on), so a shard without a replica slows its
    /// writes, never the checks. Keep `timeout` below the store's command
    /// timeout (1 s unless [`with_timeout`](Self::with_timeout)), which
    /// otherwise ends the write first.
    #[must_use]
    pub fn wait_for_replicas(self, replicas: u32, timeout: Duration) -> Self {
        self.replica_wait(replicas, timeout, false)
    }

    /// Like [`wait_for_replicas`](Self::wait_for_replicas), but a node with
    /// fewer replicas than `replicas` refuses every write (503) until it has
    /// them again: no logout is counted that a failover could lose, at the
    /// price of logins and logouts on that shard while it runs alone.
    #[must_use]
    pub fn require_replicas(self, replicas: u32, timeout: Duration) -> Self {
        self.replica_wait(replicas, timeout, true)
    }

    /// How many writes were counted on a node that had no replica to copy
    /// them to (see [`wait_for_replicas`](Self::wait_for_replicas)): a
    /// readiness probe can report a shard running alone.
    pub fn writes_without_replica(&self) -> u64 {
        self.unreplicated.count.load(Ordering::Relaxed)
    }

    fn replica_wait(mut self, replicas: u32, timeout: Duration, strict: bool) -> Self {
        self.replicas = (replicas > 0).then_some(ReplicaWait {
            wanted: replicas,
            timeout,
            strict,
        });
        // A twin cannot fail where the link itself was made; if it did, the
        // writes would share the checks' connections, as before.
        self.writes = self.replicas.and_then(|_| self.link.twin().ok());
        self
    }

    /// Whether the local view answers now (its feed is up); `false` without one.
    pub fn local_view_is_live(&self) -> bool {
        self.view
            .as_ref()
            .and_then(|v| v.started.get())
            .is_some_and(|view| view.is_live())
    }

    /// The local view, started (its feed spawned) on first use.
    fn view(&self) -> Option<&Arc<LocalView>> {
        let settings = self.view.as_ref()?;
        Some(settings.started.get_or_init(|| {
            let view = Arc::new(LocalView::new(settings.capacity, self.view_max_age));
            self.policy.watch_view(Arc::downgrade(&view));
            self.spawn_feed(&view);
            view
        }))
    }

    fn spawn_feed(&self, view: &Arc<LocalView>) {
        spawn_feed(
            Arc::downgrade(view),
            self.announced.clone(),
            self.nodes.to_vec(),
            self.channel(),
            self.key(""),
        );
    }

    /// Where every instance's writes are announced to this process's open
    /// streams: the local view's feed, started for them alone when no view
    /// is configured.
    pub(super) fn announcements(&self) -> &RevocationChanges {
        if self.view().is_none() {
            self.announced.feed_only.get_or_init(|| {
                let view = Arc::new(LocalView::new(1, self.view_max_age));
                self.spawn_feed(&view);
                view
            });
        }
        &self.announced.changes
    }

    /// The channel every write announces its key on.
    fn channel(&self) -> String {
        format!("{}changed", self.prefix)
    }

    /// Replaces the key prefix (default `authx:`), to share one Redis between services.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many entries one subject may hold (default 1000, at least 1) before
    /// they collapse into one cut-off that revokes every token of the subject
    /// issued until then.
    #[must_use]
    pub fn per_subject(mut self, entries: usize) -> Self {
        self.per_subject = entries.max(1);
        self
    }

    /// How many live DPoP proofs one account may have over all its keys
    /// (default [`DEFAULT_PROOFS_PER_SUBJECT`](crate::DEFAULT_PROOFS_PER_SUBJECT),
    /// at least 1), and one key of a token request (a login, no account yet:
    /// default [`DEFAULT_PROOFS_PER_KEY`](crate::DEFAULT_PROOFS_PER_KEY)).
    /// Past its bound a client is answered 429, and nobody else is affected.
    #[must_use]
    pub fn proofs_per_subject(mut self, per_subject: usize, per_key: usize) -> Self {
        self.proofs_per_subject = per_subject.max(1);
        self.proofs_per_key = per_key.max(1);
        self
    }

    fn key(&self, subject: &str) -> String {
        format!("{}sub:{subject}", self.prefix)
    }

    /// Asks Redis for its eviction policy; `Ok` only for `noeviction`.
    async fn check_policy(&self) -> Result<(), StoreError> {
        self.policy.ask(&self.link).await?;
        self.policy.verdict(Need::Safe)
    }

    /// Runs `command` once Redis's eviction policy is known to be safe.
    fn run<T: redis::FromRedisValue + Send + 'static>(&self, command: Command) -> StoreFuture<T> {
        let link = match (&self.writes, &command) {
            (Some(writes), Command::Script(..)) => writes.clone(),
            _ => self.link.clone(),
        };
        let policy = self.policy.clone();
        let replicas = self.replicas;
        let unreplicated = self.unreplicated.clone();
        let need = match command {
            Command::Check(..) => Need::RoomForProofs,
            _ => Need::Safe,
        };
        StoreFuture::pending(async move {
            policy.ensure(&link, need).await?;
            let mut connection = link.conn().await.map_err(store_error)?;
            // Once more after a dropped connection, so the first request after
            // an outage does not fail.
            let (answer, acked) = match command.run(&mut connection, replicas).await {
                Err(e) if worth_retrying(&e) => command.run(&mut connection, replicas).await,
                other => other,
            }
            .map_err(store_error)?;
            if let (Some(wait), Some(Replicated { acked, connected })) = (replicas, acked) {
                let wanted = i64::from(wait.wanted);
                // The replicas the node has must confirm (all it has, up to
                // `wanted`); a node with none vouches for itself unless the
                // rule is strict.
                let needed = if wait.strict {
                    wanted
                } else {
                    wanted.min(connected)
                };
                if acked < needed {
                    return Err(StoreError::new(format!(
                        "the write reached {acked} replicas of the {wanted} required"
                    )));
                }
                if connected == 0 && !wait.strict {
                    unreplicated.note();
                }
            }
            Ok(answer)
        })
    }

    /// A write script on `subject`'s hash: the prelude's arguments, then `rest`.
    fn write(
        &self,
        script: &redis::Script,
        subject: &str,
        horizon: NumericDate,
        rest: impl IntoIterator<Item = String>,
    ) -> Command {
        let now = NumericDate::now();
        let now_secs = now.as_secs_f64() as u64;
        let mut args = vec![
            now_secs.to_string(),
            millis(now).to_string(),
            self.per_subject.to_string(),
            secs_ceil(horizon).max(now_secs + 1).to_string(),
        ];
        args.extend(rest);
        args.push(self.channel());
        Command::Script(script.clone(), self.key(subject), args)
    }
}

pub(super) fn now_secs() -> u64 {
    NumericDate::now().as_secs_f64() as u64
}

pub(super) fn store_error(e: redis::RedisError) -> StoreError {
    StoreError::new(crate::error::with_causes(&e))
}
