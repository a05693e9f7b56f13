//! The JOSE header: read by our rules, before any key is chosen. Only `alg`
//! and `kid` are kept; `typ` must say JWT, and `crit`, `enc` and `zip` are
//! refused. Anything else (`jwk`, `jku`, `x5u`, `x5c`) is ignored: a token
//! never tells us where to fetch a key.

use std::borrow::Cow;
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::malformed;
use crate::base64url;
use crate::error::InvalidToken;
use crate::keys::Algorithm;

/// What a token's header says: the algorithm it claims and the key it names.
#[derive(Clone, Debug)]
pub(crate) struct JoseHeader<'a> {
    pub(crate) alg: Cow<'a, str>,
    /// Names one of the keys we hold; never used to load a key.
    pub(crate) kid: Option<Cow<'a, str>>,
    /// `typ` says `at+jwt` (RFC 9068 2.1): an access token, typed explicitly.
    pub(crate) access_typed: bool,
}

impl JoseHeader<'_> {
    /// The same header, owning its strings (to outlive the request, while
    /// the keys it names are fetched).
    pub(crate) fn into_owned(self) -> JoseHeader<'static> {
        JoseHeader {
            alg: Cow::Owned(self.alg.into_owned()),
            kid: self.kid.map(|kid| Cow::Owned(kid.into_owned())),
            access_typed: self.access_typed,
        }
    }
}

#[derive(Deserialize)]
struct Members<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<Text<'a>>,
    #[serde(default, borrow)]
    kid: Option<Text<'a>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    enc: bool,
    #[serde(default, deserialize_with = "present")]
    zip: bool,
}

/// A string borrowed from the JSON when it has no escapes: serde borrows a
/// `Cow` field, but an `Option<Cow>` always comes back owned.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// `typ` is optional; when present it must say JWT (RFC 7519 5.1, RFC 9068 2.1).
fn acceptable_typ(typ: &str) -> bool {
    ["JWT", "at+jwt", "application/at+jwt"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(typ))
}

/// The header AuthX, flask-jwt-extended, PyJWT and we write for a key
/// without `kid`, `{"alg":"<alg>","typ":"JWT"}`, base64url-encoded, for every
/// algorithm: most tokens carry one of these exact texts, which are then known
/// without being decoded or parsed.
static PLAIN: LazyLock<Vec<(String, &'static str)>> = LazyLock::new(|| {
    Algorithm::ALL
        .iter()
        .map(|alg| {
            let json = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, alg.as_str());
            (URL_SAFE_NO_PAD.encode(json), alg.as_str())
        })
        .collect()
});

/// What a header's `typ` must say.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Typ<'t> {
    /// A token: no `typ`, or one that says JWT.
    Jwt,
    /// Exactly this media type (with or without `application/`), present.
    #[cfg_attr(not(feature = "remote-keys"), allow(dead_code))]
    Exactly(&'t str),
}

/// Reads the base64url `segment` (decoded into `buffer` when it fits) as a
/// JWS header.
pub(crate) fn read<'b>(
    segment: &str,
    buffer: &'b mut [std::mem::MaybeUninit<u8>],
) -> Result<JoseHeader<'b>, InvalidToken> {
    if let Some((_, alg)) = PLAIN.iter().find(|(plain, _)| plain == segment) {
        return Ok(JoseHeader {
            alg: Cow::Borrowed(alg),
            kid: None,
            access_typed: false,
        });
    }
    read_as(segment, buffer, Typ::Jwt)
}

/// [`read`] for a JWS whose `typ` is `typ` (RFC 8725 3.11: explicit typing).
pub(crate) fn read_as<'b>(
    segment: &str,
    buffer: &'b mut [std::mem::MaybeUninit<u8>],
    typ: Typ<'_>,
) -> Result<JoseHeader<'b>, InvalidToken> {
    let json = base64url::decode(segment, buffer)
        .ok_or_else(|| malformed("the header is not base64url"))?;
    // RFC 7515 4: a JSON object. serde would also read a struct from an array.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(malformed("the header is not a JWS header"));
    }
    match json {
        Cow::Borrowed(bytes) => validated(parse(bytes)?, typ),
        // Too big for the buffer: rare, and owned from here on.
        Cow::Owned(bytes) => validated(parse(&bytes)?, typ).map(JoseHeader::into_owned),
    }
}

fn parse(json: &[u8]) -> Result<Members<'_>, InvalidToken> {
    serde_json::from_slice(json).map_err(|_| malformed("the header is not a JWS header"))
}

fn validated<'a>(members: Members<'a>, typ: Typ<'_>) -> Result<JoseHeader<'a>, InvalidToken> {
    if members.crit {
        return Err(malformed("unsupported critical header extension"));
    }
    if members.enc || members.zip {
        return Err(malformed("encrypted tokens are not accepted"));
    }
    match typ {
        Typ::Jwt if members.typ.as_ref().is_some_and(|t| !acceptable_typ(&t.0)) => {
            return Err(malformed("the header's typ is not JWT"));
        }
        Typ::Exactly(expected) => {
            let said = members
                .typ
                .as_ref()
                .map(|t| t.0.as_ref())
                .unwrap_or_default();
            let said = said.strip_prefix("application/").unwrap_or(said);
            if !said.eq_ignore_ascii_case(expected) {
                return Err(malformed("the header's typ is not the one expected"));
            }
        }
        Typ::Jwt => {}
    }
    // An algorithm no key can serve (`none` in any casing among them) is
    // refused before any key is looked for, let alone fetched.
    if !Algorithm::ALL.iter().any(|alg| alg.as_str() == members.alg) {
        return Err(InvalidToken::Algorithm);
    }
    let access_typed = members.typ.as_ref().is_some_and(|t| {
        let typ = t.0.as_ref();
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        typ.eq_ignore_ascii_case("at+jwt")
    });
    Ok(JoseHeader {
        alg: members.alg,
        kid: members.kid.map(|kid| kid.0),
        access_typed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The headers known by their text read as the same headers decoded.
    #[test]
    fn plain_headers_read_as_decoded() {
        for alg in Algorithm::ALL {
            let json = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, alg.as_str());
            let segment = URL_SAFE_NO_PAD.encode(&json);
            assert!(PLAIN.iter().any(|(plain, _)| *plain == segment));
            let mut buffer = crate::base64url::stack::<512>();
            let known = read(&segment, &mut buffer).unwrap();
            let decoded = validated(parse(json.as_bytes()).unwrap(), Typ::Jwt).unwrap();
            assert_eq!(known.alg, decoded.alg);
            assert_eq!(known.alg, alg.as_str());
            assert!(known.kid.is_none() && decoded.kid.is_none());
        }
    }

    /// `kid` and `typ` are borrowed unless escaped, and read either way.
    #[test]
    fn kid_is_borrowed_unless_escaped() {
        let json = br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#;
        let header = validated(parse(json).unwrap(), Typ::Jwt).unwrap();
        assert!(matches!(header.kid, Some(Cow::Borrowed("k1"))));
        let json = br#"{"alg":"RS256","typ":"J\u0057T","kid":"k\u0031"}"#;
        let header = validated(parse(json).unwrap(), Typ::Jwt).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
        let json = br#"{"alg":"RS256","typ":"JWS"}"#;
        assert!(validated(parse(json).unwrap(), Typ::Jwt).is_err());
        // Explicitly typed: the type must be said, and be the one expected.
        let typed = |json: &[u8]| {
            validated(
                parse(json).unwrap(),
                Typ::Exactly("token-introspection+jwt"),
            )
            .is_ok()
        };
        assert!(typed(br#"{"alg":"ES256","typ":"token-introspection+jwt"}"#));
        assert!(typed(
            br#"{"alg":"ES256","typ":"application/token-introspection+jwt"}"#
        ));
        assert!(!typed(br#"{"alg":"ES256","typ":"JWT"}"#));
        assert!(!typed(br#"{"alg":"ES256"}"#));
    }
}
