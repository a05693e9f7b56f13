//! The configuration compiled once, by `AuthX::new`: whom tokens may come
//! from (`Trust`, each issuer with its rules and its verifier), and every
//! check of the settings that decide it, each naming the setting and the fix.

use std::sync::Arc;

#[cfg(feature = "remote-keys")]
use super::trust::IssuerIndex;
use super::trust::{Trust, Trusted};
use crate::claims::{Idp, Seal, is_known_claim};
use crate::config::AuthXConfig;
use crate::error::ConfigError;
#[cfg(feature = "remote-keys")]
use crate::introspection::Introspector;
use crate::keys::{KeyRing, KeySource};
use crate::token::{IssuerRules, Verifier};

/// Every setting checked before anything is built from them, each refusal
/// naming the setting and the fix; and every setting that weakens a check
/// said once, loudly.
pub(crate) fn check_settings(config: &AuthXConfig) -> Result<(), ConfigError> {
    let dangers = config.dangers();
    if !dangers.is_empty() {
        tracing::warn!(
            settings = ?dangers,
            "tower-authx: built with settings that weaken its checks"
        );
    }
    for key in config.keys.all().filter(|k| k.weak_secret) {
        if !config.allow_weak_secret {
            return Err(ConfigError::new(format!(
                "the {} secret is shorter than the algorithm's output size (RFC 7518 3.2); \
                 use a longer random secret, or opt in with AuthXConfig::danger_allow_weak_secret()",
                key.alg
            )));
        }
        tracing::warn!(alg = %key.alg, "tower-authx: using an HMAC secret too short to be safe");
    }
    #[cfg(feature = "remote-keys")]
    check_trust(config)?;
    if config.max_token_len == 0 {
        return Err(ConfigError::new(
            "AuthXConfig::max_token_len(0) would refuse every token: give the longest token to \
             read, in bytes (default DEFAULT_MAX_TOKEN_LEN)",
        ));
    }
    if config.header_type.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            "AuthXConfig::header_type must be one auth-scheme (visible ASCII, no space), \
             such as \"Bearer\", or empty for a bare token",
        ));
    }
    if let Some(max) = config.max_token_lifetime
        && (config.access_lifetime > max || config.refresh_lifetime > max)
    {
        return Err(ConfigError::new(
            "AuthXConfig::access_token_lifetime and refresh_token_lifetime must fit \
             max_token_lifetime: lengthen max_token_lifetime or shorten them (our own tokens \
             would be refused)",
        ));
    }
    if config.locations.is_empty() {
        return Err(ConfigError::new(
            "AuthXConfig::token_location([]) leaves no place to find a token: name at least \
             one (TokenLocation::Headers is the default)",
        ));
    }
    config.cookies.validate()?;
    if config.query_name.is_empty() {
        return Err(ConfigError::new(
            "AuthXConfig::query_param(\"\") names no query parameter: give one (default \
             \"token\")",
        ));
    }
    Ok(())
}

/// Whom a verify-only configuration trusts must be said, once: a JWKS may
/// serve many issuers, and settings that would be silently dropped are errors.
#[cfg(feature = "remote-keys")]
fn check_trust(config: &AuthXConfig) -> Result<(), ConfigError> {
    if config.by_issuers {
        if config.issuers.is_empty() {
            return Err(ConfigError::new(
                "AuthXConfig::from_issuers([]) trusts nobody: give at least one Issuer",
            ));
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

/// A protected resource takes only tokens issued for it (RFC 8707): an
/// audience configured otherwise is an error, not a second door (`Trust`
/// then requires `resource` of every token). Returns the issuers, for the
/// metadata's `authorization_servers`.
pub(crate) fn audience_is_resource(
    config: &AuthXConfig,
    resource: &str,
) -> Result<Vec<String>, ConfigError> {
    let only_resource = |audience: &[String], whose: &str| {
        if audience.iter().any(|aud| aud != resource) {
            return Err(ConfigError::new(format!(
                "{whose} names an audience other than the protected resource {resource:?}: \
                 a protected resource takes only tokens issued for it (RFC 8707)"
            )));
        }
        Ok(())
    };
    #[cfg(feature = "remote-keys")]
    if config.by_issuers {
        let mut issuers = Vec::new();
        for issuer in &config.issuers {
            only_resource(&issuer.audience, &format!("the issuer {:?}", issuer.iss))?;
            issuers.push(issuer.iss.clone());
        }
        return Ok(issuers);
    }
    only_resource(&config.audience, "AuthXConfig::audience")?;
    Ok(config.issuer.iter().cloned().collect())
}

impl Trust {
    /// Whom `config` trusts, each with its keys and rules; every verifier's
    /// claims marked with `seal`. `dpop`: whether DPoP is taken, and then
    /// whether it is required (the configuration's DPoP settings are already
    /// compiled by then); `resource`: the protected resource every token must
    /// be issued for, in place of the configured audiences (checked by
    /// `audience_is_resource`).
    pub(crate) fn from_config(
        config: &AuthXConfig,
        seal: Seal,
        dpop: Option<bool>,
        resource: Option<&str>,
    ) -> Result<Trust, ConfigError> {
        // One issuer's rules: its own where it has them, else the configuration's.
        let rules = |issuer: Option<String>, audiences: &[String], leeway, idp: Option<Idp>| {
            let audiences = match resource {
                Some(resource) => vec![resource.to_owned()],
                None => audiences.to_vec(),
            };
            let mut rules = IssuerRules::new(issuer, audiences, config.max_token_len);
            rules.leeway = leeway;
            rules.max_lifetime = config.max_token_lifetime;
            rules.permissions = idp;
            rules.verified_cache = config.verified_cache.filter(|c| *c > 0);
            rules.dpop = dpop.is_some();
            rules.dpop_required = dpop == Some(true);
            rules
        };
        check_paths(config.permissions.as_ref())?;
        #[cfg(feature = "remote-keys")]
        if config.by_issuers {
            let issuers: Vec<(String, Trusted)> = config
                .issuers
                .iter()
                .map(|issuer| {
                    check_paths(issuer.permissions.as_ref())?;
                    let leeway = issuer.leeway.unwrap_or(config.leeway);
                    // An issuer's own Idp, else the configuration's.
                    let idp = issuer
                        .permissions
                        .clone()
                        .or_else(|| config.permissions.clone());
                    let mut rules = rules(Some(issuer.iss.clone()), &issuer.audience, leeway, idp);
                    // Another issuer's scopes are opaque strings unless
                    // its operator says they are namespaced AuthX's way.
                    rules.scope_wildcards = issuer.scope_wildcards;
                    rules.at_jwt_only = issuer.require_at_jwt;
                    rules.introspected = issuer.introspection.is_some();
                    let introspection = issuer
                        .introspection
                        .clone()
                        .map(|introspection| {
                            Introspector::new(
                                introspection,
                                &issuer.iss,
                                issuer.introspection_endpoint.as_deref(),
                                issuer.keys.http_client(),
                                KeySource::Remote(issuer.keys.clone()),
                                &rules.audiences,
                            )
                        })
                        .transpose()?;
                    let trusted = Trusted {
                        keys: KeySource::Remote(issuer.keys.clone()),
                        verifier: Verifier::new(seal, &rules, false),
                        rules,
                        introspection,
                        #[cfg(feature = "metrics")]
                        label: issuer.iss.clone().into(),
                    };
                    Ok((issuer.iss.clone(), trusted))
                })
                .collect::<Result<_, ConfigError>>()?;
            let mut index = IssuerIndex::with_capacity(issuers.len());
            for (at, (iss, _)) in issuers.iter().enumerate() {
                index.entry(iss.clone()).or_insert(at);
            }
            return Ok(Trust::Issuers(issuers, index));
        }
        #[cfg(feature = "remote-keys")]
        let remote = config.remote.clone();
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
            &config.audience,
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
