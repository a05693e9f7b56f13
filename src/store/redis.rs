//! [`RedisStore`] (feature `redis`): revocations and refresh sessions shared by
//! every instance through Redis, one hash per subject, each write one atomic
//! script, the same rules as the memory store (see `subject.rs`); and the DPoP
//! proofs already used, one expiring key each.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::subject::{self, Cutoff, Session, millis, secs_ceil, warn_collapsed};
use super::{
    DEFAULT_ENTRIES_PER_SUBJECT, ProofUse, RefreshUse, ReplayStore, RevocationStore, StoreError,
    StoreFuture, TokenRecord,
};
use crate::claims::NumericDate;

/// Helpers every write script starts with. A subject's hash holds
/// `t:<jti>` = `<until>` (a revoked token), `s:<session>` = `<until>` (revoked)
/// or `<until>:<jti>` (its current refresh token), and `cut` =
/// `<until>:<issued until, ms>`.
const PRELUDE: &str = r"
local key, now, now_ms = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local cap, horizon = tonumber(ARGV[3]), tonumber(ARGV[4])
local function until_of(v) return tonumber(string.match(v, '^(%d+)')) end
local function keep(at)
  local ttl = redis.call('TTL', key)
  if ttl < 0 or now + ttl < at then redis.call('EXPIREAT', key, at) end
end
local function at_cap()
  if redis.call('HLEN', key) < cap then return false end
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if until_of(all[i + 1]) <= now then redis.call('HDEL', key, all[i]) end
  end
  return redis.call('HLEN', key) >= cap
end
local function collapse()
  local latest = horizon
  for _, v in ipairs(redis.call('HVALS', key)) do latest = math.max(latest, until_of(v)) end
  redis.call('DEL', key)
  redis.call('HSET', key, 'cut', string.format('%d', latest) .. ':' .. now_ms)
  redis.call('EXPIREAT', key, latest)
end
";

/// Logout: ARGV[5] the field, ARGV[6] until when. 0 done, 1 collapsed.
const REVOKE: &str = r"
local field, untl = ARGV[5], tonumber(ARGV[6])
local old = redis.call('HGET', key, field)
if not old and at_cap() then collapse() return 1 end
if old then untl = math.max(untl, until_of(old)) end
redis.call('HSET', key, field, string.format('%d', untl))
keep(untl)
return 0
";

/// Rotation: ARGV[5] the session field, ARGV[6] the presented jti, ARGV[7] the
/// next jti, ARGV[8] the token's iat in ms ('' if none), ARGV[9] its `t:` field
/// ('' if none). 0 first use, 1 reuse, 2 revoked, 3 collapsed.
const SPEND: &str = r"
local field, presented, next_jti = ARGV[5], ARGV[6], ARGV[7]
if ARGV[9] ~= '' then
  local t = redis.call('HGET', key, ARGV[9])
  if t and until_of(t) > now then return 2 end
end
local cut = redis.call('HGET', key, 'cut')
if cut then
  local u, ms = string.match(cut, '^(%d+):(%d+)$')
  if tonumber(u) > now and (ARGV[8] == '' or tonumber(ARGV[8]) <= tonumber(ms)) then return 2 end
end
local h = string.format('%d', horizon)
local s = redis.call('HGET', key, field)
if s and until_of(s) > now then
  local current = string.match(s, '^%d+:(.*)$')
  if not current then return 2 end
  if current == presented then
    redis.call('HSET', key, field, h .. ':' .. next_jti)
    keep(horizon)
    return 0
  end
  redis.call('HSET', key, field, h)
  keep(horizon)
  return 1
end
if at_cap() then collapse() return 3 end
redis.call('HSET', key, field, h .. ':' .. next_jti)
keep(horizon)
return 0
";

/// How long a `maxmemory-policy` check holds before Redis is asked again.
const POLICY_RECHECK: Duration = Duration::from_secs(60);

/// A store in Redis, for services on many machines: a logout on one instance is
/// refused on all, and survives restarts. One multiplexed connection, reused by
/// every request and re-established by itself after Redis comes back; commands
/// time out (one second by default) so an unreachable Redis is a quick 503.
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
    connection: ConnectionManager,
    prefix: String,
    per_subject: usize,
    scripts: Arc<Scripts>,
    policy: Arc<PolicyWatch>,
}

/// What the store knows of Redis's eviction policy (seconds since the epoch;
/// 0: never).
#[derive(Default)]
struct PolicyWatch {
    /// When `maxmemory-policy` was last seen to be `noeviction`.
    ok_at: AtomicU64,
    /// When an unsafe policy was last logged (at most every 10 s).
    logged_at: AtomicU64,
}

struct Scripts {
    revoke: redis::Script,
    spend: redis::Script,
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
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        let store = RedisStore::new(url)?;
        store.check_policy().await?;
        Ok(store)
    }

    /// Like [`new`](Self::new), with `timeout` for connecting and for each command.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::new(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::new(e.to_string()))?;
        Ok(RedisStore {
            connection,
            prefix: "authx:".to_owned(),
            per_subject: DEFAULT_ENTRIES_PER_SUBJECT,
            scripts: Arc::new(Scripts {
                revoke: redis::Script::new(&format!("{PRELUDE}{REVOKE}")),
                spend: redis::Script::new(&format!("{PRELUDE}{SPEND}")),
            }),
            policy: Arc::default(),
        })
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

    fn key(&self, subject: &str) -> String {
        format!("{}sub:{subject}", self.prefix)
    }

    /// Asks Redis for its eviction policy; `Ok` only for `noeviction`.
    async fn check_policy(&self) -> Result<(), StoreError> {
        check_policy(self.connection.clone(), &self.policy).await
    }

    /// Runs `command` once Redis's eviction policy is known to be safe.
    fn run<T: redis::FromRedisValue + Send + 'static>(&self, command: Command) -> StoreFuture<T> {
        let (mut connection, policy) = (self.connection.clone(), self.policy.clone());
        StoreFuture::pending(async move {
            let checked = policy.ok_at.load(Ordering::Relaxed);
            if now_secs().saturating_sub(checked) >= POLICY_RECHECK.as_secs() {
                check_policy(connection.clone(), &policy).await?;
            }
            // Once more after a dropped connection, so the first request after
            // an outage does not fail.
            match command.run(&mut connection).await {
                Err(e) if worth_retrying(&e) => command.run(&mut connection).await,
                other => other,
            }
            .map_err(store_error)
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
        Command::Script(script.clone(), self.key(subject), args)
    }
}

/// Asks Redis for its eviction policy; `Ok` (and the time noted) only for
/// `noeviction`.
async fn check_policy(
    mut connection: ConnectionManager,
    watch: &PolicyWatch,
) -> Result<(), StoreError> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut connection)
        .await
        .map_err(store_error)?;
    let policy = info
        .lines()
        .find_map(|line| line.strip_prefix("maxmemory_policy:"))
        .map(str::trim);
    if policy != Some("noeviction") {
        let policy = policy.unwrap_or("unknown");
        let now = now_secs();
        let last = watch.logged_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10
            && watch
                .logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                policy,
                "tower-authx: Redis may evict revocations (maxmemory-policy must be noeviction); refusing to use it"
            );
        }
        return Err(StoreError::new(format!(
            "Redis maxmemory-policy is {policy}: it may evict revocations and bring logged-out tokens back; set it to noeviction"
        )));
    }
    watch.ok_at.store(now_secs(), Ordering::Relaxed);
    Ok(())
}

/// A plain command, or a script on one subject's key with its arguments.
enum Command {
    Plain(redis::Cmd),
    Script(redis::Script, String, Vec<String>),
}

impl Command {
    async fn run<T: redis::FromRedisValue>(
        &self,
        connection: &mut ConnectionManager,
    ) -> redis::RedisResult<T> {
        match self {
            Command::Plain(command) => command.query_async(connection).await,
            Command::Script(script, key, args) => {
                let mut invocation = script.key(key);
                for arg in args {
                    invocation.arg(arg);
                }
                invocation.invoke_async(connection).await
            }
        }
    }
}

fn now_secs() -> u64 {
    NumericDate::now().as_secs_f64() as u64
}

fn store_error(e: redis::RedisError) -> StoreError {
    StoreError::new(e.to_string())
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

/// One key per proof, `<prefix>dpop:<id>`, set only if absent and expiring
/// with the proof: atomic across instances, and bounded by the proofs of one
/// proof lifetime. Behind the same eviction-policy check as revocations.
impl ReplayStore for RedisStore {
    fn first_use(&self, proof: &ProofUse<'_>) -> StoreFuture<bool> {
        let id: String = proof.id.iter().map(|b| format!("{b:02x}")).collect();
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{}dpop:{id}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PXAT")
            .arg(millis(proof.expires).max(millis(NumericDate::now()) + 1000));
        let answer = self.run::<Option<String>>(Command::Plain(command));
        StoreFuture::pending(async move { Ok(answer.await?.is_some()) })
    }
}

impl RevocationStore for RedisStore {
    fn is_revoked(&self, token: &TokenRecord<'_>) -> StoreFuture<bool> {
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
            if done.await? == 1 {
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
        StoreFuture::pending(async move {
            Ok(match verdict.await? {
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
