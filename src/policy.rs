//! What a route asks of an already verified token: its type, freshness, scopes.

use std::sync::Arc;
use std::time::Duration;

use crate::claims::{Claims, NumericDate, TokenType};

/// Which part of a [`Requirement`] a verified token does not meet (the reasons
/// turn it into an `AuthError`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Unmet {
    TokenType {
        expected: TokenType,
        found: TokenType,
    },
    Fresh {
        max_age: Option<Duration>,
    },
    Scopes {
        required: Scopes,
        provided: Vec<String>,
    },
}

/// What a guarded route accepts. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    token_type: Option<TokenType>,
    fresh: bool,
    scopes: Option<Scopes>,
}

/// Scopes a route requires: all of them, or any one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scopes {
    /// The scopes named by the route.
    pub required: Arc<[String]>,
    /// `true`: every one is needed; `false`: one is enough.
    pub all: bool,
}

impl Requirement {
    const fn of(token_type: Option<TokenType>, fresh: bool) -> Self {
        Requirement {
            token_type,
            fresh,
            scopes: None,
        }
    }

    /// Any valid access token, fresh or not.
    pub const fn access() -> Self {
        Requirement::of(Some(TokenType::Access), false)
    }

    /// A fresh access token: one that proves a recent login.
    pub const fn fresh() -> Self {
        Requirement::of(Some(TokenType::Access), true)
    }

    /// A refresh token.
    pub const fn refresh() -> Self {
        Requirement::of(Some(TokenType::Refresh), false)
    }

    /// An access or a refresh token (for a `/refresh` route that, like the seed's,
    /// also takes the access token obtained at login).
    pub const fn any_type() -> Self {
        Requirement::of(None, false)
    }

    /// Also requires every scope in `scopes` (AuthX's `admin:*` grants `admin:x`).
    #[must_use]
    pub fn all_scopes<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        self.with_scopes(scopes, true)
    }

    /// Also requires at least one scope in `scopes`.
    #[must_use]
    pub fn any_scope<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        self.with_scopes(scopes, false)
    }

    fn with_scopes<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        scopes: I,
        all: bool,
    ) -> Self {
        self.scopes = Some(Scopes {
            required: scopes.into_iter().map(Into::into).collect(),
            all,
        });
        self
    }

    /// The token type required, if any.
    pub const fn token_type(&self) -> Option<TokenType> {
        self.token_type
    }

    /// The scopes required, if any.
    pub fn scopes(&self) -> Option<&Scopes> {
        self.scopes.as_ref()
    }

    /// Whether a fresh token is required.
    pub const fn needs_fresh(&self) -> bool {
        self.fresh
    }

    /// The kind of guard this is, for metrics and traces: `require_scopes`,
    /// `require_fresh` or `require_auth`. (Optional authentication is not a
    /// requirement but a guard of its own, `OptionalAuth`: a request without
    /// a credential can never be let through by a requirement.)
    pub const fn kind(&self) -> &'static str {
        if self.scopes.is_some() {
            "require_scopes"
        } else if self.fresh {
            "require_fresh"
        } else {
            "require_auth"
        }
    }

    pub(crate) fn check<E>(
        &self,
        claims: &Claims<E>,
        now: NumericDate,
        max_age: Option<Duration>,
    ) -> Result<(), Unmet> {
        if let Some(expected) = self.token_type
            && claims.token_type != expected
        {
            return Err(Unmet::TokenType {
                expected,
                found: claims.token_type,
            });
        }
        if self.fresh && !claims.is_fresh_at(now, max_age) {
            return Err(Unmet::Fresh { max_age });
        }
        if let Some(scopes) = &self.scopes {
            // A route that names no scope is a configuration slip: refuse
            // rather than let `all([])` pass everyone as a scope guard.
            let granted = !scopes.required.is_empty()
                && if scopes.all {
                    claims.has_scopes(&scopes.required)
                } else {
                    scopes.required.iter().any(|s| claims.has_scope(s))
                };
            if !granted {
                return Err(Unmet::Scopes {
                    required: scopes.clone(),
                    provided: claims.granted_scopes().map(str::to_owned).collect(),
                });
            }
        }
        Ok(())
    }
}

/// What a guard admits: requests that meet a [`Requirement`], or (optional
/// authentication, a kind of its own so that no requirement can carry it)
/// requests without any credential, anonymously, besides those with a valid
/// access token. No requirement built any way lets a request without a
/// credential through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Required(Requirement),
    Optional,
}

/// What a credential that an optional guard finds must be.
static OPTIONAL_CREDENTIAL: Requirement = Requirement::access();

impl Admission {
    /// What a credential that is present must meet.
    pub(crate) fn requirement(&self) -> &Requirement {
        match self {
            Admission::Required(requirement) => requirement,
            Admission::Optional => &OPTIONAL_CREDENTIAL,
        }
    }

    /// Whether a request without any credential goes in (without claims).
    pub(crate) const fn lets_anonymous_in(&self) -> bool {
        matches!(self, Admission::Optional)
    }

    /// The guard's kind for metrics and traces: the requirement's, or `optional`.
    pub(crate) const fn kind(&self) -> &'static str {
        match self {
            Admission::Required(requirement) => requirement.kind(),
            Admission::Optional => "optional",
        }
    }
}
