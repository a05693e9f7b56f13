//! What a route asks of an already verified token: its type, freshness, and
//! a [`Rule`] (scopes, roles, authentication level, compositions).

use std::sync::Arc;
use std::time::Duration;

use crate::claims::{Claims, NumericDate, TokenType};

mod rule;

use rule::Missing;
pub use rule::{ClaimsView, Rule};

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
    /// Roles, a composition or a predicate: what the rule needed.
    Permissions(Rule),
    /// A stronger authentication (`acr`, `amr`).
    Authentication(Rule),
    /// A token bound to a client certificate (RFC 8705).
    Certificate,
}

/// What a guarded route accepts. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    token_type: Option<TokenType>,
    fresh: bool,
    rule: Option<Rule>,
    certificate_bound: bool,
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
            rule: None,
            certificate_bound: false,
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

    /// An access or a refresh token (for a `/refresh` route that, like AuthX's example,
    /// also takes the access token obtained at login).
    pub const fn any_type() -> Self {
        Requirement::of(None, false)
    }

    /// Also requires a certificate-bound token (RFC 8705 3: `cnf.x5t#S256`),
    /// presented with its client certificate: a bearer token, however
    /// valid, is refused (401 `invalid_token`, reason
    /// `certificate_binding`). The binding itself is checked on every route
    /// for every bound token; this makes it required.
    #[must_use]
    pub fn certificate_bound(mut self) -> Self {
        self.certificate_bound = true;
        self
    }

    /// Also requires every scope in `scopes` (AuthX's `admin:*` grants `admin:x`).
    #[must_use]
    pub fn all_scopes<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        self.rule(Rule::all_scopes(scopes))
    }

    /// Also requires at least one scope in `scopes`.
    #[must_use]
    pub fn any_scope<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        self.rule(Rule::any_scope(scopes))
    }

    /// Also requires every role (group, permission) in `roles` among the
    /// token's [`Permissions`](crate::Permissions).
    #[must_use]
    pub fn all_roles<I: IntoIterator<Item = S>, S: Into<String>>(self, roles: I) -> Self {
        self.rule(Rule::all_roles(roles))
    }

    /// Also requires at least one role (group, permission) in `roles`.
    #[must_use]
    pub fn any_role<I: IntoIterator<Item = S>, S: Into<String>>(self, roles: I) -> Self {
        self.rule(Rule::any_role(roles))
    }

    /// Also requires an `acr` among `values` (RFC 9470 step-up).
    #[must_use]
    pub fn acr_values<I: IntoIterator<Item = S>, S: Into<String>>(self, values: I) -> Self {
        self.rule(Rule::acr_values(values))
    }

    /// Also requires an `amr` holding every method in `methods` (`["otp"]`).
    #[must_use]
    pub fn amr<I: IntoIterator<Item = S>, S: Into<String>>(self, methods: I) -> Self {
        self.rule(Rule::amr(methods))
    }

    /// Requires that `actor` acts for the subject ([`Rule::actor`]): a
    /// token exchanged by that service on a user's behalf.
    #[must_use]
    pub fn actor(self, actor: impl Into<String>) -> Self {
        self.rule(Rule::actor(actor))
    }

    /// Also requires `rule` (every call adds one; all must hold).
    #[must_use]
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rule = Some(match self.rule.take() {
            Some(before) => before.and(rule),
            None => rule,
        });
        self
    }

    /// Why this requirement can never be met, or reads a wildcard as
    /// required: a configuration slip ([`AuthX::guard`](crate::AuthX::guard)
    /// refuses it; a guard built anyway refuses every request).
    pub fn flaw(&self) -> Option<String> {
        self.rule.as_ref().and_then(Rule::flaw)
    }

    /// The token type required, if any.
    pub const fn token_type(&self) -> Option<TokenType> {
        self.token_type
    }

    /// The scopes required for sure, if any (a protected resource's 401
    /// names them).
    pub fn scopes(&self) -> Option<&Scopes> {
        self.rule.as_ref().and_then(Rule::scopes)
    }

    /// What the token's claims must meet beyond type and freshness.
    pub fn rule_of(&self) -> Option<&Rule> {
        self.rule.as_ref()
    }

    /// Whether a fresh token is required.
    pub const fn needs_fresh(&self) -> bool {
        self.fresh
    }

    /// The kind of guard this is, for metrics and traces: `require_scopes`,
    /// `require_rule` (roles, authentication level, compositions),
    /// `require_fresh` or `require_auth`. (Optional authentication is not a
    /// requirement but a guard of its own, `OptionalAuth`: a request without
    /// a credential can never be let through by a requirement.)
    pub fn kind(&self) -> &'static str {
        if let Some(rule) = &self.rule {
            if rule.is_scopes_only() {
                "require_scopes"
            } else {
                "require_rule"
            }
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
        if self.certificate_bound && claims.cnf.as_ref().is_none_or(|cnf| cnf.x5t_s256.is_none()) {
            return Err(Unmet::Certificate);
        }
        if self.fresh && !claims.is_fresh_at(now, max_age) {
            return Err(Unmet::Fresh { max_age });
        }
        let Some(rule) = &self.rule else {
            return Ok(());
        };
        // A slip in the route's own rule refuses everyone (see `flaw`).
        if rule.flaw().is_some() {
            return Err(Unmet::Permissions(rule.clone()));
        }
        match rule.check(&ClaimsView::of(claims)) {
            Ok(()) => {}
            Err(Missing::Scopes(required)) => {
                return Err(Unmet::Scopes {
                    required,
                    provided: claims.granted_scopes().map(str::to_owned).collect(),
                });
            }
            Err(Missing::Authentication(rule)) => return Err(Unmet::Authentication(rule)),
            Err(Missing::Permissions(rule)) => return Err(Unmet::Permissions(rule)),
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
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Admission::Required(requirement) => requirement.kind(),
            Admission::Optional => "optional",
        }
    }
}
