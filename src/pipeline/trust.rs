//! Whom tokens may come from: one set of keys and rules, or several issuers,
//! each with its own, chosen by the token's `iss` before any signature work.

use std::borrow::Cow;
use std::sync::Arc;

use crate::claims::{Idp, NumericDate, Seal, is_known_claim};
use crate::config::AuthXConfig;
use crate::error::{AuthError, ConfigError, InvalidToken};
#[cfg(feature = "remote-keys")]
use crate::introspection::{Answer, Introspector};
use crate::keys::{Key, KeyRing, KeySource};
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
                let iss = crate::token::unverified_issuer(token);
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
        check_opaque_routes(&config.issuers)?;
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

/// An opaque token names no issuer, so it must go to exactly one: with
/// several issuers introspecting opaque tokens, each says which (a prefix),
/// and no prefix may take another's tokens.
#[cfg(feature = "remote-keys")]
fn check_opaque_routes(issuers: &[crate::issuer::Issuer]) -> Result<(), ConfigError> {
    let opaque: Vec<(&str, Option<&str>)> = issuers
        .iter()
        .filter_map(|issuer| {
            let introspection = issuer.introspection.as_ref()?;
            introspection
                .takes_opaque_tokens()
                .then_some((issuer.iss.as_str(), introspection.opaque_prefix.as_deref()))
        })
        .collect();
    if opaque.len() < 2 {
        return Ok(());
    }
    if let Some((iss, _)) = opaque
        .iter()
        .find(|(_, prefix)| prefix.is_none_or(str::is_empty))
    {
        return Err(ConfigError::new(format!(
            "several issuers introspect opaque tokens, which name no issuer: say which are whose \
             with Introspection::opaque_tokens_prefixed (the issuer {iss:?} has no prefix), or \
             let all but one introspect only their JWTs (IntrospectedTokens::Jwts); a token is \
             never sent to each in turn"
        )));
    }
    for (i, (iss, prefix)) in opaque.iter().enumerate() {
        for (other, other_prefix) in &opaque[..i] {
            let (a, b) = (prefix.unwrap_or_default(), other_prefix.unwrap_or_default());
            if a.starts_with(b) || b.starts_with(a) {
                return Err(ConfigError::new(format!(
                    "the opaque-token prefixes of {other:?} ({b:?}) and {iss:?} ({a:?}) overlap: \
                     a token could be either's"
                )));
            }
        }
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
        // One issuer's rules: its own where it has them, else the configuration's.
        let rules = |issuer: Option<String>, audiences: Vec<String>, leeway, idp: Option<Idp>| {
            let mut rules = IssuerRules::new(issuer, audiences, config.max_token_len);
            rules.leeway = leeway;
            rules.max_lifetime = config.max_token_lifetime;
            rules.permissions = idp;
            rules.verified_cache = config.verified_cache.filter(|c| *c > 0);
            rules.dpop = config.dpop.is_some();
            rules.dpop_required = config.dpop.as_ref().is_some_and(|d| d.is_required());
            rules
        };
        check_paths(config.permissions.as_ref())?;
        #[cfg(feature = "remote-keys")]
        if config.by_issuers {
            let issuers = std::mem::take(&mut config.issuers);
            let issuers: Vec<(String, Trusted)> = issuers
                .into_iter()
                .map(|issuer| {
                    check_paths(issuer.permissions.as_ref())?;
                    let leeway = issuer.leeway.unwrap_or(config.leeway);
                    // An issuer's own Idp, else the configuration's.
                    let idp = issuer.permissions.or_else(|| config.permissions.clone());
                    let audience = issuer.audience.clone();
                    let mut rules = rules(Some(issuer.iss.clone()), audience, leeway, idp);
                    // Another issuer's scopes are opaque strings unless
                    // its operator says they are namespaced AuthX's way.
                    rules.scope_wildcards = issuer.scope_wildcards;
                    rules.at_jwt_only = issuer.require_at_jwt;
                    rules.introspected = issuer.introspection.is_some();
                    let introspection = issuer
                        .introspection
                        .map(|introspection| {
                            Introspector::new(
                                introspection,
                                &issuer.iss,
                                issuer.introspection_endpoint.as_deref(),
                                issuer.keys.http_client(),
                                KeySource::Remote(issuer.keys.clone()),
                                &issuer.audience,
                            )
                        })
                        .transpose()?;
                    let trusted = Trusted {
                        keys: KeySource::Remote(issuer.keys),
                        verifier: Verifier::new(seal, &rules, false),
                        rules,
                        introspection,
                        #[cfg(feature = "metrics")]
                        label: issuer.iss.clone().into(),
                    };
                    Ok((issuer.iss, trusted))
                })
                .collect::<Result<_, ConfigError>>()?;
            let mut index = IssuerIndex::with_capacity(issuers.len());
            for (at, (iss, _)) in issuers.iter().enumerate() {
                index.entry(iss.clone()).or_insert(at);
            }
            return Ok(Trust::Issuers(issuers, index));
        }
        #[cfg(feature = "remote-keys")]
        let remote = config.remote.take();
        #[cfg(not(feature = "remote-keys"))]
        let remote: Option<std::convert::Infallible> = None;
        // Our own keys sign AuthX's `scopes` with its wildcards; a JWKS's
        // issuer is another party, whose scopes are matched exactly.
        let (keys, own_keys) = match remote {
            #[cfg(feature = "remote-keys")]
            Some(remote) => (KeySource::Remote(remote), false),
            #[cfg(not(feature = "remote-keys"))]
            Some(never) => match never {},
            None => (
                KeySource::Local(Arc::new(KeyRing::new(&config.keys)?)),
                true,
            ),
        };
        let mut rules = rules(
            config.issuer.clone(),
            config.audience.clone(),
            config.leeway,
            config.permissions.clone(),
        );
        rules.scope_wildcards = own_keys;
        rules.at_jwt_only = config.require_at_jwt;
        Ok(Trust::One(Trusted {
            keys,
            #[cfg(feature = "remote-keys")]
            introspection: None,
            verifier: Verifier::new(seal, &rules, own_keys),
            rules,
            #[cfg(feature = "metrics")]
            label: metrics::SharedString::const_str(""),
        }))
    }
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
