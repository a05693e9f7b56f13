//! Where verification keys come from: our own key set, or an issuer's JWKS.
//! A token's key is there at once, or (a remote `kid` we do not hold yet) after
//! a [`KeyFuture`]: one rate-limited refetch.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{Key, KeyRing};
use crate::error::InvalidToken;

/// Our verification keys, or an issuer's.
#[derive(Clone)]
pub(crate) enum KeySource {
    Local(Arc<KeyRing>),
    #[cfg(feature = "remote-keys")]
    Remote(super::RemoteJwks),
}

impl KeySource {
    /// The key `kid` names (or the default key), as held now: our own keys
    /// borrowed (no reference count touched by every request on every core),
    /// an issuer's counted (its keys may be replaced while the request runs).
    pub(crate) fn select(&self, kid: Option<&str>) -> Result<Cow<'_, Arc<Key>>, InvalidToken> {
        match self {
            KeySource::Local(ring) => ring.select(kid).map(Cow::Borrowed),
            #[cfg(feature = "remote-keys")]
            KeySource::Remote(remote) => remote.ring().select(kid).cloned().map(Cow::Owned),
        }
    }

    /// When `kid` names no key held now and the keys are remote: the refetch
    /// to await before selecting again (rate-limited: most of these return at
    /// once without fetching).
    pub(crate) fn refetch(&self, kid: Option<&str>) -> Option<KeyFuture> {
        match self {
            KeySource::Local(_) => {
                let _ = kid;
                None
            }
            #[cfg(feature = "remote-keys")]
            KeySource::Remote(remote) => {
                Some(KeyFuture(remote.refetch_for(kid.map(str::to_owned))))
            }
        }
    }

    /// Whether a key still missing after a refetch is not (yet) the token's
    /// fault: the issuer could not be reached, or no fetch has happened since
    /// the token was issued (`iat`, when the token says), so a key the issuer
    /// rotated in may simply not have been seen yet.
    pub(crate) fn not_yet_known(&self, issued_at: Option<f64>) -> bool {
        match self {
            KeySource::Local(_) => {
                let _ = issued_at;
                false
            }
            #[cfg(feature = "remote-keys")]
            KeySource::Remote(remote) => {
                remote.unavailable() || issued_at.is_some_and(|iat| !remote.fetched_after(iat))
            }
        }
    }
}

/// A refetch of an issuer's keys, to await before selecting a token's key again.
#[must_use = "a refetch does nothing unless awaited"]
pub(crate) struct KeyFuture(Pin<Box<dyn Future<Output = ()> + Send>>);

impl Future for KeyFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}
