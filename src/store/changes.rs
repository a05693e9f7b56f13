//! Where a store says that a subject's revocations changed, for what in this
//! process listens: the open streams that end with their credential look
//! again at that subject's streams only, instead of asking the store about
//! every stream on a timer.

use std::sync::{RwLock, Weak};

/// What changed.
#[cfg_attr(not(feature = "streams"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change<'a> {
    /// Something of this subject was revoked (or may have been).
    Subject(&'a str),
    /// Anything may have changed: announcements may have been missed (the
    /// Redis feed was down).
    Everything,
}

/// Told of every change a store announces.
pub(crate) trait Listener: Send + Sync {
    fn changed(&self, change: Change<'_>);
}

/// A store's announcements of revocations, to this process's open streams
/// ([`EndWithCredentialLayer`](crate::layer::EndWithCredentialLayer)): a
/// store that writes a revocation says whose. [`MemoryStore`](crate::MemoryStore)
/// announces its own writes; `RedisStore` every instance's, through its
/// feed. A store of your own that keeps one and announces each write from
/// [`RevocationStore::changes`](crate::RevocationStore::changes) ends open
/// streams on revocation too.
#[derive(Default)]
pub struct RevocationChanges {
    listeners: RwLock<Vec<Weak<dyn Listener>>>,
}

impl std::fmt::Debug for RevocationChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationChanges")
            .field("listeners", &self.read().len())
            .finish()
    }
}

impl RevocationChanges {
    /// Something of `subject` was revoked: its token, a session, or all of it.
    pub fn announce(&self, subject: &str) {
        self.tell(Change::Subject(subject));
    }

    /// Anything may have been revoked (announcements were missed): every
    /// open stream is looked at again.
    pub fn announce_all(&self) {
        self.tell(Change::Everything);
    }

    #[cfg(feature = "streams")]
    pub(crate) fn listen(&self, listener: Weak<dyn Listener>) {
        let mut listeners = self.listeners.write().unwrap_or_else(|e| e.into_inner());
        listeners.retain(|l| l.strong_count() > 0);
        listeners.push(listener);
    }

    fn tell(&self, change: Change<'_>) {
        for listener in self.read().iter().filter_map(Weak::upgrade) {
            listener.changed(change);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Weak<dyn Listener>>> {
        self.listeners.read().unwrap_or_else(|e| e.into_inner())
    }
}
