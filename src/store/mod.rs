//! What guarded requests ask last, after everything local: the stores, in
//! memory or shared by every instance through Redis ([`StoreFuture`] is their
//! answer, ready at once or later).
//!
//! Taking tokens back: a [`RevocationStore`] remembers logged-out sessions,
//! revoked tokens and where each refresh-token session stands, until the tokens
//! concerned would have expired anyway. The layers consult it only after the
//! signature and claims are verified, so an unauthenticated caller can never
//! make us reach the store.
//!
//! What one user can make a store hold is bounded (see [`subject`]): one entry
//! per login session, however often it rotates, and a cap per subject beyond
//! which the subject's entries collapse into one "everything issued until now
//! is revoked" cut-off. A flood from one account costs that account its
//! sessions, never anyone else's correctness.
//!
//! Proofs used once: a [`ReplayStore`] remembers DPoP proofs while they could
//! be accepted (see `replay.rs`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::claims::{Claims, NumericDate};

mod changes;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod replay;
mod subject;

#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_VIEW_CAPACITY, RedisStore};
pub use changes::RevocationChanges;
#[cfg(feature = "streams")]
pub(crate) use changes::{Change, Listener};
pub use memory::MemoryStore;
pub use replay::{
    DEFAULT_PROOFS_PER_KEY, DEFAULT_PROOFS_PER_SUBJECT, DEFAULT_REPLAY_CAPACITY, MemoryReplay,
    ProofUse, ReplayStore,
};

/// How many entries one subject may hold in a store by default before they
/// collapse into a subject-wide cut-off.
pub const DEFAULT_ENTRIES_PER_SUBJECT: usize = 1000;

/// The store could not answer (unreachable, timed out, full, unsafe to use).
/// Guarded routes answer 503 while it lasts (or pass, if configured to fail
/// open); a replay store's refusal of one flooding client
/// ([`over_limit`](Self::over_limit)) answers that client 429.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    message: String,
    over_limit: bool,
}

impl StoreError {
    /// A store error with a message for logs (never shown to clients).
    pub fn new(msg: impl Into<String>) -> Self {
        StoreError {
            message: msg.into(),
            over_limit: false,
        }
    }

    /// A replay store refuses one client (its key or account holds as many
    /// live proofs as it may): that client is answered 429, nobody else is
    /// affected, and the "store down" alert does not fire.
    pub fn over_limit(msg: impl Into<String>) -> Self {
        StoreError {
            message: msg.into(),
            over_limit: true,
        }
    }

    /// Whether this is one client's limit rather than the store's failure.
    pub fn is_over_limit(&self) -> bool {
        self.over_limit
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store: {}", self.message)
    }
}

impl std::error::Error for StoreError {}

/// What a store is told of a verified token: whose it is, which session it
/// belongs to, when it was issued and until when it matters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenRecord<'a> {
    /// `sub`: every entry belongs to a subject, and is bounded per subject.
    pub subject: &'a str,
    /// `jti`.
    pub jti: Option<&'a str>,
    /// The login session (`fam`, the refresh-token family).
    pub session: Option<&'a str>,
    /// `iat`; a token without one is taken to be as old as any cut-off.
    pub issued_at: Option<NumericDate>,
    /// `exp`.
    pub expires: NumericDate,
}

impl<'a> TokenRecord<'a> {
    /// The record of verified `claims`.
    pub fn of<E>(claims: &'a Claims<E>) -> Self {
        TokenRecord {
            subject: &claims.sub,
            jti: claims.jti.as_deref(),
            session: claims.fam.as_deref(),
            issued_at: claims.iat,
            expires: claims.exp,
        }
    }

    /// The session a refresh token rotates in: its `fam`, or for tokens from
    /// elsewhere (AuthX) that carry none, the token itself.
    pub fn rotation_session(&self) -> Option<&'a str> {
        self.session.or(self.jti)
    }
}

/// A store's answer: ready at once (an in-memory store, no allocation) or
/// later (a network store, boxed).
#[must_use = "a store answer does nothing unless awaited"]
pub struct StoreFuture<T> {
    kind: Kind<T>,
}

enum Kind<T> {
    Ready(Option<Result<T, StoreError>>),
    Pending(Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>),
}

impl<T> StoreFuture<T> {
    /// An answer known now.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        StoreFuture {
            kind: Kind::Ready(Some(result)),
        }
    }

    /// An answer that comes later.
    pub fn pending(future: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Self {
        StoreFuture {
            kind: Kind::Pending(Box::pin(future)),
        }
    }

    /// The answer if it is known without waiting.
    pub(crate) fn now_or_later(self) -> Result<Result<T, StoreError>, Self> {
        match self.kind {
            Kind::Ready(Some(result)) => Ok(result),
            kind => Err(StoreFuture { kind }),
        }
    }
}

// The value is only ever moved out, never pinned.
impl<T> Unpin for StoreFuture<T> {}

impl<T> Future for StoreFuture<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Ready(result) => Poll::Ready(
                result
                    .take()
                    .unwrap_or_else(|| Err(StoreError::new("answer polled twice"))),
            ),
            Kind::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.kind {
            Kind::Ready(_) => "ready",
            Kind::Pending(_) => "pending",
        };
        f.debug_struct("StoreFuture")
            .field("state", &state)
            .finish()
    }
}

/// A login session as a store lists it (AuthX's `SessionInfo`): its id (the
/// tokens' `fam`), when it began and was last refreshed (Unix seconds), and
/// the user agent and address the application recorded at login.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's id: its tokens' `fam`.
    pub id: String,
    /// When the login happened (Unix seconds).
    pub created: u64,
    /// When its refresh token was last rotated (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refreshed: Option<u64>,
    /// The login request's `User-Agent`, as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The login request's client address, as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl SessionInfo {
    /// A session `id` that began at `created` (Unix seconds).
    pub fn new(id: impl Into<String>, created: u64) -> Self {
        SessionInfo {
            id: id.into(),
            created,
            last_refreshed: None,
            user_agent: None,
            ip: None,
        }
    }

    /// With the login's user agent and client address.
    #[must_use]
    pub fn seen_from(mut self, user_agent: Option<String>, ip: Option<String>) -> Self {
        self.user_agent = user_agent;
        self.ip = ip;
        self
    }
}

/// What spending a refresh token found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshUse {
    /// The session's current refresh token: it is now spent, and the one named
    /// `next` is the session's current one.
    First,
    /// Not the session's current refresh token: a replay. The whole session is
    /// now revoked.
    Reused,
    /// The session was revoked earlier (logout, an earlier replay, or the
    /// subject's cut-off).
    FamilyRevoked,
}

/// Where revocations and refresh-token sessions live: in memory
/// ([`MemoryStore`](crate::MemoryStore), the default) or shared by many
/// instances (`RedisStore`, feature `redis`).
///
/// Every entry belongs to a subject and ends when the tokens it concerns have
/// expired. A store keeps at most one entry per session (a session that
/// rotates a thousand times still has one), and a bounded number per subject:
/// past the bound it replaces the subject's entries with one cut-off that
/// revokes every token of the subject issued until then. Nothing revoked is
/// ever forgotten early.
pub trait RevocationStore: Send + Sync + 'static {
    /// Whether `token` was revoked: itself, its session, or by its subject's
    /// cut-off.
    fn is_revoked(&self, token: &TokenRecord<'_>) -> StoreFuture<bool>;

    /// Revokes `token`'s session until `horizon` (when every token of the
    /// session has expired), or the token alone until its `exp` when it
    /// belongs to no session: a logout.
    fn revoke(&self, token: &TokenRecord<'_>, horizon: NumericDate) -> StoreFuture<()>;

    /// Spends refresh `token`, atomically (two instances racing with the same
    /// token: exactly one sees [`RefreshUse::First`]). The token must be its
    /// session's current one (or the session's first rotation); then `next`
    /// (the successor's `jti`) becomes current until `horizon`. Any other
    /// refresh token of the session is a reuse and revokes the session.
    fn spend_refresh(
        &self,
        token: &TokenRecord<'_>,
        next: &str,
        horizon: NumericDate,
    ) -> StoreFuture<RefreshUse>;

    /// Lists a new login session of `subject` until `horizon`, as one more
    /// of its entries (so bounded as they are). A store that keeps no list
    /// refuses.
    fn record_session(
        &self,
        subject: &str,
        session: &SessionInfo,
        horizon: NumericDate,
    ) -> StoreFuture<()> {
        let _ = (subject, session, horizon);
        StoreFuture::ready(Err(StoreError::new("this store keeps no list of sessions")))
    }

    /// Notes that session `id` of `subject` was refreshed at `at` (Unix
    /// seconds) and now lasts until `horizon`; nothing for a session not
    /// listed.
    fn session_refreshed(
        &self,
        subject: &str,
        id: &str,
        at: u64,
        horizon: NumericDate,
    ) -> StoreFuture<()> {
        let _ = (subject, id, at, horizon);
        StoreFuture::ready(Ok(()))
    }

    /// The listed sessions of `subject` that still live: not logged out,
    /// not revoked by a cut-off, not expired.
    fn sessions(&self, subject: &str) -> StoreFuture<Vec<SessionInfo>> {
        let _ = subject;
        StoreFuture::ready(Err(StoreError::new("this store keeps no list of sessions")))
    }

    /// Where this store announces revocations to this process's open
    /// streams, started if it needs to be (asked once per `AuthX`, inside a
    /// tokio runtime, when its first stream layer is built or its first
    /// stream opens). `None` (the default): an open stream ends at its
    /// credential's expiry only, never on revocation.
    fn changes(&self) -> Option<&RevocationChanges> {
        None
    }
}
