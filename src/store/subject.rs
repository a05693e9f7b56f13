//! One subject's revocation state, and the rules every store follows (the
//! memory store runs them here; the Redis store runs the same rules in Lua,
//! on one hash per subject, and reads its answers back through
//! [`is_revoked`]).
//!
//! A subject holds, each until the tokens concerned have expired:
//! - a revoked token (`jti`), for tokens that belong to no session;
//! - per session, one entry: revoked, or the `jti` of its current refresh token;
//! - at most one cut-off: every token issued until then is revoked.
//!
//! Past `cap` entries a write collapses the subject into the cut-off (the
//! user is logged out everywhere, which is never less safe), so a flood from
//! one account costs that account, and nothing is forgotten.

use std::collections::HashMap;

use super::{RefreshUse, SessionInfo, TokenRecord};
use crate::claims::NumericDate;

/// A session's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Session {
    /// Logged out, or a refresh token was reused.
    Revoked { until: u64 },
    /// Rotating: only the refresh token `jti` may be spent next.
    Current { until: u64, jti: Box<str> },
}

impl Session {
    fn until(&self) -> u64 {
        match self {
            Session::Revoked { until } | Session::Current { until, .. } => *until,
        }
    }
}

/// Every token of the subject issued at or before `issued_until_ms` is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cutoff {
    pub(crate) until: u64,
    pub(crate) issued_until_ms: u64,
}

/// Whether `token` is revoked by these entries, as read at `now` (seconds).
pub(crate) fn is_revoked(
    token: &TokenRecord<'_>,
    revoked_token_until: Option<u64>,
    session: Option<&Session>,
    cutoff: Option<Cutoff>,
    now: u64,
) -> bool {
    revoked_token_until.is_some_and(|until| until > now)
        || matches!(session, Some(Session::Revoked { until }) if *until > now)
        || cutoff.is_some_and(|cut| {
            cut.until > now
                && token
                    .issued_at
                    .is_none_or(|iat| millis(iat) <= cut.issued_until_ms)
        })
}

/// Whole seconds, rounded up: an entry outlives its token by under a second.
pub(crate) fn secs_ceil(date: NumericDate) -> u64 {
    date.as_secs_f64().ceil() as u64
}

pub(crate) fn millis(date: NumericDate) -> u64 {
    (date.as_secs_f64() * 1000.0) as u64
}

/// Says, once per collapse, that a subject's entries became its cut-off.
pub(crate) fn warn_collapsed() {
    tracing::warn!(
        "tower-authx: one subject reached its revocation entry bound; every token it was issued until now is revoked"
    );
}

/// What a write did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Write<T> {
    /// Done, with its answer.
    Done(T),
    /// The subject was at its cap: its entries are now one cut-off.
    Collapsed,
}

/// One subject's entries in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Subject {
    tokens: HashMap<Box<str>, u64>,
    sessions: HashMap<Box<str>, Session>,
    cutoff: Option<Cutoff>,
    /// The listed login sessions, each until its tokens have expired.
    listed: HashMap<Box<str>, (u64, SessionInfo)>,
}

impl Subject {
    /// A subject's entries as read elsewhere (a Redis hash).
    #[cfg(feature = "redis")]
    pub(crate) fn from_entries(
        tokens: impl IntoIterator<Item = (Box<str>, u64)>,
        sessions: impl IntoIterator<Item = (Box<str>, Session)>,
        cutoff: Option<Cutoff>,
    ) -> Subject {
        Subject {
            tokens: tokens.into_iter().collect(),
            sessions: sessions.into_iter().collect(),
            cutoff,
            listed: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
            + self.sessions.len()
            + self.listed.len()
            + usize::from(self.cutoff.is_some())
    }

    pub(crate) fn is_revoked(&self, token: &TokenRecord<'_>, now: u64) -> bool {
        is_revoked(
            token,
            token.jti.and_then(|jti| self.tokens.get(jti)).copied(),
            token.session.and_then(|s| self.sessions.get(s)),
            self.cutoff,
            now,
        )
    }

    /// Drops what has expired.
    pub(crate) fn prune(&mut self, now: u64) {
        self.tokens.retain(|_, until| *until > now);
        self.sessions.retain(|_, s| s.until() > now);
        self.listed.retain(|_, (until, _)| *until > now);
        self.cutoff = self.cutoff.filter(|c| c.until > now);
    }

    /// Lists session `info` until `horizon`.
    pub(crate) fn record(
        &mut self,
        info: &SessionInfo,
        horizon: u64,
        now: u64,
        cap: usize,
    ) -> Write<()> {
        if !self.listed.contains_key(info.id.as_str()) && self.at_cap(now, cap) {
            self.collapse(now, horizon);
            return Write::Collapsed;
        }
        self.listed
            .insert(info.id.as_str().into(), (horizon, info.clone()));
        Write::Done(())
    }

    /// Notes a listed session's refresh.
    pub(crate) fn refreshed(&mut self, id: &str, at: u64, horizon: u64) -> Write<()> {
        if let Some((until, info)) = self.listed.get_mut(id) {
            *until = (*until).max(horizon);
            info.last_refreshed = Some(at);
        }
        Write::Done(())
    }

    /// Adds a listed session read elsewhere (a Redis hash).
    #[cfg(feature = "redis")]
    pub(crate) fn listing(mut self, listed: impl IntoIterator<Item = (u64, SessionInfo)>) -> Self {
        self.listed = listed
            .into_iter()
            .map(|(until, info)| (info.id.as_str().into(), (until, info)))
            .collect();
        self
    }

    /// The listed sessions that live at `now`: not expired, not logged out,
    /// not under the cut-off.
    pub(crate) fn live_sessions(&self, now: u64) -> Vec<SessionInfo> {
        let mut live: Vec<SessionInfo> = self
            .listed
            .values()
            .filter(|(until, info)| {
                let record = TokenRecord {
                    subject: "",
                    jti: None,
                    session: Some(&info.id),
                    issued_at: Some(NumericDate::from_secs(info.created)),
                    expires: NumericDate::from_secs(*until),
                };
                *until > now && !self.is_revoked(&record, now)
            })
            .map(|(_, info)| info.clone())
            .collect();
        live.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        live
    }

    /// Logs out `token`'s session (or the token alone, when it has none).
    pub(crate) fn revoke(
        &mut self,
        token: &TokenRecord<'_>,
        horizon: u64,
        now: u64,
        cap: usize,
    ) -> Write<()> {
        let (known, until) = match (token.session, token.jti) {
            (Some(session), _) => (self.sessions.get(session).map(Session::until), horizon),
            (None, Some(jti)) => (self.tokens.get(jti).copied(), secs_ceil(token.expires)),
            (None, None) => return Write::Done(()),
        };
        if until <= now {
            return Write::Done(()); // already expired: nothing to remember
        }
        if known.is_none() && self.at_cap(now, cap) {
            self.collapse(now, horizon);
            return Write::Collapsed;
        }
        let until = until.max(known.unwrap_or(0));
        match (token.session, token.jti) {
            (Some(session), _) => {
                self.sessions
                    .insert(session.into(), Session::Revoked { until });
            }
            (None, Some(jti)) => {
                self.tokens.insert(jti.into(), until);
            }
            (None, None) => {}
        }
        Write::Done(())
    }

    /// Spends refresh `token` of its session; `next` becomes current.
    pub(crate) fn spend(
        &mut self,
        token: &TokenRecord<'_>,
        session: &str,
        next: &str,
        horizon: u64,
        now: u64,
        cap: usize,
    ) -> Write<RefreshUse> {
        if self.is_revoked(token, now) {
            return Write::Done(RefreshUse::FamilyRevoked);
        }
        let verdict = match self.sessions.get(session).filter(|s| s.until() > now) {
            Some(Session::Revoked { .. }) => return Write::Done(RefreshUse::FamilyRevoked),
            Some(Session::Current { jti, .. }) if Some(&**jti) == token.jti => RefreshUse::First,
            Some(Session::Current { .. }) => RefreshUse::Reused,
            None => RefreshUse::First,
        };
        if !self.sessions.contains_key(session) && self.at_cap(now, cap) {
            self.collapse(now, horizon);
            return Write::Collapsed;
        }
        let entry = match verdict {
            RefreshUse::First => Session::Current {
                until: horizon,
                jti: next.into(),
            },
            _ => Session::Revoked { until: horizon },
        };
        self.sessions.insert(session.into(), entry);
        Write::Done(verdict)
    }

    /// The latest time any entry matters.
    pub(crate) fn until(&self) -> u64 {
        let tokens = self.tokens.values().copied();
        let sessions = self.sessions.values().map(Session::until);
        let listed = self.listed.values().map(|(until, _)| *until);
        let cutoff = self.cutoff.map(|c| c.until);
        tokens
            .chain(sessions)
            .chain(listed)
            .chain(cutoff)
            .max()
            .unwrap_or(0)
    }

    fn at_cap(&mut self, now: u64, cap: usize) -> bool {
        if self.len() < cap {
            return false;
        }
        self.prune(now);
        self.len() >= cap
    }

    /// Replaces every entry with one cut-off that revokes all the subject's
    /// tokens issued until now, and lasts as long as any of them (or of the
    /// entries it replaces) can.
    fn collapse(&mut self, now: u64, horizon: u64) {
        let until = self.until().max(horizon);
        let issued_until_ms = millis(NumericDate::now()).max(now * 1000);
        self.tokens.clear();
        self.sessions.clear();
        self.listed.clear();
        self.cutoff = Some(Cutoff {
            until,
            issued_until_ms,
        });
    }
}
