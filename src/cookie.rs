//! Tokens in cookies, as AuthX sets them: the token in an HttpOnly cookie, its
//! `csrf` claim in a second cookie scripts can read, sent back in `X-CSRF-TOKEN`
//! on state-changing requests (double submit).

use std::fmt::Write as _;
use std::time::Duration;

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::claims::TokenType;
use crate::error::{AuthError, ConfigError};

/// The `SameSite` attribute of the cookies we set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent on same-site requests only.
    Strict,
    /// Also sent on top-level navigations from other sites (AuthX's default).
    Lax,
    /// Sent everywhere; browsers require `Secure` with it.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Cookie names, attributes and CSRF settings, with AuthX's defaults:
/// `access_token_cookie` / `refresh_token_cookie` (HttpOnly),
/// `csrf_access_token` / `csrf_refresh_token`, `Path=/`, `SameSite=Lax`,
/// `Secure`, session cookies, and CSRF checked on POST, PUT, PATCH and DELETE
/// through the `X-CSRF-TOKEN` header.
#[derive(Clone, Debug)]
pub struct CookieConfig {
    pub(crate) access_name: String,
    pub(crate) refresh_name: String,
    pub(crate) access_csrf_name: String,
    pub(crate) refresh_csrf_name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) same_site: SameSite,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) max_age: Option<Duration>,
    pub(crate) csrf_protect: bool,
    pub(crate) csrf_header: HeaderName,
    pub(crate) csrf_methods: Vec<Method>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            access_name: "access_token_cookie".into(),
            refresh_name: "refresh_token_cookie".into(),
            access_csrf_name: "csrf_access_token".into(),
            refresh_csrf_name: "csrf_refresh_token".into(),
            path: "/".into(),
            domain: None,
            same_site: SameSite::Lax,
            secure: true,
            http_only: true,
            max_age: None,
            csrf_protect: true,
            csrf_header: HeaderName::from_static("x-csrf-token"),
            csrf_methods: vec![Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
        }
    }
}

impl CookieConfig {
    /// The access-token cookie's name (`JWT_ACCESS_COOKIE_NAME`).
    #[must_use]
    pub fn access_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.access_name = name.into();
        self
    }

    /// The refresh-token cookie's name (`JWT_REFRESH_COOKIE_NAME`).
    #[must_use]
    pub fn refresh_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.refresh_name = name.into();
        self
    }

    /// The CSRF cookies' names (`JWT_ACCESS_CSRF_COOKIE_NAME`, `JWT_REFRESH_CSRF_COOKIE_NAME`).
    #[must_use]
    pub fn csrf_cookie_names(
        mut self,
        access: impl Into<String>,
        refresh: impl Into<String>,
    ) -> Self {
        self.access_csrf_name = access.into();
        self.refresh_csrf_name = refresh.into();
        self
    }

    /// `Path` of every cookie (default `/`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// `Domain` of every cookie (default: none, host-only).
    #[must_use]
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// `SameSite` (default `Lax`). [`SameSite::None`] sends `SameSite=None`
    /// and needs `Secure` (browsers drop such a cookie otherwise; `AuthX::new`
    /// refuses it with [`danger_insecure`](Self::danger_insecure)).
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Drops `Secure` (on by default): the cookies then travel over plain
    /// HTTP, where anyone on the path reads them. Only for plain-HTTP
    /// development on one machine.
    #[must_use]
    pub fn danger_insecure(mut self) -> Self {
        self.secure = false;
        self
    }

    /// `HttpOnly` on the token cookies (default on). The CSRF cookies never are,
    /// since scripts must read them.
    #[must_use]
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// `Max-Age` (default: none, cookies end with the browser session).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Takes cookie-borne tokens without the CSRF double submit (on by
    /// default): any site the user visits can then make requests in the
    /// user's name. Only where every other defence holds (`SameSite=Strict`
    /// and no state-changing `GET`), or for an API no browser calls.
    #[must_use]
    pub fn danger_without_csrf_protection(mut self) -> Self {
        self.csrf_protect = false;
        self
    }

    /// The header that carries the CSRF value (default `X-CSRF-TOKEN`).
    #[must_use]
    pub fn csrf_header(mut self, name: HeaderName) -> Self {
        self.csrf_header = name;
        self
    }

    /// The methods that need the CSRF value (default POST, PUT, PATCH, DELETE).
    /// At least one while the CSRF double submit is on (an empty
    /// list would turn the protection off unseen: `AuthX::new` refuses it).
    #[must_use]
    pub fn csrf_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.csrf_methods = methods.into_iter().collect();
        self
    }

    /// Refuses names and attributes that would break the `Set-Cookie` line.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let names = [
            &self.access_name,
            &self.refresh_name,
            &self.access_csrf_name,
            &self.refresh_csrf_name,
        ];
        for name in names {
            // RFC 6265 4.1.1: a cookie-name is an RFC 7230 token.
            let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || !name.bytes().all(token_char) {
                return Err(ConfigError::new(format!(
                    "CookieConfig: {name:?} is not a cookie name (RFC 6265 token characters only)"
                )));
            }
        }
        let attribute_ok = |v: &str| v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b';');
        if !self.path.starts_with('/') || !attribute_ok(&self.path) {
            return Err(ConfigError::new(
                "CookieConfig::path must start with '/' and hold no ';'",
            ));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || !attribute_ok(domain) || domain.contains(' '))
        {
            return Err(ConfigError::new(
                "CookieConfig::domain must be a host name (no space, no ';'), or unset",
            ));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::new(
                "CookieConfig: SameSite=None cookies need Secure (browsers drop them \
                 otherwise): keep Secure, or choose SameSite::Lax",
            ));
        }
        if self.csrf_protect && self.csrf_methods.is_empty() {
            return Err(ConfigError::new(
                "csrf_methods is empty, which would turn the CSRF protection off: \
                 name the methods, or say danger_without_csrf_protection()",
            ));
        }
        Ok(())
    }

    /// The token cookie's name and its CSRF cookie's name for `token_type`.
    pub(crate) fn names(&self, token_type: TokenType) -> (&str, &str) {
        match token_type {
            TokenType::Access => (&self.access_name, &self.access_csrf_name),
            TokenType::Refresh => (&self.refresh_name, &self.refresh_csrf_name),
        }
    }

    pub(crate) fn needs_csrf(&self, method: &Method) -> bool {
        self.csrf_protect && self.csrf_methods.contains(method)
    }

    /// Appends the `Set-Cookie` lines that store `token` (and its `csrf`).
    pub(crate) fn set(
        &self,
        headers: &mut HeaderMap,
        token_type: TokenType,
        token: &str,
        csrf: Option<&str>,
    ) -> Result<(), AuthError> {
        let (name, csrf_name) = self.names(token_type);
        self.append(headers, name, token, self.http_only, false)?;
        if self.csrf_protect {
            self.append(headers, csrf_name, csrf.unwrap_or(""), false, false)?;
        }
        Ok(())
    }

    /// Appends the `Set-Cookie` lines that delete the cookies of `token_type`.
    pub(crate) fn unset(&self, headers: &mut HeaderMap, token_type: TokenType) {
        let (name, csrf_name) = self.names(token_type);
        // Names and attributes were validated, so these cannot fail.
        let _ = self.append(headers, name, "", self.http_only, true);
        if self.csrf_protect {
            let _ = self.append(headers, csrf_name, "", false, true);
        }
    }

    fn append(
        &self,
        headers: &mut HeaderMap,
        name: &str,
        value: &str,
        http_only: bool,
        expire: bool,
    ) -> Result<(), AuthError> {
        // RFC 6265 4.1.1 cookie-octets; tokens and UUIDs always are.
        if !value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\",;\\".contains(&b))
        {
            return Err(AuthError::InvalidRequest(
                "the value cannot be stored in a cookie",
            ));
        }
        let mut line = format!("{name}={value}; Path={}", self.path);
        if let Some(domain) = &self.domain {
            let _ = write!(line, "; Domain={domain}");
        }
        if expire {
            line.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        } else if let Some(age) = self.max_age {
            let _ = write!(line, "; Max-Age={}", age.as_secs());
        }
        if self.secure {
            line.push_str("; Secure");
        }
        if http_only {
            line.push_str("; HttpOnly");
        }
        let _ = write!(line, "; SameSite={}", self.same_site.as_str());
        let value = HeaderValue::try_from(line)
            .map_err(|_| AuthError::InvalidRequest("the cookie is not a valid header value"))?;
        headers.append(SET_COOKIE, value);
        Ok(())
    }
}

/// The value of cookie `name` across every `Cookie` header (HTTP/2 may split
/// them). Two different values are refused rather than guessed between.
pub(crate) fn cookie_value<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a [u8]>, AuthError> {
    let mut found: Option<&[u8]> = None;
    for header in headers.get_all(COOKIE) {
        let bytes = header.as_bytes();
        // The separators found by `memchr`: the header holds a whole token.
        let ends = memchr::memchr_iter(b';', bytes).chain(std::iter::once(bytes.len()));
        let mut start = 0;
        for end in ends {
            let pair = bytes[start..end].trim_ascii();
            start = end + 1;
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name.as_bytes() {
                continue;
            }
            let mut value = pair[eq + 1..].trim_ascii();
            if let [b'"', inner @ .., b'"'] = value {
                value = inner;
            }
            match found {
                Some(seen) if seen != value => {
                    return Err(AuthError::InvalidRequest(
                        "conflicting cookies of the same name",
                    ));
                }
                _ => found = Some(value),
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookies(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn finds_a_cookie_among_others_and_across_headers() {
        let h = with_cookies(&["a=1; access_token_cookie=x.y.z", "b=\"2\""]);
        assert_eq!(
            cookie_value(&h, "access_token_cookie").unwrap(),
            Some(&b"x.y.z"[..])
        );
        assert_eq!(cookie_value(&h, "b").unwrap(), Some(&b"2"[..]));
        assert_eq!(cookie_value(&h, "access").unwrap(), None);
        assert_eq!(cookie_value(&HeaderMap::new(), "a").unwrap(), None);
    }

    #[test]
    fn conflicting_duplicates_are_refused() {
        let h = with_cookies(&["a=1; a=1"]);
        assert_eq!(cookie_value(&h, "a").unwrap(), Some(&b"1"[..]));
        let h = with_cookies(&["a=1", "a=2"]);
        assert!(matches!(
            cookie_value(&h, "a"),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn set_and_unset_lines() {
        let config = CookieConfig::default()
            .domain("example.com")
            .max_age(Duration::from_secs(60));
        let mut h = HeaderMap::new();
        config
            .set(&mut h, TokenType::Access, "a.b.c", Some("c5rf"))
            .unwrap();
        config.unset(&mut h, TokenType::Refresh);
        let lines: Vec<_> = h
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "access_token_cookie=a.b.c; Path=/; Domain=example.com; Max-Age=60; Secure; HttpOnly; SameSite=Lax",
                "csrf_access_token=c5rf; Path=/; Domain=example.com; Max-Age=60; Secure; SameSite=Lax",
                "refresh_token_cookie=; Path=/; Domain=example.com; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax",
                "csrf_refresh_token=; Path=/; Domain=example.com; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; SameSite=Lax",
            ]
        );
        assert!(config.set(&mut h, TokenType::Access, "a;b", None).is_err());
    }

    #[test]
    fn unsafe_settings_are_config_errors() {
        assert!(CookieConfig::default().validate().is_ok());
        assert!(
            CookieConfig::default()
                .access_cookie_name("a b")
                .validate()
                .is_err()
        );
        assert!(
            CookieConfig::default()
                .path("/x; Domain=evil")
                .validate()
                .is_err()
        );
        assert!(CookieConfig::default().domain("a;b").validate().is_err());
    }
}
