//! The claim set on the wire: AuthX 1.7's names and types, read strictly.
//!
//! Reading is strict on purpose: a claim of the wrong JSON type is refused, never
//! coerced (`"fresh": "true"` is not fresh, `"sub": 5` is not a subject), `null` is
//! refused for every claim we know, and a member named twice is refused (RFC 7519 4:
//! either refuse or take the last; taking the last lets a forger hide a value).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

mod paths;
mod wire;

pub use paths::{ClaimPath, Idp, Permissions};
pub(crate) use wire::{ClaimsSeed, is_known_claim};

/// The verified claims of a token, as AuthX and flask-jwt-extended write them.
///
/// `E` is your own claim type, flattened at the top level of the payload (AuthX's
/// `data=`). The default, [`NoExtra`], ignores anything else and costs nothing.
///
/// The layers put a `Claims<E>` into the request's extensions once the token is
/// verified; read it with `req.extensions().get::<Claims>()`, or, with the
/// `axum` feature, take it as a handler argument. Without that feature axum
/// reports the handler as not implementing `Handler<_, _>`: turn it on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Claims<E = NoExtra> {
    /// The subject: who the token speaks for (AuthX's `uid`). A client's
    /// own token speaks for that client, not for a user: see
    /// [`is_client`](Self::is_client).
    pub sub: String,
    /// The token's unique id (a UUID v4 when we issue it); the revocation key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `access` or `refresh`. A token without `type` is an access token, as in both
    /// Python libraries.
    #[serde(rename = "type")]
    pub token_type: TokenType,
    /// Freshness as written in the token (access tokens only). Whether a token
    /// is fresh now is [`is_fresh`](Self::is_fresh)'s answer: it also reads a
    /// dated `fresh` and `auth_time` within `fresh_max_age`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh: Option<Fresh>,
    /// The value a cookie-borne token's CSRF header must repeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<NumericDate>,
    /// Expiry: always present in a verified token.
    pub exp: NumericDate,
    /// Not before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<NumericDate>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: one string or a list, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// AuthX's scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// OAuth's `scope` (RFC 9068, RFC 8693): one space-separated string, as
    /// Auth0, Keycloak and Okta write it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `scp`: Entra's space-separated string or Okta's list, read as a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scp: Option<Vec<String>>,
    /// When the user last typed credentials (OpenID Connect; RFC 9470).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<NumericDate>,
    /// The login session (refresh-token family) the token belongs to, for
    /// rotation with reuse detection and for logging a session out at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// `cnf` (RFC 7800): the key the token is bound to, for DPoP (RFC 9449)
    /// the thumbprint `jkt`. A bound token is accepted only with a proof of
    /// that key, never as a bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// `act` (RFC 8693 4.1): who acts for the subject (a service that
    /// exchanged the subject's token), and through whom, nested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// How strongly the user authenticated (OpenID Connect `acr`; RFC 9470).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// How the user authenticated (RFC 8176 `amr`: `pwd`, `otp`, `mfa`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The roles, groups or permissions read from the issuer's [`Idp`] claim
    /// paths ([`permissions`](Self::permissions)); never written.
    #[serde(skip)]
    pub(crate) permissions: Permissions,
    /// Your own claims.
    #[serde(flatten)]
    pub extra: E,
    /// Which `AuthX` verified these claims (none for claims read or built any
    /// other way): sessions are rotated and revoked only from claims that a
    /// token proved, never from a claim set made of a request body.
    #[serde(skip)]
    pub(crate) verified_by: Seal,
    /// No user is behind the token (see [`is_client`](Self::is_client)).
    #[serde(skip)]
    pub(crate) client: bool,
}

/// Where a granted scope ending in `:*` covers its namespace (AuthX's
/// wildcard). Elsewhere a scope is an opaque string that an identity
/// provider, or a user's consent, may grant under any name, matched exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Wildcards {
    /// Nowhere: every scope is matched exactly.
    #[default]
    None,
    /// In AuthX's own `scopes` claim (tokens of our own keys).
    AuthxScopes,
    /// In every scope claim (an issuer whose operator opted in by name).
    #[cfg_attr(not(feature = "remote-keys"), allow(dead_code))]
    Every,
}

/// The mark of the `AuthX` that verified a claim set, and how its issuer's
/// scopes read. Private: only this crate's verification sets it. Two claim
/// sets that say the same are equal whoever verified them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Seal {
    by: Option<u64>,
    /// Where a granted `ns:*` is AuthX's wildcard, as the verifier's issuer
    /// says (exact matching for claims read any other way).
    pub(crate) wildcards: Wildcards,
    /// A guard of that `AuthX` admitted them for a request, every stage and
    /// store included: an inner guard of the same `AuthX` reuses them.
    admitted: bool,
    /// How long after `auth_time` that `AuthX` counts a login as fresh.
    fresh_max_age: Option<Duration>,
}

impl Seal {
    /// Claims verified by the `AuthX` whose pipeline is `id`, which counts
    /// a login as fresh for `fresh_max_age` after its `auth_time`.
    pub(crate) const fn of(id: u64, fresh_max_age: Option<Duration>) -> Seal {
        Seal {
            by: Some(id),
            wildcards: Wildcards::None,
            admitted: false,
            fresh_max_age,
        }
    }

    /// The same mark, for an issuer whose scopes read `wildcards`' way.
    pub(crate) const fn reading(self, wildcards: Wildcards) -> Seal {
        Seal { wildcards, ..self }
    }

    /// Whether the `AuthX` whose pipeline is `id` verified them.
    pub(crate) fn is(self, id: u64) -> bool {
        self.by == Some(id)
    }

    /// The same mark, once a guard admitted the claims for a request.
    pub(crate) const fn admitted(self) -> Seal {
        Seal {
            admitted: true,
            ..self
        }
    }

    /// Whether a guard of the `AuthX` whose pipeline is `id` admitted them.
    pub(crate) fn admitted_by(self, id: u64) -> bool {
        self.admitted && self.is(id)
    }
}

impl PartialEq for Seal {
    fn eq(&self, _: &Seal) -> bool {
        true
    }
}

impl<E> Claims<E> {
    /// Claims that say only who (`sub`), what (`token_type`) and when
    /// (`iat`, `exp`), with `extra`; no guard's mark. Made by the crate
    /// (tokens it issues, test claims), never read from a token.
    pub(crate) fn bare(
        sub: String,
        token_type: TokenType,
        iat: NumericDate,
        exp: NumericDate,
        extra: E,
    ) -> Claims<E> {
        Claims {
            sub,
            jti: None,
            token_type,
            fresh: None,
            csrf: None,
            iat: Some(iat),
            exp,
            nbf: None,
            iss: None,
            aud: None,
            scopes: None,
            scope: None,
            scp: None,
            auth_time: None,
            fam: None,
            cnf: None,
            act: None,
            acr: None,
            amr: None,
            permissions: Default::default(),
            extra,
            verified_by: Default::default(),
            client: false,
        }
    }

    /// Whether the token proves a recent login now: `"fresh": true`, a
    /// `"fresh"` NumericDate not yet past, or an `auth_time` within the
    /// `fresh_max_age` of the `AuthX` that verified it. Claims read any other
    /// way (built by hand, deserialized) count only what they say.
    pub fn is_fresh(&self) -> bool {
        self.is_fresh_at(NumericDate::now(), self.verified_by.fresh_max_age)
    }

    /// Whether the token proves a recent login at `now`: `"fresh": true`, a
    /// `"fresh"` NumericDate not yet past, or an `auth_time` within `max_age`.
    pub(crate) fn is_fresh_at(&self, now: NumericDate, max_age: Option<Duration>) -> bool {
        match self.fresh {
            Some(Fresh::Bool(true)) => return true,
            Some(Fresh::Until(until)) if now.0 < until.0 => return true,
            _ => {}
        }
        match (self.auth_time, max_age) {
            (Some(at), Some(max_age)) => now.0 - at.0 <= max_age.as_secs_f64(),
            _ => false,
        }
    }

    /// Whether the token carries every scope in `required`. In AuthX's own
    /// `scopes` claim of a token our keys verified, a granted scope ending in
    /// `:*` grants its namespace and everything below it (AuthX's wildcard:
    /// `admin:*` grants `admin` and `admin:users:read`); other issuers'
    /// scopes are matched exactly unless their
    /// [`Issuer::scope_wildcards`](crate::Issuer::scope_wildcards) says otherwise.
    pub fn has_scopes<S: AsRef<str>>(&self, required: &[S]) -> bool {
        required.iter().all(|r| self.has_scope(r.as_ref()))
    }

    /// Whether no user is behind the token: a client's own token (the client
    /// credentials grant), whose `sub` is its client id (RFC 9068 2.2:
    /// `sub` equal to `client_id`, Okta's `cid`; an introspection answer
    /// without `sub`) or whose claims say so (Auth0's `gty:
    /// client-credentials`, Entra's `idtyp: app`). Its `sub` names a client,
    /// which may have chosen an id equal to a user's name: the user routes
    /// ([`LoadUserLayer`](crate::layer::LoadUserLayer), the sessions a user
    /// sees and ends) refuse it unless they say they accept clients.
    pub fn is_client(&self) -> bool {
        self.client
    }

    /// The roles, groups or permissions of the token, read from the claim
    /// paths of its issuer's [`Idp`] (empty without one).
    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    /// Every scope the token grants: AuthX's `scopes`, OAuth's `scope` and `scp`.
    pub fn granted_scopes(&self) -> impl Iterator<Item = &str> {
        self.scope_claims().iter()
    }

    /// The three scope claims, apart from the claims type.
    pub(crate) fn scope_claims(&self) -> ScopeClaims<'_> {
        ScopeClaims {
            scopes: self.scopes.as_deref(),
            scope: self.scope.as_deref(),
            scp: self.scp.as_deref(),
            wildcards: self.verified_by.wildcards,
        }
    }

    /// Whether the token carries `required` (in any of its scope claims),
    /// directly or through a wildcard.
    pub fn has_scope(&self, required: &str) -> bool {
        self.scope_claims().covers(required)
    }
}

/// A token's scope claims: AuthX's `scopes`, OAuth's `scope`, `scp`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScopeClaims<'a> {
    scopes: Option<&'a [String]>,
    scope: Option<&'a str>,
    scp: Option<&'a [String]>,
    wildcards: Wildcards,
}

impl<'a> ScopeClaims<'a> {
    /// Every scope they grant.
    pub(crate) fn iter(self) -> impl Iterator<Item = &'a str> {
        let scopes = self.scopes.into_iter().flatten().map(String::as_str);
        let scope = self.scope.into_iter().flat_map(str::split_ascii_whitespace);
        let scp = self.scp.into_iter().flatten().map(String::as_str);
        scopes.chain(scope).chain(scp)
    }

    /// Whether they grant `required`, directly or through a wildcard where
    /// their issuer's wildcards apply.
    pub(crate) fn covers(self, required: &str) -> bool {
        let mut authx = self.scopes.into_iter().flatten().map(String::as_str);
        let mut oauth = (ScopeClaims {
            scopes: None,
            ..self
        })
        .iter();
        match self.wildcards {
            Wildcards::None => self.iter().any(|granted| granted == required),
            Wildcards::AuthxScopes => {
                authx.any(|granted| scope_covers(granted, required))
                    || oauth.any(|granted| granted == required)
            }
            Wildcards::Every => self.iter().any(|granted| scope_covers(granted, required)),
        }
    }
}

/// Whether a granted scope covers a required one: equal, or a granted `ns:*`
/// covering `ns` and everything below it (AuthX's wildcard).
fn scope_covers(granted: &str, required: &str) -> bool {
    granted == required
        || granted.strip_suffix(":*").is_some_and(|namespace| {
            required == namespace
                || required
                    .strip_prefix(namespace)
                    .is_some_and(|rest| rest.starts_with(':'))
        })
}

/// The `type` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TokenType {
    /// Sent with each request.
    Access,
    /// Traded for a new access token.
    Refresh,
}

impl TokenType {
    /// The claim's value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `fresh` claim: AuthX writes a boolean, flask-jwt-extended may write a
/// NumericDate until which the token counts as fresh.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Fresh {
    /// `true` at login, `false` at refresh.
    Bool(bool),
    /// Fresh until this instant.
    Until(NumericDate),
}

/// Seconds since the Unix epoch (RFC 7519 2). Integers and fractions are both read
/// (AuthX writes `exp` with microseconds); negative, infinite or absurd values are
/// refused. We write whole seconds, which every JWT library reads.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct NumericDate(f64);

/// Year 9999: anything later is not a date but an attempt at overflow.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

impl NumericDate {
    /// The current time (with `test-util`, the test clock's: see
    /// [`testing`](crate::testing)).
    pub fn now() -> Self {
        #[cfg(feature = "test-util")]
        return NumericDate::from_system_time(crate::clock::now());
        #[cfg(not(feature = "test-util"))]
        NumericDate::from_system_time(SystemTime::now())
    }

    /// From a `SystemTime` (instants before 1970 become 0).
    pub fn from_system_time(t: SystemTime) -> Self {
        NumericDate(
            t.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        )
    }

    /// From whole seconds since the epoch.
    pub fn from_secs(secs: u64) -> Self {
        NumericDate((secs as f64).min(MAX_NUMERIC_DATE))
    }

    /// Seconds since the epoch, with any fraction.
    pub fn as_secs_f64(self) -> f64 {
        self.0
    }

    /// This instant moved `d` later.
    pub fn plus(self, d: Duration) -> Self {
        NumericDate((self.0 + d.as_secs_f64()).min(MAX_NUMERIC_DATE))
    }

    /// From seconds with a fraction, clamped to the dates we accept.
    pub(crate) fn from_secs_f64(secs: f64) -> Self {
        NumericDate(if secs.is_finite() {
            secs.clamp(0.0, MAX_NUMERIC_DATE)
        } else {
            0.0
        })
    }

    /// This instant truncated to whole seconds.
    pub fn whole_seconds(self) -> Self {
        NumericDate(self.0.trunc())
    }
}

/// The `aud` claim: one audience or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Audience {
    /// `"aud": "api"`
    One(String),
    /// `"aud": ["api", "admin"]`
    Many(Vec<String>),
}

impl Audience {
    /// Every audience named.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice = match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(v) => v.as_slice(),
        };
        slice.iter().map(String::as_str)
    }
}

/// An `act` claim (RFC 8693 4.1): the party acting for the subject, and the
/// one that acted before it (`act` inside `act`), at most
/// 8 deep (a deeper chain refuses the token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The acting party (a client id, usually).
    pub sub: String,
    /// Its issuer, when named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Who acted before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// How deep an `act` chain is read; a deeper one refuses the token.
pub(crate) const MAX_ACTOR_DEPTH: usize = 8;

impl Actor {
    /// The chain, the current actor first.
    pub fn chain(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(Some(self), |actor| actor.act.as_deref())
    }

    /// The actor `value` (a JSON object with a string `sub`) describes.
    pub(crate) fn read(value: &serde_json::Value, depth: usize) -> Result<Actor, &'static str> {
        if depth >= MAX_ACTOR_DEPTH {
            return Err("the act claim is nested too deep");
        }
        let object = value.as_object().ok_or("the act claim is not an object")?;
        let text = |name: &str| match object.get(name) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err("a member of the act claim is not a string"),
        };
        Ok(Actor {
            sub: text("sub")?.ok_or("the act claim names no sub")?,
            iss: text("iss")?,
            act: match object.get("act") {
                None => None,
                Some(inner) => Some(Box::new(Actor::read(inner, depth + 1)?)),
            },
        })
    }
}

/// The `cnf` claim (RFC 7800): how the token is bound to its holder's key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    /// The RFC 7638 SHA-256 thumbprint of the DPoP key (RFC 9449 6.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// The SHA-256 thumbprint of the client certificate (RFC 8705 3.1).
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    /// Whether `cnf` names other confirmation methods (a whole key, ...),
    /// which this crate cannot check.
    #[serde(skip)]
    pub other_methods: bool,
}

impl Confirmation {
    /// Bound to the DPoP key with thumbprint `jkt`.
    pub fn dpop(jkt: impl Into<String>) -> Confirmation {
        Confirmation {
            jkt: Some(jkt.into()),
            x5t_s256: None,
            other_methods: false,
        }
    }

    /// The DPoP key's thumbprint when that is the only confirmation method.
    pub fn dpop_key(&self) -> Option<&str> {
        self.jkt.as_deref().filter(|_| !self.other_methods)
    }
}

/// The default extra-claims type: ignores claims it does not know, writes none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoExtra;

#[cfg(test)]
mod tests {
    use super::wire::ignores_unknown_claims;
    use super::*;

    fn parse(json: &str) -> Result<Claims, String> {
        serde_json::from_str::<Claims>(json).map_err(|e| e.to_string())
    }

    /// `act` (RFC 8693) is read as a chain, bounded in depth, each actor
    /// with a string `sub`; anything else refuses the token.
    #[test]
    fn act_chains_are_read_bounded_and_typed() {
        let json = r#"{"sub":"u","exp":1,"act":{"sub":"gw","iss":"https://as","act":{"sub":"edge","x":1}}}"#;
        let claims: Claims = serde_json::from_str(json).unwrap();
        let chain: Vec<&str> = claims
            .act
            .as_ref()
            .unwrap()
            .chain()
            .map(|a| a.sub.as_str())
            .collect();
        assert_eq!(chain, ["gw", "edge"]);
        assert_eq!(
            claims.act.as_ref().unwrap().iss.as_deref(),
            Some("https://as")
        );
        let nested = |depth: usize| {
            let mut act = r#"{"sub":"a0"}"#.to_owned();
            for i in 1..depth {
                act = format!(r#"{{"sub":"a{i}","act":{act}}}"#);
            }
            format!(r#"{{"sub":"u","exp":1,"act":{act}}}"#)
        };
        assert!(serde_json::from_str::<Claims>(&nested(MAX_ACTOR_DEPTH)).is_ok());
        let deep = serde_json::from_str::<Claims>(&nested(MAX_ACTOR_DEPTH + 1)).unwrap_err();
        assert!(deep.to_string().contains("nested too deep"), "{deep}");
        for bad in [
            r#"{"sub":"u","exp":1,"act":"gw"}"#,
            r#"{"sub":"u","exp":1,"act":{}}"#,
            r#"{"sub":"u","exp":1,"act":{"sub":7}}"#,
            r#"{"sub":"u","exp":1,"act":{"sub":"gw","act":[]}}"#,
            r#"{"sub":"u","exp":1,"act":{"sub":"gw","sub":"other"}}"#,
            r#"{"sub":"u","exp":1,"act":{"sub":"gw"},"act":{"sub":"gw"}}"#,
        ] {
            assert!(serde_json::from_str::<Claims>(bad).is_err(), "{bad}");
        }
    }

    /// `NoExtra` skips unknown claims instead of keeping them, and refuses
    /// them twice all the same (escaped or not); any other type still gets them.
    #[test]
    fn unknown_claims_are_skipped_for_no_extra_and_kept_for_others() {
        assert!(ignores_unknown_claims::<NoExtra>());
        assert!(!ignores_unknown_claims::<serde_json::Value>());
        let json = r#"{"sub":"a","exp":1,"azp":"web","realm_access":{"roles":["x"]},"n":[1,2]}"#;
        let plain: Claims = serde_json::from_str(json).unwrap();
        assert_eq!(plain.sub, "a");
        let kept: Claims<serde_json::Value> = serde_json::from_str(json).unwrap();
        assert_eq!(kept.extra["realm_access"]["roles"][0], "x");
        for twice in [
            r#"{"sub":"a","exp":1,"x":1,"x":2}"#,
            r#"{"sub":"a","exp":1,"x":1,"\u0078":2}"#,
            r#"{"sub":"a","exp":1,"\u0078":1,"x":{}}"#,
        ] {
            let plain = serde_json::from_str::<Claims>(twice).unwrap_err();
            assert!(
                plain.to_string().starts_with("duplicate claim"),
                "{twice}: {plain}"
            );
            let kept = serde_json::from_str::<Claims<serde_json::Value>>(twice).unwrap_err();
            assert!(
                kept.to_string().starts_with("duplicate claim"),
                "{twice}: {kept}"
            );
        }
        // Skipped values are refused exactly where a kept one would be.
        let deep = format!(
            r#"{{"sub":"a","exp":1,"x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        // Nesting is bounded at 32 (src/json.rs), kept or skipped alike.
        let shallow = format!(
            r#"{{"sub":"a","exp":1,"x":{}{}}}"#,
            "[".repeat(30),
            "]".repeat(30)
        );
        let past_the_bound = format!(
            r#"{{"sub":"a","exp":1,"x":{}{}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        );
        for payload in [
            deep.as_str(),
            shallow.as_str(),
            past_the_bound.as_str(),
            r#"{"sub":"a","exp":1,"x":1e400}"#,
            r#"{"sub":"a","exp":1,"x":-1e400}"#,
            r#"{"sub":"a","exp":1,"x":123456789012345678901234567890}"#,
            r#"{"sub":"a","exp":1,"x":"\ud800"}"#,
            r#"{"sub":"a","exp":1,"x":{"a":1,"a":2}}"#,
            r#"{"sub":"a","exp":1,"x":[1,]}"#,
            r#"{"sub":"a","exp":1,"x":nul}"#,
        ] {
            assert_eq!(
                serde_json::from_str::<Claims>(payload).is_ok(),
                serde_json::from_str::<Claims<serde_json::Value>>(payload).is_ok(),
                "{payload}"
            );
        }
        assert!(serde_json::from_str::<Claims>(&deep).is_err());
        assert!(serde_json::from_str::<Claims>(&past_the_bound).is_err());
        assert!(serde_json::from_str::<Claims>(&shallow).is_ok());
        // Known claims written with escapes are still known.
        let escaped: Claims = serde_json::from_str(r#"{"s\u0075b":"a","exp":1}"#).unwrap();
        assert_eq!(escaped.sub, "a");
    }

    #[test]
    fn authx_payload_with_float_exp_parses() {
        let c = parse(r#"{"sub":"user1","jti":"x","type":"access","fresh":true,"csrf":"","iat":1795934701,"exp":1795935601.309765}"#).unwrap();
        assert_eq!(c.fresh, Some(Fresh::Bool(true)));
        assert_eq!(c.exp.as_secs_f64(), 1795935601.309765);
    }

    #[test]
    fn wrong_types_and_nulls_are_refused() {
        for bad in [
            r#"{"sub":5,"exp":1}"#,
            r#"{"sub":"a","exp":"1"}"#,
            r#"{"sub":"a","exp":null}"#,
            r#"{"sub":"a","exp":-1}"#,
            r#"{"sub":"a","exp":1e300}"#,
            r#"{"sub":"a","exp":true}"#,
            r#"{"sub":"a","exp":1,"fresh":"true"}"#,
            r#"{"sub":"a","exp":1,"fresh":null}"#,
            r#"{"sub":"a","exp":1,"nbf":null}"#,
            r#"{"sub":"a","exp":1,"type":"id"}"#,
            r#"{"sub":"a","exp":1,"scopes":"admin"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn duplicate_members_are_refused_known_or_not() {
        assert!(parse(r#"{"sub":"a","sub":"b","exp":1}"#).is_err());
        assert!(parse(r#"{"sub":"a","exp":1,"fresh":false,"fresh":true}"#).is_err());
        assert!(parse(r#"{"sub":"a","exp":1,"role":"u","role":"admin"}"#).is_err());
    }

    #[test]
    fn missing_type_means_access_and_missing_exp_is_refused() {
        assert_eq!(
            parse(r#"{"sub":"a","exp":1}"#).unwrap().token_type,
            TokenType::Access
        );
        assert!(parse(r#"{"sub":"a"}"#).is_err());
    }

    #[test]
    fn freshness_has_three_lawful_forms() {
        let now = NumericDate::from_secs(1000);
        let mut c = parse(r#"{"sub":"a","exp":2000,"fresh":true}"#).unwrap();
        assert!(c.is_fresh_at(now, None));
        c.fresh = Some(Fresh::Until(NumericDate::from_secs(1001)));
        assert!(c.is_fresh_at(now, None));
        c.fresh = Some(Fresh::Until(NumericDate::from_secs(1000)));
        assert!(!c.is_fresh_at(now, None));
        c.fresh = Some(Fresh::Bool(false));
        c.auth_time = Some(NumericDate::from_secs(700));
        assert!(!c.is_fresh_at(now, None));
        assert!(c.is_fresh_at(now, Some(Duration::from_secs(300))));
        assert!(!c.is_fresh_at(now, Some(Duration::from_secs(299))));
    }

    #[test]
    fn wildcard_scopes_grant_what_is_below_them() {
        let mut c = parse(r#"{"sub":"a","exp":1,"scopes":["admin:*","read"]}"#).unwrap();
        // Read without a verifier: nothing says these are AuthX's wildcards.
        assert!(!c.has_scope("admin:users:read"));
        assert!(c.has_scope("admin:*"));
        c.verified_by.wildcards = Wildcards::AuthxScopes;
        assert!(c.has_scopes(&["admin:users:read", "read"]));
        assert!(c.has_scope("admin"));
        assert!(!c.has_scope("admins"));
        assert!(!c.has_scope("write"));
        // A third party's `scope` and `scp` are opaque strings, matched
        // exactly, unless its issuer opted in.
        let mut c =
            parse(r#"{"sub":"a","exp":1,"scope":"orders:* read","scp":["mail:*"]}"#).unwrap();
        c.verified_by.wildcards = Wildcards::AuthxScopes;
        assert!(!c.has_scope("orders:write"));
        assert!(!c.has_scope("mail:send"));
        assert!(c.has_scopes(&["orders:*", "read", "mail:*"]));
        c.verified_by.wildcards = Wildcards::Every;
        assert!(c.has_scopes(&["orders:write", "mail:send"]));
    }

    #[test]
    fn own_claims_are_flattened_both_ways() {
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        struct Mine {
            role: String,
        }
        let c: Claims<Mine> =
            serde_json::from_str(r#"{"sub":"a","exp":1,"role":"admin"}"#).unwrap();
        assert_eq!(c.extra.role, "admin");
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["role"], "admin");
        assert_eq!(back["exp"], 1);
        assert!(serde_json::from_str::<Claims<Mine>>(r#"{"sub":"a","exp":1,"role":7}"#).is_err());
    }
}
