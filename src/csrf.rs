//! The CSRF double submit of a cookie-borne token: the value the request
//! sent in its CSRF header must equal the token's `csrf` claim.

use crate::claims::Claims;
use crate::error::{AuthError, CsrfFailure};

/// The double submit of a cookie-borne token: the CSRF value the request sent
/// must equal the token's `csrf` claim.
pub(crate) fn check_csrf<E>(sent: Option<&[u8]>, claims: &Claims<E>) -> Result<(), AuthError> {
    if let Some(sent) = sent {
        let expected = claims.csrf.as_deref().unwrap_or_default();
        if expected.is_empty() || !constant_time_eq(sent, expected.as_bytes()) {
            return Err(AuthError::Csrf(CsrfFailure::Mismatch));
        }
    }
    Ok(())
}

/// Compares in time that depends on the lengths only, not on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
