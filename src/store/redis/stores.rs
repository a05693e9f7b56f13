//! The two contracts the Redis store keeps: revocations and refresh
//! sessions ([`RevocationStore`]) and the DPoP proofs already used
//! ([`ReplayStore`]), with the local view's reads.

use std::collections::HashMap;
use std::sync::Arc;

use super::command::Command;
use super::policy::NEAR_MAXMEMORY;
use super::scripts::{parse_cutoff, parse_session, parse_until};
use super::view::{LocalView, listing_of, subject_of};
use super::{RedisStore, now_secs};
use crate::claims::NumericDate;
use crate::store::subject::{self, millis, secs_ceil, warn_collapsed};
use crate::store::{
    ProofUse, RefreshUse, ReplayStore, RevocationChanges, RevocationStore, SessionInfo, StoreError,
    StoreFuture, TokenRecord,
};

impl RedisStore {
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

    /// Runs a write script on `subject`'s hash that answers 0 (done) or 1
    /// (the subject was at its bound and collapsed into its cut-off), then
    /// drops the subject from this instance's view.
    fn logged_write(&self, command: Command, subject: &str) -> StoreFuture<()> {
        let done = self.run::<u8>(command);
        let changed = self.changed(subject);
        StoreFuture::pending(async move {
            let collapsed = done.await? == 1;
            changed();
            if collapsed {
                warn_collapsed();
            }
            Ok(())
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
            self.policy.proofs_line().to_string(),
        ];
        let answer = self.run::<i64>(Command::Check(self.scripts.first_use.clone(), key, args));
        StoreFuture::pending(async move {
            match answer.await? {
                1 => Ok(true),
                0 => Ok(false),
                3 => Err(StoreError::new(NEAR_MAXMEMORY)),
                _ => Err(StoreError::over_limit(
                    "too many live DPoP proofs for one account or key",
                )),
            }
        })
    }
}

impl RevocationStore for RedisStore {
    fn changes(&self) -> Option<&RevocationChanges> {
        Some(self.announcements())
    }

    fn is_revoked(&self, token: &TokenRecord<'_>) -> StoreFuture<bool> {
        if let Some(view) = self.view() {
            if let Some(subject) = view
                .get(token.subject)
                .filter(|_| self.policy.view_may_answer())
            {
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
        self.logged_write(command, token.subject)
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

    fn record_session(
        &self,
        subject: &str,
        session: &SessionInfo,
        horizon: NumericDate,
    ) -> StoreFuture<()> {
        let json = match serde_json::to_string(session) {
            Ok(json) => json,
            Err(e) => return StoreFuture::ready(Err(StoreError::new(e.to_string()))),
        };
        let command = self.write(
            &self.scripts.record_session,
            subject,
            horizon,
            [format!("m:{}", session.id), json],
        );
        self.logged_write(command, subject)
    }

    fn session_refreshed(
        &self,
        subject: &str,
        id: &str,
        at: u64,
        horizon: NumericDate,
    ) -> StoreFuture<()> {
        let command = self.write(
            &self.scripts.session_refreshed,
            subject,
            horizon,
            [format!("m:{id}"), at.to_string()],
        );
        self.logged_write(command, subject)
    }

    fn sessions(&self, subject: &str) -> StoreFuture<Vec<SessionInfo>> {
        let read = self.run::<HashMap<String, String>>(Command::Plain(
            redis::cmd("HGETALL").arg(self.key(subject)).clone(),
        ));
        StoreFuture::pending(async move { Ok(listing_of(read.await?).live_sessions(now_secs())) })
    }
}
