//! [`RedisStore`] (feature `redis`): revocations and refresh sessions shared by
//! every instance through Redis (one node or a cluster), one hash per subject,
//! each write one atomic script, the same rules as the memory store (see
//! `subject.rs`); the DPoP proofs already used, one expiring key each; and,
//! when asked for, a local view that answers checks from memory.

mod feed;
mod link;
mod policy;
mod scripts;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::{ErrorKind, ServerErrorKind};

use self::feed::spawn_feed;
use self::link::{Conn, Link, replicas_per_primary};
use self::policy::{Need, PolicyWatch};
use self::view::{LocalView, subject_of};

use super::subject::{self, Cutoff, Session, millis, secs_ceil, warn_collapsed};
use super::{
    DEFAULT_ENTRIES_PER_SUBJECT, DEFAULT_PROOFS_PER_KEY, DEFAULT_PROOFS_PER_SUBJECT, ProofUse,
    RefreshUse, ReplayStore, RevocationStore, StoreError, StoreFuture, TokenRecord,
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
/// them (see [`RevocationStore`] for what an entry is).
///
/// Redis must never evict these keys (an evicted logout is a token that works
/// again): the store checks that `maxmemory-policy` is `noeviction` before its
/// first command and every minute after, and fails closed (every answer a
/// [`StoreError`], so guarded routes answer 503) while it is not.
/// [`connect`](Self::connect) checks at start, to refuse to run instead.
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
    replicas: Option<(u32, Duration)>,
    /// Where writes that wait for replicas go: connections of their own, so
    /// a `WAIT` never holds up the checks.
    writes: Option<Link>,
}

/// The local view as configured, started on first use (within the runtime).
#[derive(Clone)]
struct ViewSettings {
    capacity: usize,
    started: Arc<OnceLock<Arc<LocalView>>>,
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
            }),
            policy: Arc::default(),
            view: None,
            view_max_age: DEFAULT_VIEW_MAX_AGE,
            replicas: None,
            writes: None,
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

    /// Counts a write (logout, rotation) only once `replicas` replicas of the
    /// node that took it have it, waiting at most `timeout` (Redis `WAIT`, in
    /// one pipeline with the write); otherwise the write is a
    /// [`StoreError`] (503), to be tried again. Replication is asynchronous:
    /// without this, a primary that fails right after a logout can take the
    /// logout with it when its replica takes over. Off by default.
    ///
    /// Writes then go on connections of their own (`WAIT` blocks the
    /// connection it is sent on), so a shard without a replica slows its
    /// writes, never the checks. Keep `timeout` below the store's command
    /// timeout (1 s unless [`with_timeout`](Self::with_timeout)), which
    /// otherwise ends the write first.
    #[must_use]
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = (replicas > 0).then_some((replicas, timeout));
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
            spawn_feed(
                Arc::downgrade(&view),
                self.nodes.to_vec(),
                self.channel(),
                self.key(""),
            );
            view
        }))
    }

    /// Reads `token`'s subject whole, answers from it, and keeps it in `view`
    /// unless it changed meanwhile.
    fn read_into_view(
        &self,
        view: Arc<LocalView>,
        token: &TokenRecord<'_>,
        started: u64,
    ) -> StoreFuture<bool> {
        let read = self.run::<HashMap<String, String>>(Command::Plain(
            redis::cmd("HGETALL").arg(self.key(token.subject)).clone(),
        ));
        let subject = token.subject.to_owned();
        let (jti, session) = (
            token.jti.map(str::to_owned),
            token.session.map(str::to_owned),
        );
        let (issued_at, expires) = (token.issued_at, token.expires);
        StoreFuture::pending(async move {
            let entries = subject_of(read.await?);
            let token = TokenRecord {
                subject: &subject,
                jti: jti.as_deref(),
                session: session.as_deref(),
                issued_at,
                expires,
            };
            let revoked = entries.is_revoked(&token, now_secs());
            view.keep(&subject, entries, started);
            Ok(revoked)
        })
    }

    /// What to do once a write on `subject` is done: this instance's view
    /// drops the subject at once (its feed will say so too, a moment later).
    fn changed(&self, subject: &str) -> impl FnOnce() + Send + 'static {
        // Without a view there is nothing to drop, and nothing to copy.
        let view = self.view.as_ref().and_then(|v| v.started.get()).cloned();
        let kept = view.map(|view| (view, subject.to_owned()));
        move || {
            if let Some((view, subject)) = kept {
                view.invalidate(&subject);
            }
        }
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
        self.policy.ask(&self.link).await
    }

    /// Runs `command` once Redis's eviction policy is known to be safe.
    fn run<T: redis::FromRedisValue + Send + 'static>(&self, command: Command) -> StoreFuture<T> {
        let link = match (&self.writes, &command) {
            (Some(writes), Command::Script(..)) => writes.clone(),
            _ => self.link.clone(),
        };
        let policy = self.policy.clone();
        let replicas = self.replicas;
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
            if let (Some((count, _)), Some(acked)) = (replicas, acked)
                && acked < i64::from(count)
            {
                return Err(StoreError::new(format!(
                    "the write reached {acked} replicas of the {count} required"
                )));
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

/// A plain command, a write script on one subject's key with its arguments
/// (waiting for replicas when configured), or a script that never waits.
enum Command {
    Plain(redis::Cmd),
    Script(redis::Script, String, Vec<String>),
    Check(redis::Script, String, Vec<String>),
}

impl Command {
    /// The command's answer and, for a write that waits for `replicas`, how
    /// many replicas have it. The write and its `WAIT` go in one pipeline, so
    /// both reach the same node on the same connection: asked on its own, a
    /// cluster client sends `WAIT` to whichever primaries its map names (a
    /// stale map after a failover: one that did not take the write, whose
    /// replicas then vouch for it).
    async fn run<T: redis::FromRedisValue>(
        &self,
        connection: &mut Conn,
        replicas: Option<(u32, Duration)>,
    ) -> redis::RedisResult<(T, Option<i64>)> {
        match (self, replicas) {
            (Command::Plain(command), _) => Ok((command.query_async(connection).await?, None)),
            (Command::Script(script, key, args), None) | (Command::Check(script, key, args), _) => {
                let mut invocation = script.key(key);
                for arg in args {
                    invocation.arg(arg);
                }
                Ok((invocation.invoke_async(connection).await?, None))
            }
            (Command::Script(script, key, args), Some((wanted, timeout))) => {
                let mut pipe = redis::pipe();
                pipe.cmd("EVALSHA")
                    .arg(script.get_hash())
                    .arg(1)
                    .arg(key)
                    .arg(args)
                    .cmd("WAIT")
                    .arg(wanted)
                    .arg(timeout.as_millis() as u64);
                // A node without the script (restarted, promoted) refuses the
                // first EVALSHA; its WAIT is then waited out once more.
                let (answer, acked) = match pipe.query_async(connection).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        script.load_async(connection).await?;
                        pipe.query_async(connection).await?
                    }
                    other => other?,
                };
                Ok((answer, Some(acked)))
            }
        }
    }
}

pub(super) fn now_secs() -> u64 {
    NumericDate::now().as_secs_f64() as u64
}

pub(super) fn store_error(e: redis::RedisError) -> StoreError {
    StoreError::new(crate::error::with_causes(&e))
}

/// Whether a second attempt can succeed: the connection dropped (Redis restarted)
/// and the manager has reconnected meanwhile.
fn worth_retrying(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error()
}

fn parse_until(value: &str) -> Option<u64> {
    value.split(':').next()?.parse().ok()
}

fn parse_session(value: &str) -> Option<Session> {
    let until = parse_until(value)?;
    Some(match value.split_once(':') {
        Some((_, jti)) => Session::Current {
            until,
            jti: jti.into(),
        },
        None => Session::Revoked { until },
    })
}

fn parse_cutoff(value: &str) -> Option<Cutoff> {
    let (until, ms) = value.split_once(':')?;
    Some(Cutoff {
        until: until.parse().ok()?,
        issued_until_ms: ms.parse().ok()?,
    })
}

/// One sorted set per owner of proofs (the account a proof's token speaks
/// for, or the proof's key at a token request), `<prefix>dpop:{<owner's
/// hash>}`: the ids of its live proofs, scored by expiry. A first use is one
/// script on that key (atomic across instances, one slot of a cluster),
/// bounded per owner, so one client can hold at most its bound of Redis's
/// memory (about 100 bytes a proof). Behind the same eviction-policy check as
/// revocations.
impl ReplayStore for RedisStore {
    fn first_use(&self, proof: &ProofUse<'_>) -> StoreFuture<bool> {
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let (owner, bound) = match proof.subject {
            Some(subject) => (format!("s:{subject}"), self.proofs_per_subject),
            None => (format!("k:{}", proof.key), self.proofs_per_key),
        };
        // Hashed: any subject fits a key, and its braces cannot move the slot.
        let owner = <sha2::Sha256 as sha2::Digest>::digest(owner.as_bytes());
        let key = format!("{}dpop:{{{}}}", self.prefix, hex(&owner[..16]));
        let now = millis(NumericDate::now());
        let args = vec![
            hex(proof.id),
            now.to_string(),
            millis(proof.expires).max(now + 1000).to_string(),
            bound.to_string(),
        ];
        let answer = self.run::<i64>(Command::Check(self.scripts.first_use.clone(), key, args));
        StoreFuture::pending(async move {
            match answer.await? {
                1 => Ok(true),
                0 => Ok(false),
                _ => Err(StoreError::over_limit(
                    "too many live DPoP proofs for one account or key",
                )),
            }
        })
    }
}

impl RevocationStore for RedisStore {
    fn is_revoked(&self, token: &TokenRecord<'_>) -> StoreFuture<bool> {
        if let Some(view) = self.view() {
            if let Some(subject) = view.get(token.subject) {
                // From memory: no allocation, no waiting.
                return StoreFuture::ready(Ok(subject.is_revoked(token, now_secs())));
            }
            if let Some(started) = view.start_read() {
                return self.read_into_view(view.clone(), token, started);
            }
        }
        let mut command = redis::cmd("HMGET");
        command
            .arg(self.key(token.subject))
            .arg(token.jti.map(|j| format!("t:{j}")).unwrap_or_default())
            .arg(token.session.map(|s| format!("s:{s}")).unwrap_or_default())
            .arg("cut");
        let answer = self.run::<Vec<Option<String>>>(Command::Plain(command));
        let (issued_at, expires) = (token.issued_at, token.expires);
        StoreFuture::pending(async move {
            let values = answer.await?;
            let field = |i: usize| values.get(i).and_then(Option::as_deref);
            let token = TokenRecord {
                subject: "",
                jti: None,
                session: None,
                issued_at,
                expires,
            };
            Ok(subject::is_revoked(
                &token,
                field(0).and_then(parse_until),
                field(1).and_then(parse_session).as_ref(),
                field(2).and_then(parse_cutoff),
                now_secs(),
            ))
        })
    }

    fn revoke(&self, token: &TokenRecord<'_>, horizon: NumericDate) -> StoreFuture<()> {
        let changed = self.changed(token.subject);
        let (field, until) = match (token.session, token.jti) {
            (Some(session), _) => (format!("s:{session}"), horizon),
            (None, Some(jti)) => (format!("t:{jti}"), token.expires),
            (None, None) => return StoreFuture::ready(Ok(())),
        };
        if secs_ceil(until) <= now_secs() {
            return StoreFuture::ready(Ok(())); // already expired: nothing to remember
        }
        let command = self.write(
            &self.scripts.revoke,
            token.subject,
            horizon,
            [field, secs_ceil(until).to_string()],
        );
        let done = self.run::<u8>(command);
        StoreFuture::pending(async move {
            let collapsed = done.await? == 1;
            changed();
            if collapsed {
                warn_collapsed();
            }
            Ok(())
        })
    }

    fn spend_refresh(
        &self,
        token: &TokenRecord<'_>,
        next: &str,
        horizon: NumericDate,
    ) -> StoreFuture<RefreshUse> {
        let (Some(session), Some(jti)) = (token.rotation_session(), token.jti) else {
            return StoreFuture::ready(Err(StoreError::new(
                "a refresh token without jti cannot be spent",
            )));
        };
        // A token of no session can have been revoked alone (`t:`); one of a
        // session only with its session.
        let token_field = match token.session {
            None => format!("t:{jti}"),
            Some(_) => String::new(),
        };
        let command = self.write(
            &self.scripts.spend,
            token.subject,
            horizon,
            [
                format!("s:{session}"),
                jti.to_owned(),
                next.to_owned(),
                token
                    .issued_at
                    .map(|iat| millis(iat).to_string())
                    .unwrap_or_default(),
                token_field,
            ],
        );
        let verdict = self.run::<u8>(command);
        let changed = self.changed(token.subject);
        StoreFuture::pending(async move {
            let verdict = verdict.await?;
            changed();
            Ok(match verdict {
                0 => RefreshUse::First,
                1 => RefreshUse::Reused,
                3 => {
                    warn_collapsed();
                    RefreshUse::FamilyRevoked
                }
                _ => RefreshUse::FamilyRevoked,
            })
        })
    }
}
