//! The write scripts: each touches one subject's hash (one key, so one slot
//! of a cluster), atomically, and announces the change on the store's channel;
//! and the hash's entries read back as they write them.

use crate::store::subject::{Cutoff, Session};

/// Helpers every write script starts with; the last argument of every write
/// is the channel that announces the change. A subject's hash holds
/// `t:<jti>` = `<until>` (a revoked token), `s:<session>` = `<until>` (revoked)
/// or `<until>:<jti>` (its current refresh token), and `cut` =
/// `<until>:<issued until, ms>`.
pub(super) const PRELUDE: &str = r"
local key, now, now_ms = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local cap, horizon = tonumber(ARGV[3]), tonumber(ARGV[4])
-- Every instance's local view drops what it kept of this key. Subscribers
-- read the key only after this script ends (Redis runs one at a time, and
-- the key lives on this very node), so they read what the script wrote.
redis.call('PUBLISH', ARGV[#ARGV], key)
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
pub(super) const REVOKE: &str = r"
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
pub(super) const SPEND: &str = r"
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

/// A login session listed: ARGV[5] its field, ARGV[6] its JSON. 0 done, 1
/// collapsed (the subject was at its bound).
pub(super) const RECORD_SESSION: &str = r"
local field = ARGV[5]
local old = redis.call('HGET', key, field)
if not old and at_cap() then collapse() return 1 end
redis.call('HSET', key, field, string.format('%d', horizon) .. ':' .. ARGV[6])
keep(horizon)
return 0
";

/// A listed session refreshed: ARGV[5] its field, ARGV[6] when (Unix
/// seconds). Nothing for a session not listed.
pub(super) const SESSION_REFRESHED: &str = r"
local field = ARGV[5]
local old = redis.call('HGET', key, field)
if not old then return 0 end
local info = cjson.decode(string.match(old, '^%d+:(.*)$'))
info['last_refreshed'] = tonumber(ARGV[6])
local untl = math.max(horizon, until_of(old))
redis.call('HSET', key, field, string.format('%d', untl) .. ':' .. cjson.encode(info))
keep(untl)
return 0
";

/// A DPoP proof's first use, bounded per owner (the account its token speaks
/// for, or its key when it has no token): KEYS[1] the owner's sorted set of
/// live proof ids scored by expiry (ms), ARGV[1] the id, ARGV[2] now (ms),
/// ARGV[3] the proof's expiry (ms), ARGV[4] the owner's bound, ARGV[5] the
/// share of `maxmemory` past which proofs are refused (0: not checked here,
/// the node being far from it). 1 first use, 0 a replay, 2 over the owner's
/// bound, 3 the node past that share. Expired ids are dropped first, so
/// the set holds only proofs that could still be replayed; the key expires
/// with its last proof.
pub(super) const FIRST_USE: &str = r"
local key, id = KEYS[1], ARGV[1]
local now_ms, expires_ms, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
if redis.call('ZSCORE', key, id) then return 0 end
if redis.call('ZCARD', key) >= cap then return 2 end
local line = tonumber(ARGV[5])
if line > 0 then
  local info = redis.call('INFO', 'memory')
  local used = tonumber(string.match(info, 'used_memory:(%d+)'))
  local max = tonumber(string.match(info, 'maxmemory:(%d+)'))
  if max > 0 and used >= line * max then return 3 end
end
redis.call('ZADD', key, expires_ms, id)
if redis.call('PTTL', key) < expires_ms - now_ms then redis.call('PEXPIREAT', key, expires_ms) end
return 1
";

pub(super) fn parse_until(value: &str) -> Option<u64> {
    value.split(':').next()?.parse().ok()
}

pub(super) fn parse_session(value: &str) -> Option<Session> {
    let until = parse_until(value)?;
    Some(match value.split_once(':') {
        Some((_, jti)) => Session::Current {
            until,
            jti: jti.into(),
        },
        None => Session::Revoked { until },
    })
}

pub(super) fn parse_cutoff(value: &str) -> Option<Cutoff> {
    let (until, ms) = value.split_once(':')?;
    Some(Cutoff {
        until: until.parse().ok()?,
        issued_until_ms: ms.parse().ok()?,
    })
}

/// A listed session's entry: until when, and what was recorded.
pub(super) fn parse_listed(value: &str) -> Option<(u64, crate::store::SessionInfo)> {
    let (until, json) = value.split_once(':')?;
    Some((until.parse().ok()?, serde_json::from_str(json).ok()?))
}
