//! Taking tokens back. A [`RevocationStore`] remembers revoked tokens (by `jti`)
//! and refresh-token families until the tokens would have expired anyway. The
//! layers consult it only after the signature and claims are verified, so an
//! unauthenticated caller can never make us reach the store.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::claims::NumericDate;

mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use memory::MemoryStore;

/// The store could not answer (unreachable, timed out, full). Guarded routes
/// answer 503 while it lasts (or pass, if configured to fail open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(String);

impl StoreError {
    /// A store error with a message for logs (never shown to clients).
    pub fn new(msg: impl Into<String>) -> Self {
        StoreError(msg.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

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

/// What spending a refresh token found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshUse {
    /// First use: the token is now spent; issue its successor in the same family.
    First,
    /// The token was spent before: a replay. The whole family is now revoked.
    Reused,
    /// The family was revoked earlier (logout, or an earlier replay).
    FamilyRevoked,
}

/// Where revocations and refresh-token families live: in memory
/// ([`MemoryStore`](crate::MemoryStore), the default) or shared by many
/// instances (`RedisStore`, feature `redis`).
///
/// Every entry carries the time after which it no longer matters (the token's
/// own `exp`); stores drop entries after it.
pub trait RevocationStore: Send + Sync + 'static {
    /// Whether the token `jti`, or its refresh `family`, has been revoked.
    fn is_revoked(&self, jti: &str, family: Option<&str>) -> StoreFuture<bool>;

    /// Revokes the token `jti` until `until`.
    fn revoke(&self, jti: &str, until: NumericDate) -> StoreFuture<()>;

    /// Revokes every token of `family` until `until`.
    fn revoke_family(&self, family: &str, until: NumericDate) -> StoreFuture<()>;

    /// Spends refresh token `jti` of `family`, atomically (two instances racing
    /// with the same token: exactly one sees [`RefreshUse::First`]). A reuse
    /// revokes the family until `family_until`.
    fn spend_refresh(
        &self,
        jti: &str,
        family: &str,
        until: NumericDate,
        family_until: NumericDate,
    ) -> StoreFuture<RefreshUse>;
}
