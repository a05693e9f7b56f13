//! Whom tokens may come from: one set of keys and rules, or several issuers,
//! each with its own, chosen by the token's `iss` before any signature work.

use std::borrow::Cow;
use std::sync::Arc;

use crate::claims::{Claims, Idp, NumericDate, Seal, is_known_claim};
use crate::config::AuthXConfig;
use crate::error::{AuthError, ConfigError, InvalidToken};
use crate::keys::{Key, KeyRing, KeySource};
use crate::token::{JoseHeader, Unverified, Verifier};

/// Keys and the rules a token is checked by.
pub(crate) struct Trusted {
    pub(crate) keys: KeySource,
    pub(crate) verifier: Verifier,
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
    #[cfg(feature = "remote-keys")]
    Issuers(Vec<(String, Trusted)>),
}

impl Trust {
    /// Which keys and rules `token` is checked by: the one set, or those of
    /// the configured issuer its `iss` names. Any other `iss` is refused here,
    /// before any signature work and without fetching anything.
    pub(super) fn for_token(&self, token: &str) -> Result<usize, AuthError> {
        match self {
            Trust::One(_) => {
                let _ = token;
                Ok(0)
            }
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers) => {
                let iss = crate::token::unverified_issuer(token);
                issuers
                    .iter()
                    .position(|(known, _)| Some(known) == iss.as_ref())
                    .ok_or(AuthError::InvalidToken(InvalidToken::Issuer))
            }
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
            Trust::Issuers(issuers) => issuers
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
            Trust::Issuers(issuers) => issuers.len(),
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
            Trust::Issuers(issuers) => issuers
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
            // `index` came from `for_token` on this very list.
            #[cfg(feature = "remote-keys")]
            Trust::Issuers(issuers) => &issuers[index].1,
        }
    }
}

/// Verifying a token the way its issuer's keys and rules say.
impl Trust {
    /// Verifies `token` with the keys held now; a key not held comes back as
    /// the keys and rules to fetch it for, with the token's header.
    fn verify_held<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: NumericDate,
    ) -> Result<Result<Claims<E>, (&Trusted, JoseHeader<'static>)>, AuthError> {
        let trusted = self.get(self.for_token(token)?);
        let select = |kid: Option<&str>, alg: &str| trusted.keys.select(kid, alg);
        match trusted.verifier.verify(token, now, select) {
            Ok(claims) => Ok(Ok(*claims)),
            Err(Unverified::Invalid(error)) => Err(error.into()),
            Err(Unverified::KeyMissing(header)) => Ok(Err((trusted, header))),
        }
    }

    pub(super) fn verify_now<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: NumericDate,
    ) -> Result<Claims<E>, AuthError> {
        self.verify_held(token, now)?
            .map_err(|_| InvalidToken::UnknownKey.into())
    }

    /// [`verify_now`](Self::verify_now), awaiting one refetch of a remote
    /// issuer's keys when the token names a key not held yet.
    pub(super) async fn verify_fetching<E: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: NumericDate,
    ) -> Result<Claims<E>, AuthError> {
        let (trusted, header) = match self.verify_held(token, now)? {
            Ok(claims) => return Ok(claims),
            Err(missing) => missing,
        };
        let Some(fetch) = trusted.keys.refetch(header.kid.as_deref()) else {
            return Err(InvalidToken::UnknownKey.into());
        };
        fetch.await;
        let now = NumericDate::now();
        let key = key_after_fetch(&trusted.keys, &header, token, now)?;
        Ok(*trusted.verifier.verify_with(token, &header, &key, now)?)
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
                if keys.not_yet_known(crate::token::unverified_issued_at(token, now)) =>
            {
                AuthError::KeysUnavailable {
                    retry_after: keys.retry_after(),
                }
            }
            other => other.into(),
        })
}

/// Whom a verify-only configuration trusts must be said, once: a JWKS may
/// serve many issuers, and settings that would be silently dropped are errors.
#[cfg(feature = "remote-keys")]
pub(crate) fn check_trust(config: &AuthXConfig) -> Result<(), ConfigError> {
    if config.by_issuers {
        if config.issuers.is_empty() {
            return Err(ConfigError::new("from_issuers needs at least one Issuer"));
        }
        if config.issuer.is_some() || !config.audience.is_empty() {
            return Err(ConfigError::new(
                "with from_issuers, set the audience on each Issuer (Issuer::audience); \
                 AuthXConfig::issuer and AuthXConfig::audience would be ignored",
            ));
        }
        if config.any_issuer {
            return Err(ConfigError::new(
                "danger_accept_any_issuer contradicts from_issuers, which names the issuers",
            ));
        }
        for (i, issuer) in config.issuers.iter().enumerate() {
            if config.issuers[..i]
                .iter()
                .any(|other| other.iss == issuer.iss)
            {
                return Err(ConfigError::new(format!(
                    "two issuers share the iss {:?}: one would shadow the other",
                    issuer.iss
                )));
            }
        }
    } else if config.any_issuer {
        if config.remote.is_none() {
            return Err(ConfigError::new(
                "danger_accept_any_issuer applies to from_jwks only",
            ));
        }
        if config.issuer.is_some() {
            return Err(ConfigError::new(
                "danger_accept_any_issuer contradicts AuthXConfig::issuer",
            ));
        }
    } else if config.remote.is_some() && config.issuer.is_none() {
        return Err(ConfigError::new(
            "a JWKS may serve many issuers (every tenant of a multi-tenant identity provider): \
             name the one whose tokens you accept with AuthXConfig::issuer, or opt out with \
             AuthXConfig::danger_accept_any_issuer",
        ));
    }
    Ok(())
}

/// Claim paths that can be read: each names something, and none starts at a
/// claim the reader takes as its own (`scope` is read as scopes).
fn check_paths(idp: Option<&Idp>) -> Result<(), ConfigError> {
    for path in idp.map_or(&[][..], Idp::paths) {
        if path.names().is_empty() || path.names().iter().any(String::is_empty) {
            return Err(ConfigError::new(format!(
                "the claim path {path:?} has an empty name"
            )));
        }
        if is_known_claim(path.root()) {
            return Err(ConfigError::new(format!(
                "the claim path {path} starts at '{}', which is read as a claim of its own \
                 (require scopes for scope, scp and scopes)",
                path.root()
            )));
        }
    }
    Ok(())
}

/// A protected resource takes only tokens issued for it (RFC 8707): makes
/// `resource` every token's required audience, where an audience configured
/// otherwise is an error, not a second door. Returns the issuers, for the
/// metadata's `authorization_servers`.
pub(crate) fn audience_is_resource(
    config: &mut AuthXConfig,
    resource: &str,
) -> Result<Vec<String>, ConfigError> {
    let only_resource = |audience: &mut Vec<String>, whose: &str| {
        if audience.iter().any(|aud| aud != resource) {
            return Err(ConfigError::new(format!(
                "{whose} names an audience other than the protected resource {resource:?}: \
                 a protected resource takes only tokens issued for it (RFC 8707)"
            )));
        }
        *audience = vec![resource.to_owned()];
        Ok(())
    };
    #[cfg(feature = "remote-keys")]
    if config.by_issuers {
        let mut issuers = Vec::new();
        for issuer in &mut config.issuers {
            only_resource(
                &mut issuer.audience,
                &format!("the issuer {:?}", issuer.iss),
            )?;
            issuers.push(issuer.iss.clone());
        }
        return Ok(issuers);
    }
    only_resource(&mut config.audience, "AuthXConfig::audience")?;
    Ok(config.issuer.iter().cloned().collect())
}

impl Trust {
    /// Whom `config` trusts, each with its keys and rules; every verifier's
    /// claims marked with `seal`. Takes the issuers and remote keys out of
    /// `config`.
    pub(crate) fn from_config(config: &mut AuthXConfig, seal: Seal) -> Result<Trust, ConfigError> {
        let verifier =
            |issuer: Option<String>, audience: Vec<String>, leeway, idp: &Option<Idp>| {
                Verifier::new(
                    seal,
                    leeway,
                    issuer,
                    audience,
                    config.max_token_len,
                    config.max_token_lifetime,
                    config.verified_cache.filter(|c| *c > 0),
                )
                .reading_permissions(idp.as_ref().map_or(&[][..], Idp::paths))
            };
        check_paths(config.permissions.as_ref())?;
        #[cfg(feature = "remote-keys")]
        if config.by_issuers {
            let issuers = std::mem::take(&mut config.issuers);
            return Ok(Trust::Issuers(
                issuers
                    .into_iter()
                    .map(|issuer| {
                        check_paths(issuer.permissions.as_ref())?;
                        let leeway = issuer.leeway.unwrap_or(config.leeway);
                        // An issuer's own Idp, else the configuration's.
                        let idp = issuer.permissions.or_else(|| config.permissions.clone());
                        let rules =
                            verifier(Some(issuer.iss.clone()), issuer.audience, leeway, &idp);
                        let trusted = Trusted {
                            keys: KeySource::Remote(issuer.keys),
                            verifier: rules,
                            #[cfg(feature = "metrics")]
                            label: issuer.iss.clone().into(),
                        };
                        Ok((issuer.iss, trusted))
                    })
                    .collect::<Result<_, ConfigError>>()?,
            ));
        }
        #[cfg(feature = "remote-keys")]
        let remote = config.remote.take();
        #[cfg(not(feature = "remote-keys"))]
        let remote: Option<std::convert::Infallible> = None;
        let keys = match remote {
            #[cfg(feature = "remote-keys")]
            Some(remote) => KeySource::Remote(remote),
            #[cfg(not(feature = "remote-keys"))]
            Some(never) => match never {},
            None => KeySource::Local(Arc::new(KeyRing::new(&config.keys)?)),
        };
        Ok(Trust::One(Trusted {
            keys,
            verifier: verifier(
                config.issuer.clone(),
                config.audience.clone(),
                config.leeway,
                &config.permissions,
            ),
            #[cfg(feature = "metrics")]
            label: metrics::SharedString::const_str(""),
        }))
    }
}
