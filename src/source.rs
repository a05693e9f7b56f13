//! Where a token comes from: the `Authorization` header (RFC 6750 2.1), read from
//! the header map directly so that two headers, glued schemes and stray whitespace
//! are seen rather than silently repaired.

use http::{HeaderMap, HeaderName};

use crate::error::{AuthError, InvalidToken};

/// How to find the bearer credential.
#[derive(Clone, Debug)]
pub(crate) struct HeaderSource {
    pub(crate) name: HeaderName,
    /// The auth-scheme, matched case-insensitively (RFC 7235 2.1). Empty means the
    /// header holds the bare token, as AuthX allows with `JWT_HEADER_TYPE=""`.
    pub(crate) scheme: String,
    pub(crate) max_token_len: usize,
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

impl HeaderSource {
    /// The token, or why there is none. Length is checked before anything is
    /// scanned, so a megabyte of junk costs nothing.
    pub(crate) fn token<'a>(&self, headers: &'a HeaderMap) -> Result<&'a str, AuthError> {
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
        let credential = if self.scheme.is_empty() {
            value
        } else {
            let split = value.iter().position(|b| is_ows(*b)).unwrap_or(value.len());
            let (scheme, rest) = value.split_at(split);
            if !scheme.eq_ignore_ascii_case(self.scheme.as_bytes()) {
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
        if !credential.iter().all(|b| b.is_ascii_graphic()) {
            return Err(AuthError::InvalidRequest(
                "the token contains whitespace or non-ASCII bytes",
            ));
        }
        if credential.len() > self.max_token_len {
            return Err(InvalidToken::TooLong.into());
        }
        // All ASCII graphic, so UTF-8.
        std::str::from_utf8(credential)
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
        }
    }

    fn read(values: &[&[u8]]) -> Result<String, AuthError> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        source().token(&h).map(str::to_owned)
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
