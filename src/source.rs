//! Where a token comes from: the `Authorization` header (RFC 6750 2.1), a cookie,
//! or a query parameter, tried in the configured order like AuthX's
//! `JWT_TOKEN_LOCATION`. Headers are read from the header map directly so that
//! two headers, glued schemes and stray whitespace are seen rather than repaired.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};

use crate::claims::TokenType;
use crate::cookie::{CookieConfig, cookie_value};
use crate::error::{AuthError, CsrfFailure, InvalidToken};
use crate::request::RequestHead;

/// A place a request may carry its token (AuthX's `JWT_TOKEN_LOCATION` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenLocation {
    /// The `Authorization` header (or the configured one), with its scheme.
    Headers,
    /// The access (or refresh) token cookie, with the CSRF double submit.
    Cookies,
    /// A query parameter (`?token=`). URLs end up in logs: use sparingly.
    Query,
    /// A member of an `application/json` body (`access_token`, or
    /// `refresh_token` on refresh routes), read by
    /// [`JsonTokenLayer`](crate::layer::JsonTokenLayer) outside the guard.
    Json,
}

/// Every configured way to find a token.
#[derive(Clone, Debug)]
pub(crate) struct Sources {
    pub(crate) order: Vec<TokenLocation>,
    pub(crate) header: HeaderSource,
    pub(crate) cookies: CookieConfig,
    pub(crate) query_name: String,
    /// The JSON body's members holding the access and the refresh token.
    pub(crate) json_keys: JsonKeys,
}

/// The members of a JSON body that hold tokens (AuthX's `JWT_JSON_KEY` and
/// `JWT_REFRESH_JSON_KEY`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JsonKeys {
    pub(crate) access: String,
    pub(crate) refresh: String,
}

/// What a JSON body holds for the guards, put in the request's extensions by
/// `JsonTokenLayer`: its tokens, or why it could not be read (refused only
/// when a guard gets to the JSON location).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JsonTokens {
    Read {
        access: Option<String>,
        refresh: Option<String>,
    },
    Unreadable(&'static str),
}

impl JsonKeys {
    /// The tokens of a JSON `body`: only an object is read, a token member
    /// must be a string, named once.
    pub(crate) fn read(&self, body: &[u8]) -> JsonTokens {
        use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
        struct Members<'k>(&'k JsonKeys);
        impl<'de> Visitor<'de> for Members<'_> {
            type Value = (Option<String>, Option<String>);
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut access, mut refresh) = (None, None);
                while let Some(name) = map.next_key::<Cow<'de, str>>()? {
                    let slot = if name == self.0.access {
                        &mut access
                    } else if name == self.0.refresh {
                        &mut refresh
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom("a token member named twice"));
                    }
                    *slot = Some(map.next_value::<String>()?);
                }
                Ok((access, refresh))
            }
        }
        impl<'de> DeserializeSeed<'de> for Members<'_> {
            type Value = (Option<String>, Option<String>);
            fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_map(self)
            }
        }
        let mut reader = serde_json::Deserializer::from_slice(body);
        match Members(self)
            .deserialize(&mut reader)
            .and_then(|read| reader.end().map(|()| read))
        {
            Ok((access, refresh)) => JsonTokens::Read { access, refresh },
            Err(_) => JsonTokens::Unreadable(
                "the JSON body is not an object whose token members are strings, each named once",
            ),
        }
    }
}

/// A token found in a request.
#[derive(Debug)]
pub(crate) struct Found<'a> {
    pub(crate) token: Cow<'a, str>,
    /// The CSRF value the request sent, when the token came from a cookie on a
    /// method that needs the double submit.
    pub(crate) csrf: Option<&'a [u8]>,
    /// Whether the token came with the `DPoP` auth-scheme (RFC 9449 7.1).
    pub(crate) dpop: bool,
    /// Whether it came from a cookie (a browser session's).
    pub(crate) cookie: bool,
}

/// How to find the bearer credential.
#[derive(Clone, Debug)]
pub(crate) struct HeaderSource {
    pub(crate) name: HeaderName,
    /// The auth-scheme, matched case-insensitively (RFC 7235 2.1). Empty means the
    /// header holds the bare token, as AuthX allows with `JWT_HEADER_TYPE=""`.
    pub(crate) scheme: String,
    pub(crate) max_token_len: usize,
    /// Whether the `DPoP` scheme is taken too.
    pub(crate) dpop: bool,
}

/// Whether every byte is printable ASCII (no space): without an early exit,
/// so the compiler checks many bytes at once.
fn all_graphic(bytes: &[u8]) -> bool {
    !bytes
        .iter()
        .fold(false, |bad, b| bad | !b.is_ascii_graphic())
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s
        && is_ows(*first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && is_ows(*last)
    {
        s = rest;
    }
    s
}

impl Sources {
    /// The first token found in the configured order. A location that holds
    /// nothing passes to the next; one that holds something malformed refuses.
    pub(crate) fn find<'a>(
        &self,
        request: RequestHead<'a>,
        json: Option<&'a JsonTokens>,
        wanted: Option<TokenType>,
    ) -> Result<Found<'a>, AuthError> {
        for location in &self.order {
            let found = match location {
                TokenLocation::Headers => match self.header.token(request.headers) {
                    Err(AuthError::MissingToken) => None,
                    other => {
                        let (token, dpop) = other?;
                        Some(Found {
                            token: Cow::Borrowed(token),
                            csrf: None,
                            dpop,
                            cookie: false,
                        })
                    }
                },
                TokenLocation::Cookies => self.in_cookies(request, wanted)?,
                TokenLocation::Query => self.in_query(request)?,
                TokenLocation::Json => self.in_json(json, wanted)?,
            };
            if let Some(found) = found {
                return Ok(found);
            }
        }
        Err(AuthError::MissingToken)
    }

    /// The token of a JSON body (read by `JsonTokenLayer`): the refresh
    /// member on refresh routes, else the access member (then, on routes
    /// that take either type, the refresh one).
    fn in_json<'a>(
        &self,
        json: Option<&'a JsonTokens>,
        wanted: Option<TokenType>,
    ) -> Result<Option<Found<'a>>, AuthError> {
        let (access, refresh) = match json {
            None => return Ok(None),
            Some(JsonTokens::Unreadable(why)) => return Err(AuthError::InvalidRequest(why)),
            Some(JsonTokens::Read { access, refresh }) => (access, refresh),
        };
        let token = match wanted {
            Some(TokenType::Access) => access.as_deref(),
            Some(TokenType::Refresh) => refresh.as_deref(),
            None => access.as_deref().or(refresh.as_deref()),
        };
        let Some(token) = token else {
            return Ok(None);
        };
        Ok(Some(Found {
            token: Cow::Borrowed(self.checked(token.as_bytes())?),
            csrf: None,
            dpop: false,
            cookie: false,
        }))
    }

    fn in_cookies<'a>(
        &self,
        request: RequestHead<'a>,
        wanted: Option<TokenType>,
    ) -> Result<Option<Found<'a>>, AuthError> {
        let types: &[TokenType] = match wanted {
            Some(TokenType::Access) => &[TokenType::Access],
            Some(TokenType::Refresh) => &[TokenType::Refresh],
            None => &[TokenType::Access, TokenType::Refresh],
        };
        for token_type in types {
            let (name, _) = self.cookies.names(*token_type);
            let Some(value) = cookie_value(request.headers, name)? else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let token = self.checked(value)?;
            let csrf = if self.cookies.needs_csrf(request.method) {
                // Checked before the signature: without it the request is refused
                // whatever the token says.
                match request.headers.get(&self.cookies.csrf_header) {
                    Some(v) if !v.is_empty() => Some(v.as_bytes()),
                    _ => return Err(AuthError::Csrf(CsrfFailure::Missing)),
                }
            } else {
                None
            };
            return Ok(Some(Found {
                token: Cow::Borrowed(token),
                csrf,
                dpop: false,
                cookie: true,
            }));
        }
        Ok(None)
    }

    fn in_query<'a>(&self, request: RequestHead<'a>) -> Result<Option<Found<'a>>, AuthError> {
        let Some(query) = request.uri.query() else {
            return Ok(None);
        };
        let mut found = None;
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key != self.query_name {
                continue;
            }
            if found.is_some() {
                return Err(AuthError::InvalidRequest("more than one token parameter"));
            }
            found = Some(value);
        }
        let Some(raw) = found.filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let token = if raw.contains('%') {
            let decoded = percent_decode(raw.as_bytes(), self.header.max_token_len)?;
            self.checked(&decoded)?;
            // checked() proved it ASCII.
            Cow::Owned(String::from_utf8(decoded).unwrap_or_default())
        } else {
            Cow::Borrowed(self.checked(raw.as_bytes())?)
        };
        Ok(Some(Found {
            token,
            csrf: None,
            dpop: false,
            cookie: false,
        }))
    }

    /// A credential from a cookie or the query: capped, then printable ASCII only.
    fn checked<'a>(&self, value: &'a [u8]) -> Result<&'a str, AuthError> {
        if value.len() > self.header.max_token_len {
            return Err(InvalidToken::TooLong.into());
        }
        if !all_graphic(value) {
            return Err(AuthError::InvalidRequest(
                "the token contains whitespace or non-ASCII bytes",
            ));
        }
        std::str::from_utf8(value).map_err(|_| AuthError::InvalidRequest("the token is not ASCII"))
    }
}

/// `%XX` decoding of a query value, bounded by `max` output bytes.
fn percent_decode(raw: &[u8], max: usize) -> Result<Vec<u8>, AuthError> {
    if raw.len() > 3 * max {
        return Err(InvalidToken::TooLong.into());
    }
    let bad = || AuthError::InvalidRequest("bad percent-encoding in the token parameter");
    let hex = |b: u8| (b as char).to_digit(16).ok_or_else(bad);
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b == b'%' {
            let (Some(&hi), Some(&lo)) = (bytes.next(), bytes.next()) else {
                return Err(bad());
            };
            out.push((hex(hi)? * 16 + hex(lo)?) as u8);
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

impl HeaderSource {
    /// The token and whether it came with the `DPoP` scheme, or why there is
    /// none. Length is checked before anything is scanned, so a megabyte of
    /// junk costs nothing.
    pub(crate) fn token<'a>(&self, headers: &'a HeaderMap) -> Result<(&'a str, bool), AuthError> {
        let mut values = headers.get_all(&self.name).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return Err(AuthError::MissingToken),
            (Some(v), None) => v.as_bytes(),
            (Some(_), Some(_)) => {
                return Err(AuthError::InvalidRequest("more than one credential header"));
            }
        };
        // Room for the scheme, its separator and some surrounding whitespace.
        if value.len() > self.max_token_len + self.scheme.len() + 16 {
            return Err(InvalidToken::TooLong.into());
        }
        let value = trim_ows(value);
        let mut dpop = false;
        let credential = if self.scheme.is_empty() {
            value
        } else {
            let split = value.iter().position(|b| is_ows(*b)).unwrap_or(value.len());
            let (scheme, rest) = value.split_at(split);
            dpop = self.dpop && scheme.eq_ignore_ascii_case(b"DPoP");
            if !dpop && !scheme.eq_ignore_ascii_case(self.scheme.as_bytes()) {
                // Another scheme (Basic, Digest, or a glued "Bearerabc"): no bearer
                // credential at all, RFC 6750 3.1.
                return Err(AuthError::MissingToken);
            }
            // credentials = auth-scheme 1*SP token68: spaces only, no tabs.
            let token_start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
            if rest[..token_start].is_empty() || token_start == rest.len() {
                return Err(AuthError::InvalidRequest(
                    "the credential header has a scheme but no token",
                ));
            }
            &rest[token_start..]
        };
        if credential.is_empty() {
            return Err(AuthError::MissingToken);
        }
        if !all_graphic(credential) {
            return Err(AuthError::InvalidRequest(
                "the token contains whitespace or non-ASCII bytes",
            ));
        }
        if credential.len() > self.max_token_len {
            return Err(InvalidToken::TooLong.into());
        }
        // All ASCII graphic, so UTF-8.
        std::str::from_utf8(credential)
            .map(|token| (token, dpop))
            .map_err(|_| AuthError::InvalidRequest("the token is not ASCII"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::AUTHORIZATION;

    fn source() -> HeaderSource {
        HeaderSource {
            name: AUTHORIZATION,
            scheme: "Bearer".into(),
            max_token_len: 64,
            dpop: false,
        }
    }

    fn read(values: &[&[u8]]) -> Result<String, AuthError> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        source().token(&h).map(|(token, _)| token.to_owned())
    }

    #[test]
    fn scheme_is_case_insensitive_and_ows_is_trimmed() {
        assert_eq!(read(&[b"Bearer a.b.c"]).unwrap(), "a.b.c");
        assert_eq!(read(&[b"bEARER   a.b.c  "]).unwrap(), "a.b.c");
    }

    #[test]
    fn missing_or_other_scheme_is_missing_token() {
        assert_eq!(read(&[]), Err(AuthError::MissingToken));
        assert_eq!(read(&[b"Basic dXNlcjpwYXNz"]), Err(AuthError::MissingToken));
        assert_eq!(read(&[b"Bearera.b.c"]), Err(AuthError::MissingToken));
        assert_eq!(read(&[b""]), Err(AuthError::MissingToken));
    }

    #[test]
    fn malformed_headers_are_invalid_requests() {
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer\ta.b.c",
            b"Bearer a.b.c junk",
            b"Bearer a\xffb",
        ] {
            assert!(
                matches!(read(&[bad]), Err(AuthError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            read(&[b"Bearer a", b"Bearer b"]),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn oversized_tokens_are_refused_before_scanning() {
        let long = format!("Bearer {}", ".".repeat(1 << 20));
        assert_eq!(
            read(&[long.as_bytes()]),
            Err(AuthError::InvalidToken(InvalidToken::TooLong))
        );
        let just_over = format!("Bearer {}", "a".repeat(65));
        assert_eq!(
            read(&[just_over.as_bytes()]),
            Err(AuthError::InvalidToken(InvalidToken::TooLong))
        );
    }
}
