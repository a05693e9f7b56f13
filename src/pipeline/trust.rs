//! Whom tokens may come from: one set of keys and rules, or several issuers,
//! each with its own, chosen by the token's `iss` before any signature work;
//! and what is asked of them at run time (a key after a refetch, an
//! introspection, their rules). Built once, in `build.rs`.

use std::borrow::Cow;
use std::sync::Arc;

use crate::claims::NumericDate;
use crate::error::{AuthError, InvalidToken};
#[cfg(feature = "remote-keys")]
use crate::introspection::{Answer, Introspector};
use crate::keys::{Key, KeySource};
use crate::token::{IssuerRules, JoseHeader, Verifier};

/// How a token is verified: with the keys of the issuer at an index, or by
/// asking.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Route {
    Local(usize),
    #[cfg(feature = "remote-keys")]
    Introspect(Asked),
}

/// Whom a token is sent to for introspection: exactly one issuer (a JWT's
/// own, or the one whose rule takes an opaque token), never each in turn,
/// which would hand one issuer another's live tokens.
#[cfg(feature = "remote-keys")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asked(usize);

/// What an introspection ended with: the issuer that answered, and its answer.
#[cfg(feature = "remote-keys")]
pub(crate) type Introspected = (usize, Arc<Answer>);

/// Keys and the rules a token is checked by.
pub(crate) struct Trusted {
    pub(crate) keys: KeySource,
    /// The rules, as `AuthX::rules` shows them.
    pub(crate) rules: IssuerRules,
    /// The rules, prepared for every request.
    pub(crate) verifier: Verifier,
    /// Its introspection endpoint, for the tokens its keys do not verify.
    #[cfg(feature = "remote-keys")]
    pub(crate) introspection: Option<Introspector>,
    /// The `issuer` label: the configured `iss` among several, else empty.
    #[cfg(feature = "metrics")]
    pub(crate) label: metrics::SharedString,
}

/// Whom tokens may come from: one set of keys and rules, or several issuers,
/// each with its own, chosen by the token's `iss`.
// `One` is the common case, read on every request: boxing it would add a
// pointer chase there to save a few bytes in a value built once.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Trust {
    One(Trusted),
    /// In the configured order, with each one's place by its `iss`.
    #[cfg(feature = "remote-keys")]
    Issuers(Vec<(String, Trusted)>, IssuerIndex),
}

/// Where each configured issuer is, by its `iss`: a token finds its issuer
/// in one lookup however many are configured.
#[cfg(feature = "remote-keys")]
pub(crate) type IssuerIndex = std::collections::HashMap<String, usize>;

impl Trust {
    /// How `token` is checked: with the one set of keys and rules, or with
    /// those of the configured issuer its `iss` names, or by introspection
    /// (a JWT of an issuer that introspects all its tokens; a token that is
    /// not a JWS, where some issuer introspects). A JWS naming any other
    /// `iss` is refused here, before any signature work and without asking
    /// anyone.
    pub(super) fn route(&self, token: &str) -> Result<Route, AuthError> {
        match self {
            Trust::One(_) => {
                let _ = token;
                Ok(Route::Local(0))
            }
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers, index_of) => {
                // Never a call about what no source would have taken.
                if token.len() > issuers[0].1.verifier.max_len() {
                    return Err(InvalidToken::TooLong.into());
                }
                if !crate::token::is_jws(token) {
                    // An opaque token names no issuer: the configured rule
                    // (one issuer, or each its prefix) picks one, or none.
                    let takes = |(_, trusted): &(String, Trusted)| {
                        trusted
                            .introspection
                            .as_ref()
                            .is_some_and(|i| i.takes_opaque(token))
                    };
                    return match issuers.iter().position(takes) {
                        Some(index) => Ok(Route::Introspect(Asked(index))),
                        None => Err(InvalidToken::Malformed(Cow::Borrowed(
                            "not a JWT, and no issuer introspects such a token",
                        ))
                        .into()),
                    };
                }
                let iss = crate::token::unverified_issuer(token)?;
                let index = *iss
                    .and_then(|iss| index_of.get(iss.as_str()))
                    .ok_or(AuthError::InvalidToken(InvalidToken::Issuer))?;
                let all = issuers[index]
                    .1
                    .introspection
                    .as_ref()
                    .is_some_and(Introspector::takes_jwts);
                Ok(if all {
                    Route::Introspect(Asked(index))
                } else {
                    Route::Local(index)
                })
            }
        }
    }

    /// The introspection of the issuer `asked` names (`route` chose one
    /// that introspects).
    #[cfg(feature = "remote-keys")]
    fn introspector(&self, Asked(index): Asked) -> Option<&Introspector> {
        self.get(index).introspection.as_ref()
    }

    /// A cached answer about `token` from the issuer `asked` names.
    #[cfg(feature = "remote-keys")]
    pub(super) fn cached(&self, asked: Asked, token: &str) -> Option<Introspected> {
        let answer = self.introspector(asked)?.cached(token)?;
        Some((asked.0, answer))
    }

    /// Asks the issuer `asked` names about `token`.
    #[cfg(feature = "remote-keys")]
    pub(super) fn introspect(
        &self,
        asked: Asked,
        token: String,
        client: Option<std::net::IpAddr>,
    ) -> IntrospectionFuture {
        let introspector = self.introspector(asked).cloned();
        IntrospectionFuture(Box::pin(async move {
            let Some(introspector) = introspector else {
                return Err(InvalidToken::Inactive.into());
            };
            let answer = introspector.introspect(&token, client).await?;
            Ok((asked.0, answer))
        }))
    }

    /// Each issuer's rules (or our own keys'), with the algorithms of the
    /// keys held now.
    pub(crate) fn rules(&self) -> Vec<IssuerRules> {
        let with_algorithms = |trusted: &Trusted| {
            let mut rules = trusted.rules.clone();
            rules.algorithms = trusted.keys.algorithms();
            rules
        };
        match self {
            Trust::One(trusted) => vec![with_algorithms(trusted)],
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers, _) => issuers
                .iter()
                .map(|(_, trusted)| with_algorithms(trusted))
                .collect(),
        }
    }

    /// Each remote key source's health, named by its issuer (or JWKS URL).
    #[cfg(feature = "remote-keys")]
    pub(crate) fn keys_health(&self) -> Vec<(String, crate::keys::KeysHealth)> {
        let remote = |keys: &KeySource| match keys {
            KeySource::Remote(remote) => Some(remote.clone()),
            KeySource::Local(_) => None,
        };
        match self {
            Trust::One(trusted) => remote(&trusted.keys)
                .map(|r| (r.url().to_string(), r.health()))
                .into_iter()
                .collect(),
            Trust::Issuers(issuers, _) => issuers
                .iter()
                .filter_map(|(iss, trusted)| {
                    remote(&trusted.keys).map(|r| (iss.clone(), r.health()))
                })
                .collect(),
        }
    }

    /// The `issuer` label of the configured issuer at `index`.
    #[cfg(feature = "metrics")]
    pub(crate) fn issuer_label(&self, index: usize) -> metrics::SharedString {
        self.get(index).label.clone()
    }

    /// How many sets of keys and rules there are.
    pub(crate) fn len(&self) -> usize {
        match self {
            Trust::One(_) => 1,
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers, _) => issuers.len(),
        }
    }

    /// The index of the configured issuer `iss` names (of verified claims).
    #[cfg(feature = "metrics")]
    pub(super) fn index_of(&self, iss: Option<&str>) -> Option<usize> {
        match self {
            Trust::One(_) => {
                let _ = iss;
                Some(0)
            }
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers, _) => issuers
                .iter()
                .position(|(known, _)| Some(known.as_str()) == iss),
        }
    }

    pub(super) fn get(&self, index: usize) -> &Trusted {
        match self {
            Trust::One(trusted) => {
                let _ = index;
                trusted
            }
            // `index` came from `route` on this very list.
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers, _) => &issuers[index].1,
        }
    }
}

/// Reading an introspection answer the way its issuer's rules say.
#[cfg(feature = "remote-keys")]
impl Trust {
    /// The claims an introspection answer says, checked as a JWT's are
    /// (types, time, issuer, audience) by its issuer's rules.
    #[cfg(feature = "remote-keys")]
    pub(super) fn introspected<E: serde::de::DeserializeOwned>(
        &self,
        (index, answer): &Introspected,
        now: NumericDate,
    ) -> Result<crate::claims::Claims<E>, InvalidToken> {
        self.get(*index)
            .verifier
            .read_payload(answer.payload(), now)
    }
}

/// The key `kid` names once the keys were refetched. Still missing is the
/// token's fault (401) only when keys fetched after the token was issued
/// lack it; while the issuer is unreachable, or before the rate-limited
/// refetch may see a key it just rotated in, it is 503 with `Retry-After`.
pub(super) fn key_after_fetch<'k>(
    keys: &'k KeySource,
    header: &JoseHeader<'_>,
    token: &str,
    now: NumericDate,
) -> Result<Cow<'k, Arc<Key>>, AuthError> {
    keys.select(header.kid.as_deref(), &header.alg)
        .map_err(|error| match error {
            InvalidToken::UnknownKey
                if keys.not_yet_known(
                    header.kid.as_deref(),
                    crate::token::unverified_issued_at(token, now),
                ) =>
            {
                AuthError::KeysUnavailable {
                    retry_after: keys.retry_after(),
                }
            }
            other => other.into(),
        })
}

/// An introspection under way, to await before the request goes on.
#[cfg(feature = "remote-keys")]
#[must_use = "an introspection does nothing unless awaited"]
pub(crate) struct IntrospectionFuture(
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Introspected, AuthError>> + Send>>,
);

#[cfg(feature = "remote-keys")]
impl std::future::Future for IntrospectionFuture {
    type Output = Result<Introspected, AuthError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}
