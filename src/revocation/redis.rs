//! [`RedisStore`] (feature `redis`): revocations and refresh families shared by
//! every instance through Redis, each key expiring with the token it concerns.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{RefreshUse, RevocationStore, StoreError, StoreFuture};
use crate::claims::NumericDate;

/// Spends a refresh token atomically: the family's revocation, the spent
/// marker and the reuse verdict in one step, whichever instance runs it.
const SPEND_REFRESH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
if redis.call('SET', KEYS[2], '1', 'NX', 'EXAT', ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], '1', 'EXAT', ARGV[2])
return 1
";

/// A store in Redis, for services on many machines: a logout on one instance is
/// refused on all, and survives restarts. One multiplexed connection, reused by
/// every request and re-established by itself after Redis comes back; commands
/// time out (one second by default) so an unreachable Redis is a quick 503.
///
/// Keys: `<prefix>jti:<jti>`, `<prefix>fam:<family>`, `<prefix>spent:<jti>`, each
/// with `EXAT` at the token's own expiry.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    spend: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
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
            spend: redis::Script::new(SPEND_REFRESH),
        })
    }

    /// Replaces the key prefix (default `authx:`), to share one Redis between services.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn set_until(&self, key: String, until: NumericDate) -> StoreFuture<()> {
        let at = until.as_secs_f64().ceil() as u64;
        if at <= NumericDate::now().as_secs_f64() as u64 {
            return StoreFuture::ready(Ok(()));
        }
        let mut command = redis::cmd("SET");
        command.arg(key).arg(1).arg("EXAT").arg(at);
        StoreFuture::pending(query::<()>(command, self.connection.clone()))
    }
}

fn store_error(e: redis::RedisError) -> StoreError {
    StoreError::new(e.to_string())
}

/// Whether a second attempt can succeed: the connection dropped (Redis restarted)
/// and the manager has reconnected meanwhile.
fn worth_retrying(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error()
}

/// Runs `command`, once more after a dropped connection, so the first request
/// after an outage does not fail.
async fn query<T: redis::FromRedisValue>(
    command: redis::Cmd,
    mut connection: ConnectionManager,
) -> Result<T, StoreError> {
    match command.query_async(&mut connection).await {
        Err(e) if worth_retrying(&e) => command
            .query_async(&mut connection)
            .await
            .map_err(store_error),
        other => other.map_err(store_error),
    }
}

impl RevocationStore for RedisStore {
    fn is_revoked(&self, jti: &str, family: Option<&str>) -> StoreFuture<bool> {
        let mut command = redis::cmd("EXISTS");
        command.arg(self.key("jti", jti));
        if let Some(family) = family {
            command.arg(self.key("fam", family));
        }
        let found = query::<u64>(command, self.connection.clone());
        StoreFuture::pending(async move { Ok(found.await? > 0) })
    }

    fn revoke(&self, jti: &str, until: NumericDate) -> StoreFuture<()> {
        self.set_until(self.key("jti", jti), until)
    }

    fn revoke_family(&self, family: &str, until: NumericDate) -> StoreFuture<()> {
        self.set_until(self.key("fam", family), until)
    }

    fn spend_refresh(
        &self,
        jti: &str,
        family: &str,
        until: NumericDate,
        family_until: NumericDate,
    ) -> StoreFuture<RefreshUse> {
        let now = NumericDate::now().as_secs_f64() as u64;
        let until = (until.as_secs_f64().ceil() as u64).max(now + 1);
        let family_until = (family_until.as_secs_f64().ceil() as u64).max(now + 1);
        let (family_key, spent_key) = (self.key("fam", family), self.key("spent", jti));
        let script = self.spend.clone();
        let mut connection = self.connection.clone();
        StoreFuture::pending(async move {
            let mut invocation = script.key(family_key);
            invocation.key(spent_key).arg(until).arg(family_until);
            let verdict: u8 = match invocation.invoke_async(&mut connection).await {
                Err(e) if worth_retrying(&e) => invocation.invoke_async(&mut connection).await,
                other => other,
            }
            .map_err(store_error)?;
            Ok(match verdict {
                0 => RefreshUse::First,
                1 => RefreshUse::Reused,
                _ => RefreshUse::FamilyRevoked,
            })
        })
    }
}
