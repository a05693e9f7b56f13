//! The HTTP shape of a refusal: a status, `{"detail": ...}` in AuthX's words,
//! and an RFC 6750 / RFC 9470 `WWW-Authenticate` challenge (or `Retry-After`
//! when it is not the credential's fault); with DPoP, the RFC 9449 challenge
//! too (beside Bearer's when both are taken; the error goes to the scheme the
//! request used). Each kind of refusal is built once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};

use super::grpc;
use crate::claims::NumericDate;
use crate::dpop::{DPOP_NONCE, Nonces};
use crate::error::{AuthError, CsrfFailure, DpopError, InvalidToken};
use crate::policy::Scopes;
use crate::request::RequestHead;
use crate::source::TokenLocation;

/// What the default rejection needs from the configuration, and the refusals
/// already built (a refusal costs no formatting the second time).
#[derive(Debug)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) realm: Option<String>,
    /// AuthX's wording for "no token", for each set of locations a request
    /// could have used (see `missing_mask`).
    pub(crate) missing_details: [String; 16],
    /// The credential header (to tell a `DPoP` credential where DPoP is off).
    pub(crate) header: HeaderName,
    pub(crate) csrf_missing_detail: String,
    /// The DPoP challenge, when DPoP is taken.
    pub(crate) dpop: Option<DpopChallenge>,
    /// The protected resource's metadata URL (RFC 9728 5.1), named in every
    /// challenge.
    pub(crate) resource_metadata: Option<String>,
    /// By kind of refusal and whether the error goes to the DPoP challenge.
    /// With a protected resource's 401, the route's scopes too.
    pub(crate) prepared: RwLock<HashMap<PreparedKind, Prepared>>,
}

/// What the DPoP challenge (RFC 9449 7.1) says.
#[derive(Debug)]
pub(crate) struct DpopChallenge {
    /// The credential header, to tell which scheme a request used.
    pub(crate) header: HeaderName,
    /// The proof algorithms we take, space-separated, for `algs`.
    pub(crate) algs: String,
    /// Whether Bearer is taken too (then both challenges are sent).
    pub(crate) bearer: bool,
    /// The server nonces, for `use_dpop_nonce`.
    pub(crate) nonces: Option<Nonces>,
}

/// A kind of refusal (see `fixed_kind`), whether its error goes to the DPoP
/// challenge, and the scopes a protected resource's 401 names.
type PreparedKind = (&'static str, &'static str, bool, Option<Arc<[String]>>);

/// The most refusals kept prepared: the kinds are names in the binary, but
/// the scopes come from whatever requirements the application builds.
const MAX_PREPARED: usize = 512;

/// A refusal's body and challenges (the one with the error first), built
/// once per kind of refusal.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    body: Bytes,
    challenges: [Option<HeaderValue>; 2],
}

/// A name for refusals whose wording never changes (for one configuration and
/// one `missing_mask`); `None` for those that carry values (scopes, serde's
/// messages).
fn fixed_kind(error: &AuthError, missing_mask: usize) -> Option<(&'static str, &'static str)> {
    const MASKS: [&str; 16] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    ];
    Some(match error {
        AuthError::MissingToken => ("missing", MASKS[missing_mask]),
        AuthError::InvalidRequest(why) => ("request", why),
        AuthError::InvalidToken(InvalidToken::Malformed(Cow::Borrowed(why))) => ("malformed", why),
        AuthError::InvalidToken(InvalidToken::Claims(Cow::Borrowed(why))) => ("claims", why),
        AuthError::InvalidToken(InvalidToken::Malformed(_) | InvalidToken::Claims(_)) => {
            return None;
        }
        AuthError::InvalidToken(_) => ("token", error.kind()),
        AuthError::WrongTokenType { expected, .. } => ("type", expected.as_str()),
        AuthError::FreshTokenRequired { .. } => ("fresh", ""),
        AuthError::InsufficientScope { .. }
        | AuthError::InsufficientPermissions { .. }
        | AuthError::InsufficientAuthentication { .. } => return None,
        AuthError::Csrf(CsrfFailure::Missing) => ("csrf", "missing"),
        AuthError::Csrf(CsrfFailure::Mismatch) => ("csrf", "mismatch"),
        AuthError::Revoked => ("revoked", ""),
        AuthError::RefreshReused => ("reused", ""),
        AuthError::StoreUnavailable => ("store", ""),
        AuthError::UnknownUser { forbidden: false } => ("user", "unknown"),
        AuthError::UnknownUser { forbidden: true } => ("user", "forbidden"),
        AuthError::UserUnavailable => ("user", "unavailable"),
        AuthError::KeysUnavailable { .. } => ("keys", ""),
        AuthError::IntrospectionUnavailable { .. } => ("introspection", ""),
        AuthError::Issue(_) => ("issue", ""),
        AuthError::BodyTooLarge => ("body", ""),
        AuthError::Dpop(DpopError::InvalidProof(why)) => ("dpop", why),
        AuthError::Dpop(DpopError::Binding(why)) => ("binding", why),
        AuthError::Dpop(DpopError::Replayed) => ("replayed", ""),
        AuthError::Dpop(DpopError::UseNonce) => ("nonce", ""),
        AuthError::Dpop(DpopError::TooManyProofs) => ("flood", ""),
    })
}

impl Challenge {
    /// The answers of a default configuration (the `Authorization: Bearer`
    /// header, no realm, no DPoP), for a refusal made without an `AuthX` at
    /// hand (`AuthError` as axum's `IntoResponse`).
    #[cfg(feature = "axum")]
    pub(crate) fn plain() -> &'static Challenge {
        static PLAIN: std::sync::LazyLock<Challenge> = std::sync::LazyLock::new(|| Challenge {
            scheme: "Bearer".to_owned(),
            realm: None,
            missing_details: missing_details(&Places {
                locations: &[crate::source::TokenLocation::Headers],
                scheme: "Bearer",
                header: "authorization",
                cookie: "access_token_cookie",
                query: "token",
            }),
            header: http::header::AUTHORIZATION,
            csrf_missing_detail: "Missing CSRF token in 'X-CSRF-TOKEN' header.".to_owned(),
            dpop: None,
            resource_metadata: None,
            prepared: Default::default(),
        });
        &PLAIN
    }

    /// `401`/`400`/`403`/`503` with `{"detail": ...}` and an RFC 6750
    /// `WWW-Authenticate`; for a gRPC request, a trailers-only gRPC status.
    /// `route_scopes`: the refusing route's, which a protected resource's
    /// 401 names (`scope`), so that a client asks for them (MCP).
    pub(crate) fn response(
        &self,
        error: &AuthError,
        request: RequestHead<'_>,
        route_scopes: Option<&Scopes>,
    ) -> Response<Bytes> {
        let dpop_scheme = self.error_goes_to_dpop(error, request);
        let scope_hint = route_scopes.filter(|_| {
            self.resource_metadata.is_some() && error.status() == StatusCode::UNAUTHORIZED
        });
        let mut res = if let Some(content_type) = grpc::content_type(request) {
            let detail = self.detail(error, request);
            let [challenge, _] = self.www_authenticate(error, &detail, dpop_scheme, scope_hint);
            let challenge = challenge.and_then(|c| HeaderValue::from_str(&c).ok());
            grpc::refusal(error, &detail, challenge, content_type)
        } else {
            let prepared = match fixed_kind(error, self.missing_mask(request)) {
                Some((kind, why)) => {
                    let scopes = scope_hint.map(|s| s.required.clone());
                    let kind = (kind, why, dpop_scheme, scopes);
                    self.prepared_for(kind, error, request, scope_hint)
                }
                None => self.prepare(error, request, dpop_scheme, scope_hint),
            };
            let mut res = Response::new(prepared.body);
            *res.status_mut() = error.status();
            let headers = res.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if matches!(
                error.status(),
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
            ) {
                // Not the credential's fault: no challenge; come back when
                // the answer can differ.
                let retry_after = match error {
                    AuthError::KeysUnavailable { retry_after }
                    | AuthError::IntrospectionUnavailable { retry_after } => {
                        HeaderValue::from(retry_after.as_secs().max(1))
                    }
                    _ => HeaderValue::from_static("1"),
                };
                headers.insert(http::header::RETRY_AFTER, retry_after);
            } else if error.status().is_client_error() {
                for challenge in prepared.challenges.into_iter().flatten() {
                    headers.append(WWW_AUTHENTICATE, challenge);
                }
            }
            res
        };
        if let AuthError::Dpop(DpopError::UseNonce) = error
            && let Some(nonces) = self.dpop.as_ref().and_then(|d| d.nonces.as_ref())
            && let Ok(nonce) = HeaderValue::from_str(&nonces.current(NumericDate::now()))
        {
            res.headers_mut().insert(DPOP_NONCE.clone(), nonce);
        }
        res
    }

    /// Whether the error belongs on the DPoP challenge: a DPoP refusal, a
    /// request that used the DPoP scheme, or a route that takes only DPoP.
    fn error_goes_to_dpop(&self, error: &AuthError, request: RequestHead<'_>) -> bool {
        let Some(dpop) = &self.dpop else {
            return false;
        };
        let used_dpop = request.headers.get(&dpop.header).is_some_and(|v| {
            v.as_bytes()
                .get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"dpop "))
        });
        matches!(error, AuthError::Dpop(_)) || used_dpop || !dpop.bearer
    }

    /// The `detail` of the default answer (AuthX's wording where AuthX has one).
    pub(crate) fn detail<'a>(
        &'a self,
        error: &AuthError,
        request: RequestHead<'_>,
    ) -> Cow<'a, str> {
        match error {
            // AuthX's wording, so clients that match on it keep working.
            AuthError::MissingToken => {
                Cow::Borrowed(self.missing_details[self.missing_mask(request)].as_str())
            }
            AuthError::Csrf(CsrfFailure::Missing) => {
                Cow::Borrowed(self.csrf_missing_detail.as_str())
            }
            other => Cow::Owned(other.to_string()),
        }
    }

    /// Which locations a request without a token could have used: the header
    /// always (bit 0), cookies when it sent any (bit 1), the query when it has
    /// one (bit 2). A client that sends no cookies hears only of the header.
    /// Bit 3: its credential used the `DPoP` scheme, which is not taken here.
    fn missing_mask(&self, request: RequestHead<'_>) -> usize {
        let dpop_refused = self.dpop.is_none()
            && request.headers.get(&self.header).is_some_and(|value| {
                value
                    .as_bytes()
                    .get(..5)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"DPoP "))
            });
        1 | usize::from(request.headers.contains_key(http::header::COOKIE)) << 1
            | usize::from(request.uri.query().is_some()) << 2
            | usize::from(dpop_refused) << 3
    }

    fn prepare(
        &self,
        error: &AuthError,
        request: RequestHead<'_>,
        dpop_scheme: bool,
        scope_hint: Option<&Scopes>,
    ) -> Prepared {
        let detail = self.detail(error, request);
        Prepared {
            body: Bytes::from(serde_json::json!({ "detail": detail }).to_string()),
            challenges: self
                .www_authenticate(error, &detail, dpop_scheme, scope_hint)
                .map(|c| c.and_then(|c| HeaderValue::from_str(&c).ok())),
        }
    }

    /// The prepared refusal of this kind, built on first use. The kinds are
    /// names in the binary and the scopes the routes', and the map is
    /// bounded besides, so it cannot grow with traffic.
    fn prepared_for(
        &self,
        kind: PreparedKind,
        error: &AuthError,
        request: RequestHead<'_>,
        scope_hint: Option<&Scopes>,
    ) -> Prepared {
        let cached = self
            .prepared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&kind)
            .cloned();
        cached.unwrap_or_else(|| {
            let prepared = self.prepare(error, request, kind.2, scope_hint);
            let mut map = self.prepared.write().unwrap_or_else(|e| e.into_inner());
            if map.len() < MAX_PREPARED {
                map.insert(kind, prepared.clone());
            }
            prepared
        })
    }

    /// The challenges: the configured scheme's (Bearer), and with DPoP the
    /// DPoP one; the error's parameters go to one of them (`dpop_scheme`),
    /// which comes first. A protected resource's metadata URL goes to both.
    fn www_authenticate(
        &self,
        error: &AuthError,
        detail: &str,
        dpop_scheme: bool,
        scope_hint: Option<&Scopes>,
    ) -> [Option<String>; 2] {
        let mut realm: Vec<String> = self
            .realm
            .iter()
            .map(|realm| format!("realm=\"{}\"", quoted_string_safe(realm)))
            .collect();
        let mut error_params = self.error_params(error, detail);
        if let Some(scopes) = scope_hint {
            error_params.push(scope_param(scopes));
        }
        if let Some(url) = &self.resource_metadata {
            realm.push(format!("resource_metadata=\"{}\"", quoted_string_safe(url)));
        }
        let with_error = [realm.clone(), error_params].concat();
        let Some(dpop) = &self.dpop else {
            return [Some(challenge(&self.scheme, &with_error)), None];
        };
        let algs = format!("algs=\"{}\"", dpop.algs);
        if dpop_scheme {
            let bearer = dpop.bearer.then(|| challenge(&self.scheme, &realm));
            [
                Some(challenge("DPoP", &[with_error, vec![algs]].concat())),
                bearer,
            ]
        } else {
            let dpop = challenge("DPoP", &[realm, vec![algs]].concat());
            [Some(challenge(&self.scheme, &with_error)), Some(dpop)]
        }
    }

    /// `error`, `error_description` and what the error adds (`max_age`, `scope`).
    fn error_params(&self, error: &AuthError, detail: &str) -> Vec<String> {
        let mut params = Vec::new();
        if let Some(code) = error.error_code() {
            params.push(format!("error=\"{code}\""));
            params.push(format!(
                "error_description=\"{}\"",
                quoted_string_safe(detail)
            ));
        }
        match error {
            AuthError::FreshTokenRequired { max_age: Some(age) } => {
                params.push(format!("max_age={}", age.as_secs()));
            }
            AuthError::InsufficientScope { required, .. } => params.push(scope_param(required)),
            AuthError::InsufficientAuthentication { acr_values, .. } if !acr_values.is_empty() => {
                let values = acr_values.join(" ");
                params.push(format!("acr_values=\"{}\"", quoted_string_safe(&values)));
            }
            _ => {}
        }
        params
    }
}

/// `scope="..."`: what a route needs.
fn scope_param(scopes: &Scopes) -> String {
    let scope = scopes.required.join(" ");
    format!("scope=\"{}\"", quoted_string_safe(&scope))
}

/// `scheme` with its parameters.
fn challenge(scheme: &str, params: &[String]) -> String {
    if params.is_empty() {
        scheme.to_owned()
    } else {
        format!("{scheme} {}", params.join(", "))
    }
}

/// RFC 6750 3: `error_description` may hold only %x20-21 / %x23-5B / %x5D-7E.
fn quoted_string_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// Where a token may be, named for AuthX's "no token" wording.
pub(crate) struct Places<'a> {
    pub(crate) locations: &'a [TokenLocation],
    pub(crate) scheme: &'a str,
    pub(crate) header: &'a str,
    pub(crate) cookie: &'a str,
    pub(crate) query: &'a str,
}

/// AuthX's "no token" wording for every mask (bit 0 the header, 1 cookies,
/// 2 the query): one sentence per configured location that the request could
/// have used; every configured location when it could have used none. Bit 3
/// (a `DPoP` credential where DPoP is off) adds a sentence saying so.
pub(crate) fn missing_details(places: &Places<'_>) -> [String; 16] {
    std::array::from_fn(|mask| {
        let detail = missing_detail(places, mask & 7);
        if mask & 8 == 0 {
            detail
        } else {
            format!("{detail} The 'DPoP' scheme is not taken here.")
        }
    })
}

fn missing_detail(places: &Places<'_>, mask: usize) -> String {
    let bit = |location: &TokenLocation| match location {
        // A JSON body may come with any request: named as the header is.
        TokenLocation::Headers | TokenLocation::Json => 1,
        TokenLocation::Cookies => 2,
        TokenLocation::Query => 4,
    };
    let usable = places.locations.iter().any(|l| mask & bit(l) != 0);
    let sentences: Vec<String> = places
        .locations
        .iter()
        .filter(|l| !usable || mask & bit(l) != 0)
        .map(|location| match location {
            TokenLocation::Headers => format!(
                "Missing '{}' in '{}' header.",
                places.scheme,
                title_case(places.header)
            ),
            TokenLocation::Cookies => format!("Missing cookie '{}'.", places.cookie),
            TokenLocation::Query => {
                format!("Missing '{}' in query parameters.", places.query)
            }
            // AuthX's wording.
            TokenLocation::Json => "Missing token in json data".to_owned(),
        })
        .collect();
    sentences.join(" ")
}

/// `authorization` as people write it: `Authorization` (HeaderName is lowercase).
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}
