//! Claims without tokens, for a handler's unit test.

use crate::claims::{Claims, NoExtra, NumericDate, TokenType};

/// Claims for `sub`, as a verified access token would give them (valid for
/// five minutes, no issuer or audience); set any public field before use.
pub fn test_claims(sub: &str) -> Claims<NoExtra> {
    let now = NumericDate::now().whole_seconds();
    let exp = NumericDate::from_secs(now.as_secs_f64() as u64 + 300);
    Claims::bare(sub.to_owned(), TokenType::Access, now, exp, NoExtra)
}

/// `request` with `claims` in its extensions, where a guard would have put
/// them: a handler (or an axum extractor of `Claims`) reads them as after a
/// guard. No guard takes them: they carry no guard's mark, so a guarded
/// route still asks for a token.
pub fn with_claims<B, E: Clone + Send + Sync + 'static>(
    mut request: http::Request<B>,
    claims: Claims<E>,
) -> http::Request<B> {
    request.extensions_mut().insert(claims);
    request
}
