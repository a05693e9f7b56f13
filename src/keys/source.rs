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
    /// A token without `kid` under an issuer's keys takes the one key that
    /// serves its `alg`; with none or several, it is refused at once (keys are
    /// at hand: fetching again would not tell which).
    ///
    /// [`InvalidToken::UnknownKey`] means a refetch may help: only a `kid` we
    /// do not hold, or no keys held at all yet.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: &str,
    ) -> Result<Cow<'_, Arc<Key>>, InvalidToken> {
        match self {
            KeySource::Local(ring) => {
                let _ = alg;
                ring.select(kid).map(Cow::Borrowed)
            }
            #[cfg(feature = "remote-keys")]
            KeySource::Remote(remote) => {
                let ring = remote.ring();
                match kid {
                    None if ring.len() > 1 => ring.serving(alg),
                    _ => ring.select(kid),
                }
                .cloned()
                .map(Cow::Owned)
            }
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

    /// Whether a key `kid` still missing after a refetch is not (yet) the
    /// token's fault: the issuer could not be reached, or no fetch has
    /// happened since the token was issued (`iat`, when the token says), so a
    /// key the issuer rotated in may simply not have been seen yet. Once a
    /// fetch has answered without a `kid` a token named before it, that
    /// `kid` is the token's fault until the next fetch.
    pub(crate) fn not_yet_known(&self, kid: Option<&str>, issued_at: Option<f64>) -> bool {
        match self {
            KeySource::Local(_) => {
                let _ = (kid, issued_at);
                false
            }
            #[cfg(feature = "remote-keys")]
            KeySource::Remote(remote) => {
                remote.unavailable()
                    || (!remote.missed(kid)
                        && issued_at.is_some_and(|iat| !remote.fetched_after(iat)))
            }
        }
    }
}

impl KeySource {
    /// The algorithms of the keys held now.
    pub(crate) fn algorithms(&self) -> Vec<super::Algorithm> {
        match self {
            KeySource::Local(ring) => ring.algorithms(),
            #[cfg(feature = "remote-keys")]
            KeySource::Remote(remote) => remote.ring().algorithms(),
        }
    }

    /// When a token refused because its key is not known yet is worth
    /// sending again: when the refetch that decides may run (whole seconds,
    /// at least one). Our own keys never change: one second.
    pub(crate) fn retry_after(&self) -> std::time::Duration {
        let wait = match self {
            KeySource::Local(_) => std::time::Duration::ZERO,
            #[cfg(feature = "remote-keys")]
            KeySource::Remote(remote) => remote.next_fetch_in(),
        };
        std::time::Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            .max(std::time::Duration::from_secs(1))
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
