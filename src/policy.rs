//! What a route asks of an already verified token: its type, and freshness.

use std::time::Duration;

use crate::claims::{Claims, NumericDate, TokenType};
use crate::error::AuthError;

/// What a guarded route accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirement {
    token_type: Option<TokenType>,
    fresh: bool,
}

impl Requirement {
    /// Any valid access token, fresh or not.
    pub const fn access() -> Self {
        Requirement {
            token_type: Some(TokenType::Access),
            fresh: false,
        }
    }

    /// A fresh access token: one that proves a recent login.
    pub const fn fresh() -> Self {
        Requirement {
            token_type: Some(TokenType::Access),
            fresh: true,
        }
    }

    /// A refresh token.
    pub const fn refresh() -> Self {
        Requirement {
            token_type: Some(TokenType::Refresh),
            fresh: false,
        }
    }

    /// An access or a refresh token (for a `/refresh` route that, like the seed's,
    /// also takes the access token obtained at login).
    pub const fn any_type() -> Self {
        Requirement {
            token_type: None,
            fresh: false,
        }
    }

    /// Whether a fresh token is required.
    pub const fn needs_fresh(&self) -> bool {
        self.fresh
    }

    pub(crate) fn check<E>(
        &self,
        claims: &Claims<E>,
        now: NumericDate,
        max_age: Option<Duration>,
    ) -> Result<(), AuthError> {
        if let Some(expected) = self.token_type
            && claims.token_type != expected
        {
            return Err(AuthError::WrongTokenType {
                expected,
                found: claims.token_type,
            });
        }
        if self.fresh && !claims.is_fresh_at(now, max_age) {
            return Err(AuthError::FreshTokenRequired { max_age });
        }
        Ok(())
    }
}
