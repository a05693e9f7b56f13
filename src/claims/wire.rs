//! How the claim set is read and written: the strict reader (a claim of the
//! wrong JSON type refused, never coerced; `null` refused for every claim we
//! know; a member named twice refused) and the few hand-written encodings.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::json::{Strict, Unique};

use super::{
    Actor, Audience, ClaimPath, Claims, Confirmation, Fresh, MAX_NUMERIC_DATE, NoExtra,
    NumericDate, Permissions, Seal, TokenType,
};

impl<'de> Deserialize<'de> for Fresh {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FreshVisitor;
        impl<'de> Visitor<'de> for FreshVisitor {
            type Value = Fresh;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean or a NumericDate")
            }
            fn visit_bool<Er: de::Error>(self, v: bool) -> Result<Fresh, Er> {
                Ok(Fresh::Bool(v))
            }
            fn visit_u64<Er: de::Error>(self, v: u64) -> Result<Fresh, Er> {
                NumericDateVisitor.visit_u64(v).map(Fresh::Until)
            }
            fn visit_i64<Er: de::Error>(self, v: i64) -> Result<Fresh, Er> {
                NumericDateVisitor.visit_i64(v).map(Fresh::Until)
            }
            fn visit_f64<Er: de::Error>(self, v: f64) -> Result<Fresh, Er> {
                NumericDateVisitor.visit_f64(v).map(Fresh::Until)
            }
        }
        d.deserialize_any(FreshVisitor)
    }
}

impl Serialize for NumericDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 {
            // In range by construction: 0 <= self.0 <= MAX_NUMERIC_DATE.
            s.serialize_u64(self.0 as u64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumericDateVisitor)
    }
}

struct NumericDateVisitor;

impl<'de> Visitor<'de> for NumericDateVisitor {
    type Value = NumericDate;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a NumericDate (seconds since 1970)")
    }
    fn visit_u64<Er: de::Error>(self, v: u64) -> Result<NumericDate, Er> {
        self.visit_f64(v as f64)
    }
    fn visit_i64<Er: de::Error>(self, v: i64) -> Result<NumericDate, Er> {
        self.visit_f64(v as f64)
    }
    fn visit_f64<Er: de::Error>(self, v: f64) -> Result<NumericDate, Er> {
        if v.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&v) {
            Ok(NumericDate(v))
        } else {
            Err(Er::custom("a NumericDate out of range"))
        }
    }
}

impl<'de> Deserialize<'de> for Confirmation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CnfVisitor;
        impl<'de> Visitor<'de> for CnfVisitor {
            type Value = Confirmation;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a confirmation object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Confirmation, A::Error> {
                let mut cnf = Confirmation::default();
                let mut others = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name == "jkt" {
                        read_once(&mut map, &mut cnf.jkt, "cnf.jkt", "a string")?;
                    } else if name == "x5t#S256" {
                        read_once(&mut map, &mut cnf.x5t_s256, "cnf.x5t#S256", "a string")?;
                    } else {
                        map.next_value::<Unique>()?;
                        if others.contains(&name) {
                            return Err(de::Error::custom("duplicate claim 'cnf'"));
                        }
                        others.push(name);
                        cnf.other_methods = true;
                    }
                }
                Ok(cnf)
            }
        }
        d.deserialize_map(CnfVisitor)
    }
}

impl Serialize for NoExtra {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

impl<'de> Deserialize<'de> for NoExtra {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| NoExtra)
    }
}

/// Whether `E` is this crate's [`NoExtra`], which ignores whatever it is
/// given: unknown claims are then skipped instead of collected into JSON
/// values only to be dropped (IdP tokens carry many). Told by name, as `E`
/// need not be `'static`; any version of this crate's `NoExtra` ignores
/// everything just the same.
pub(super) fn ignores_unknown_claims<E>() -> bool {
    std::any::type_name::<E>() == std::any::type_name::<NoExtra>()
}

/// The members we know, told apart without allocating; others keep their
/// name (borrowed from the payload unless escaped).
enum Member<'de> {
    Sub,
    Jti,
    Type,
    Fresh,
    Csrf,
    Iat,
    Exp,
    Nbf,
    Iss,
    Aud,
    Scopes,
    Scope,
    Scp,
    AuthTime,
    Family,
    Cnf,
    Act,
    Acr,
    Amr,
    /// Claims that say what kind of token this is (see [`TokenKind`]).
    Nonce,
    IdTokenOnly(&'static str),
    Typ,
    TokenUse,
    Other(Cow<'de, str>),
}

impl<'de> Member<'de> {
    fn from_name(name: Cow<'de, str>) -> Member<'de> {
        match name.as_ref() {
            "sub" => Member::Sub,
            "jti" => Member::Jti,
            "type" => Member::Type,
            "fresh" => Member::Fresh,
            "csrf" => Member::Csrf,
            "iat" => Member::Iat,
            "exp" => Member::Exp,
            "nbf" => Member::Nbf,
            "iss" => Member::Iss,
            "aud" => Member::Aud,
            "scopes" => Member::Scopes,
            "scope" => Member::Scope,
            "scp" => Member::Scp,
            "auth_time" => Member::AuthTime,
            "fam" => Member::Family,
            "cnf" => Member::Cnf,
            "act" => Member::Act,
            "acr" => Member::Acr,
            "amr" => Member::Amr,
            "nonce" => Member::Nonce,
            "at_hash" => Member::IdTokenOnly("at_hash"),
            "c_hash" => Member::IdTokenOnly("c_hash"),
            "s_hash" => Member::IdTokenOnly("s_hash"),
            // A back-channel logout token (OpenID Connect) or any other
            // Security Event Token (RFC 8417).
            "events" => Member::IdTokenOnly("events"),
            "typ" => Member::Typ,
            "token_use" => Member::TokenUse,
            _ => Member::Other(name),
        }
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MemberVisitor;
        impl<'de> Visitor<'de> for MemberVisitor {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<Er: de::Error>(self, v: &'de str) -> Result<Member<'de>, Er> {
                Ok(Member::from_name(Cow::Borrowed(v)))
            }
            fn visit_str<Er: de::Error>(self, v: &str) -> Result<Member<'de>, Er> {
                Ok(Member::from_name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_identifier(MemberVisitor)
    }
}

/// Adds the permissions the paths starting at claim `name` find in its
/// `value`.
fn read_paths<Er: de::Error>(
    paths: &[ClaimPath],
    name: &str,
    value: &serde_json::Value,
    into: &mut Vec<String>,
) -> Result<(), Er> {
    for path in paths.iter().filter(|p| p.root() == name) {
        path.collect(value, into).map_err(Er::custom)?;
    }
    Ok(())
}

/// What a claim set says of its own kind, read to refuse tokens that are
/// not access tokens: an OpenID Connect ID token whose `aud` happens to be
/// ours (a client that is also the API), a logout token, a Keycloak or
/// Cognito ID or refresh token. Nothing here makes a token an access token
/// by itself; these only tell an ID token apart.
#[derive(Default)]
struct TokenKind {
    /// The claims only ID tokens (or Security Event Tokens) carry, seen.
    id_only_seen: Vec<&'static str>,
    nonce: Option<Unique>,
    /// Keycloak's `typ` claim (`Bearer`, `DPoP`, `ID`, `Refresh`, `Logout`...).
    typ: Option<String>,
    /// Cognito's `token_use` (`access` or `id`).
    token_use: Option<String>,
    /// `azp`, the party the token was issued to, when it is a string.
    azp: Option<String>,
    /// `client_id` (RFC 9068) or Okta's `cid`, when a string.
    client_id: Option<String>,
    /// A claim that says no user is behind the token: Auth0's `gty:
    /// client-credentials`, Entra's `idtyp: app`.
    client_grant: bool,
}

impl TokenKind {
    /// Whether an unknown claim says something of the token's kind.
    fn notes(name: &str) -> bool {
        matches!(name, "azp" | "client_id" | "cid" | "gty" | "idtyp")
    }

    /// Notes what the claim `name` says of the token's kind.
    fn note(&mut self, name: &str, value: &serde_json::Value) {
        let text = || value.as_str().map(str::to_owned);
        match name {
            "azp" => self.azp = text(),
            "client_id" | "cid" if self.client_id.is_none() => self.client_id = text(),
            "gty" => self.client_grant |= value == "client-credentials",
            "idtyp" => self.client_grant |= value == "app",
            _ => {}
        }
    }

    /// Whether no user is behind a token whose subject is `sub`: a client's
    /// own token (client credentials), whose `sub` is its client id (RFC
    /// 9068 2.2), or says so. A client may choose an id equal to a user's
    /// name (dynamic registration): its tokens must not pass as that user's.
    fn is_client(&self, sub: &str) -> bool {
        self.client_grant || self.client_id.as_deref() == Some(sub)
    }

    /// Why claims that say these things are not an access token's, if so.
    fn refusal(&self, aud: Option<&Audience>, scoped: bool) -> Option<String> {
        let no = |why: String| Some(format!("not an access token: {why}"));
        if let Some(claim) = self.id_only_seen.first() {
            return no(format!("'{claim}' marks an ID token or a logout token"));
        }
        let access_typ = self.typ.as_deref().map(|typ| {
            ["Bearer", "DPoP"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(typ))
        });
        if access_typ == Some(false) {
            return no("its 'typ' claim names another kind of token".into());
        }
        if self
            .token_use
            .as_deref()
            .is_some_and(|use_| use_ != "access")
        {
            return no("its 'token_use' is not 'access'".into());
        }
        // Keycloak before 25 copied the request's nonce into its access
        // tokens, whose `typ` claim then says Bearer.
        if self.nonce.is_some() && access_typ != Some(true) {
            return no("'nonce' marks an ID token".into());
        }
        // An ID token is addressed to the client it was issued to: `aud` is
        // `azp` alone, and it grants no scope. Access tokens say their kind
        // or carry scopes.
        let positive = access_typ == Some(true) || self.token_use.is_some() || scoped;
        let to_azp_alone = match (aud, &self.azp) {
            (Some(Audience::One(aud)), Some(azp)) => aud == azp,
            (Some(Audience::Many(aud)), Some(azp)) => aud.len() == 1 && aud[0] == *azp,
            _ => false,
        };
        if to_azp_alone && !positive {
            return no("addressed to its 'azp' alone, as an ID token is".into());
        }
        None
    }
}

/// Reads a claim's value once; a second occurrence or a wrongly typed value is
/// an error naming the claim (and never its value).
fn read_once<'de, A, T>(
    map: &mut A,
    slot: &mut Option<T>,
    name: &str,
    ty: &str,
) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    T: Deserialize<'de>,
{
    if slot.is_some() {
        return Err(de::Error::custom(format_args!("duplicate claim '{name}'")));
    }
    let value = map
        .next_value::<T>()
        .map_err(|_| de::Error::custom(format_args!("claim '{name}' must be {ty}")))?;
    *slot = Some(value);
    Ok(())
}

/// Whether the reader takes `name` as one of the claims it knows (so a claim
/// path cannot start there).
pub(crate) fn is_known_claim(name: &str) -> bool {
    !matches!(Member::from_name(Cow::Borrowed(name)), Member::Other(_))
}

impl<'de, E: DeserializeOwned> Deserialize<'de> for Claims<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::DeserializeSeed::deserialize(ClaimsSeed::<E>::new(&[]), d)
    }
}

/// Reads a claim set, with its permission set from `paths`.
pub(crate) struct ClaimsSeed<'p, E> {
    paths: &'p [ClaimPath],
    _claims: PhantomData<fn() -> E>,
}

impl<'p, E> ClaimsSeed<'p, E> {
    pub(crate) fn new(paths: &'p [ClaimPath]) -> Self {
        ClaimsSeed {
            paths,
            _claims: PhantomData,
        }
    }
}

impl<'de, E: DeserializeOwned> de::DeserializeSeed<'de> for ClaimsSeed<'_, E> {
    type Value = Claims<E>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Claims<E>, D::Error> {
        d.deserialize_map(ClaimsVisitor(self))
    }
}

struct ClaimsVisitor<'p, E>(ClaimsSeed<'p, E>);

impl<'de, E: DeserializeOwned> Visitor<'de> for ClaimsVisitor<'_, E> {
    type Value = Claims<E>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims<E>, A::Error> {
        const STRING: &str = "a string";
        const DATE: &str = "a NumericDate";
        let (mut sub, mut jti, mut token_type, mut fresh, mut csrf) =
            (None, None, None, None, None);
        let (mut iat, mut exp, mut nbf, mut iss, mut aud) = (None, None, None, None, None);
        let (mut scopes, mut auth_time, mut family, mut cnf) = (None, None, None, None);
        let (mut scope, mut scp) = (None::<String>, None::<Audience>);
        let (mut acr, mut amr, mut act) = (None, None, None::<Strict>);
        let mut kind = TokenKind::default();
        let paths = self.0.paths;
        let mut permissions = Vec::new();
        let mut others = serde_json::Map::new();
        // Unknown claims seen but not kept (for `NoExtra`), to refuse duplicates
        // all the same (hashed: a long list costs no more than the map would).
        let keep_others = !ignores_unknown_claims::<E>();
        let mut skipped: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(member) = map.next_key::<Member<'de>>()? {
            let m = &mut map;
            match member {
                Member::Sub => read_once(m, &mut sub, "sub", STRING)?,
                Member::Jti => read_once(m, &mut jti, "jti", STRING)?,
                Member::Type => read_once(m, &mut token_type, "type", "\"access\" or \"refresh\"")?,
                Member::Fresh => read_once(m, &mut fresh, "fresh", "a boolean or a NumericDate")?,
                Member::Csrf => read_once(m, &mut csrf, "csrf", STRING)?,
                Member::Iat => read_once(m, &mut iat, "iat", DATE)?,
                Member::Exp => read_once(m, &mut exp, "exp", DATE)?,
                Member::Nbf => read_once(m, &mut nbf, "nbf", DATE)?,
                Member::Iss => read_once(m, &mut iss, "iss", STRING)?,
                Member::Aud => read_once(m, &mut aud, "aud", "a string or a list of strings")?,
                Member::Scopes => read_once(m, &mut scopes, "scopes", "a list of strings")?,
                Member::Scope => read_once(m, &mut scope, "scope", STRING)?,
                Member::Scp => read_once(m, &mut scp, "scp", "a string or a list of strings")?,
                Member::AuthTime => read_once(m, &mut auth_time, "auth_time", DATE)?,
                Member::Family => read_once(m, &mut family, "fam", STRING)?,
                Member::Cnf => read_once(m, &mut cnf, "cnf", "a confirmation object")?,
                Member::Act => read_once(m, &mut act, "act", "an actor object")?,
                Member::Acr => read_once(m, &mut acr, "acr", STRING)?,
                Member::Amr => read_once(m, &mut amr, "amr", "a list of strings")?,
                Member::Nonce => read_once(m, &mut kind.nonce, "nonce", "a JSON value")?,
                Member::IdTokenOnly(claim) => {
                    let mut seen = None::<Unique>;
                    read_once(m, &mut seen, claim, "a JSON value")?;
                    if kind.id_only_seen.contains(&claim) {
                        return Err(de::Error::custom(format_args!("duplicate claim '{claim}'")));
                    }
                    kind.id_only_seen.push(claim);
                }
                Member::Typ => read_once(m, &mut kind.typ, "typ", STRING)?,
                Member::TokenUse => read_once(m, &mut kind.token_use, "token_use", STRING)?,
                Member::Other(name) if keep_others => {
                    let Strict(value) = map.next_value::<Strict>()?;
                    kind.note(&name, &value);
                    read_paths(paths, &name, &value, &mut permissions)?;
                    if others.insert(name.into_owned(), value).is_some() {
                        return Err(de::Error::custom("duplicate claim"));
                    }
                }
                Member::Other(name) if TokenKind::notes(&name) => {
                    let Strict(value) = map.next_value::<Strict>()?;
                    read_paths(paths, &name, &value, &mut permissions)?;
                    kind.note(&name, &value);
                    if !skipped.get_or_insert_with(HashSet::new).insert(name) {
                        return Err(de::Error::custom("duplicate claim"));
                    }
                }
                Member::Other(name) => {
                    if paths.iter().any(|p| p.root() == name) {
                        let Strict(value) = map.next_value::<Strict>()?;
                        read_paths(paths, &name, &value, &mut permissions)?;
                    } else {
                        map.next_value::<Unique>()?;
                    }
                    if !skipped.get_or_insert_with(HashSet::new).insert(name) {
                        return Err(de::Error::custom("duplicate claim"));
                    }
                }
            }
        }
        let scoped = scopes.is_some() || scope.is_some() || scp.is_some();
        if let Some(refusal) = kind.refusal(aud.as_ref(), scoped) {
            return Err(de::Error::custom(refusal));
        }
        let extra = E::deserialize(serde_json::Value::Object(others)).map_err(|_| {
            de::Error::custom("the token's own claims do not have the expected types")
        })?;
        let sub: String = sub.ok_or_else(|| de::Error::custom("missing claim 'sub'"))?;
        let act = act
            .map(|Strict(value)| Actor::read(&value, 0))
            .transpose()
            .map_err(de::Error::custom)?;
        let client = kind.is_client(&sub);
        Ok(Claims {
            client,
            sub,
            jti,
            token_type: token_type.unwrap_or(TokenType::Access),
            fresh,
            csrf,
            iat,
            exp: exp.ok_or_else(|| de::Error::custom("missing claim 'exp'"))?,
            nbf,
            iss,
            aud,
            scopes,
            scope,
            scp: scp.map(|scp| match scp {
                Audience::One(spaced) => {
                    spaced.split_ascii_whitespace().map(str::to_owned).collect()
                }
                Audience::Many(list) => list,
            }),
            auth_time,
            fam: family,
            cnf,
            act,
            acr,
            amr,
            permissions: Permissions::new(permissions),
            extra,
            verified_by: Seal::default(),
        })
    }
}
