//! The first half of every entry point, written once: a presented token's
//! claims, read by its issuer's rules (its keys, or its introspection), or
//! what they wait for. The entry points differ only in how they wait: the
//! layers keep a [`Pending`](super::Pending) and poll it, `verify` and
//! `authenticate` await it, and `verify_offline` refuses what would need a
//! wait (it fetches nothing).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::trust::Route;
#[cfg(feature = "remote-keys")]
use super::trust::{Asked, Introspected, IntrospectionFuture};
use super::{Pipeline, Presented, trust};
use crate::claims::{Claims, NumericDate};
#[cfg(feature = "remote-keys")]
use crate::dpop::check_scheme;
use crate::error::{AuthError, InvalidToken};
use crate::keys::KeyFuture;
use crate::observe::Notes;
use crate::token::{JoseHeader, Unverified};

/// A token's claims, or what reading them waits for.
// Not boxed: the claims go into the request's extensions, which box them
// once; a box here would be a second allocation on every request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Read<E> {
    Claims(Claims<E>),
    Waits(Wait),
}

/// What reading a token's claims waits for, and the wait itself.
pub(crate) enum Wait {
    /// Its issuer's keys, refetched for the key its header names.
    Keys {
        issuer: usize,
        header: JoseHeader<'static>,
        fetch: KeyFuture,
    },
    /// Its issuer's answer about it (an opaque token, or an issuer that
    /// introspects all its tokens).
    #[cfg(feature = "remote-keys")]
    Introspection(IntrospectionFuture),
}

/// What a wait ended with.
pub(crate) enum Waited {
    Keys,
    #[cfg(feature = "remote-keys")]
    Introspection(Introspected),
}

impl Wait {
    /// Waits; a failed introspection is the request's refusal.
    pub(crate) fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<Result<Waited, AuthError>> {
        match self {
            Wait::Keys { fetch, .. } => {
                ready!(Pin::new(fetch).poll(cx));
                Poll::Ready(Ok(Waited::Keys))
            }
            #[cfg(feature = "remote-keys")]
            Wait::Introspection(call) => {
                Poll::Ready(ready!(Pin::new(call).poll(cx)).map(Waited::Introspection))
            }
        }
    }

    /// What an entry point that cannot wait answers instead: a key not held
    /// is unknown (401), an answer not cached is not at hand (503).
    fn refusal(&self) -> AuthError {
        match self {
            Wait::Keys { .. } => InvalidToken::UnknownKey.into(),
            #[cfg(feature = "remote-keys")]
            Wait::Introspection(_) => AuthError::IntrospectionUnavailable {
                retry_after: std::time::Duration::from_secs(1),
            },
        }
    }
}

impl Pipeline {
    /// Reads `presented`'s claims with what is at hand: routed to its
    /// issuer before any signature work, verified with the keys held (a key
    /// not held: the refetch to wait for), or read from a cached answer of
    /// its issuer's introspection (none: the call to wait for, once what can
    /// be refused without it is). `extensions` are the request's, whose
    /// client address takes its share of the introspection budget.
    pub(super) fn read<E: serde::de::DeserializeOwned>(
        &self,
        presented: Presented<'_>,
        extensions: Option<&http::Extensions>,
        now: NumericDate,
        notes: &Notes,
    ) -> Result<Read<E>, AuthError> {
        let token = presented.token;
        // Only one way without `remote-keys`.
        #[cfg_attr(
            not(feature = "remote-keys"),
            allow(clippy::infallible_destructuring_match)
        )]
        let issuer = match self.trust.route(token)? {
            Route::Local(issuer) => issuer,
            #[cfg(feature = "remote-keys")]
            Route::Introspect(asked) => {
                let client = crate::request::client_of(extensions);
                return self.read_introspected(asked, presented, client, now, notes);
            }
        };
        let _ = extensions;
        notes.issuer(issuer);
        let trusted = self.trust.get(issuer);
        let select = |kid: Option<&str>, alg: &str| {
            let key = trusted.keys.select(kid, alg);
            if let Ok(key) = &key {
                notes.key(key);
            }
            key
        };
        match trusted.verifier.verify::<E>(token, now, select) {
            Ok(claims) => Ok(Read::Claims(claims)),
            Err(Unverified::Invalid(error)) => Err(error.into()),
            Err(Unverified::KeyMissing(header)) => {
                match trusted.keys.refetch(header.kid.as_deref()) {
                    Some(fetch) => Ok(Read::Waits(Wait::Keys {
                        issuer,
                        header,
                        fetch,
                    })),
                    None => Err(InvalidToken::UnknownKey.into()),
                }
            }
        }
    }

    /// A token its issuer is asked about: a cached answer read now, else the
    /// call (what is refused locally is, before it: a bearer token where
    /// DPoP is required).
    #[cfg(feature = "remote-keys")]
    fn read_introspected<E: serde::de::DeserializeOwned>(
        &self,
        asked: Asked,
        presented: Presented<'_>,
        client: Option<std::net::IpAddr>,
        now: NumericDate,
        notes: &Notes,
    ) -> Result<Read<E>, AuthError> {
        match self.trust.cached(asked, presented.token) {
            Some(introspected) => {
                notes.issuer(introspected.0);
                Ok(Read::Claims(self.trust.introspected(&introspected, now)?))
            }
            None => {
                let required = self.dpop.as_ref().is_some_and(|d| d.required);
                check_scheme(required, presented.dpop)?;
                let call = self
                    .trust
                    .introspect(asked, presented.token.to_owned(), client);
                Ok(Read::Waits(Wait::Introspection(call)))
            }
        }
    }

    /// The claims once `wait` ended: the token verified with the key now
    /// held (still missing: 401 or 503, see `key_after_fetch`), or read from
    /// its issuer's answer.
    pub(super) fn read_after<E: serde::de::DeserializeOwned>(
        &self,
        wait: &Wait,
        waited: Waited,
        token: &str,
        notes: &Notes,
    ) -> Result<Claims<E>, AuthError> {
        let now = NumericDate::now();
        match (wait, waited) {
            (Wait::Keys { issuer, header, .. }, Waited::Keys) => {
                let trusted = self.trust.get(*issuer);
                let key = trust::key_after_fetch(&trusted.keys, header, token, now)?;
                notes.key(&key);
                Ok(trusted
                    .verifier
                    .verify_with::<E>(token, header, &key, now)?)
            }
            #[cfg(feature = "remote-keys")]
            (_, Waited::Introspection(introspected)) => {
                notes.issuer(introspected.0);
                Ok(self.trust.introspected(&introspected, now)?)
            }
            #[cfg(feature = "remote-keys")]
            (Wait::Introspection(_), Waited::Keys) => Err(InvalidToken::UnknownKey.into()),
        }
    }

    /// [`read`](Self::read), awaiting what it waits for (`verify`,
    /// `authenticate`). No span here, so nothing is noted; and no `Notes`
    /// (not `Sync`) is held across the wait, so the future is `Send`.
    pub(super) async fn read_waiting<E: serde::de::DeserializeOwned>(
        &self,
        presented: Presented<'_>,
        extensions: Option<&http::Extensions>,
        now: NumericDate,
    ) -> Result<Claims<E>, AuthError> {
        let read = self.read(presented, extensions, now, &Notes::default())?;
        match read {
            Read::Claims(claims) => Ok(claims),
            Read::Waits(mut wait) => {
                let waited = std::future::poll_fn(|cx| wait.poll_wait(cx)).await?;
                self.read_after(&wait, waited, presented.token, &Notes::default())
            }
        }
    }

    /// [`read`](Self::read) without waiting: what would need a wait is
    /// refused (`verify_offline`, and the claims of tokens this AuthX issued).
    pub(super) fn read_now<E: serde::de::DeserializeOwned>(
        &self,
        presented: Presented<'_>,
        now: NumericDate,
    ) -> Result<Claims<E>, AuthError> {
        match self.read(presented, None, now, &Notes::default())? {
            Read::Claims(claims) => Ok(claims),
            Read::Waits(wait) => Err(wait.refusal()),
        }
    }
}
