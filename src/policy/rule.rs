//! Conditions on a verified token's claims that compose: scopes (AuthX's
//! wildcards granted), roles from the issuer's claim paths, how strongly the
//! user authenticated (`acr`, `amr`), `all_of` / `any_of` of them, and a
//! named predicate. Evaluating one allocates nothing; only a refusal renders
//! what was needed (names from the route, never values from the token).

use std::fmt;
use std::sync::Arc;

use crate::claims::{Actor, Claims, Permissions, ScopeClaims};

use super::Scopes;

/// One condition a route puts on a verified token. Build with the
/// constructors and combine with [`all_of`](Self::all_of) /
/// [`any_of`](Self::any_of); give it to
/// [`Requirement::rule`](super::Requirement::rule).
///
/// ```
/// use tower_authx::{Requirement, Rule};
///
/// // Scope orders:write, or role admin.
/// let orders = Requirement::access().rule(Rule::any_of([
///     Rule::all_scopes(["orders:write"]),
///     Rule::any_role(["admin"]),
/// ]));
/// ```
#[derive(Clone)]
pub struct Rule(Node);

#[derive(Clone)]
enum Node {
    Scopes(Scopes),
    Roles { required: Arc<[String]>, all: bool },
    Acr(Arc<[String]>),
    Amr(Arc<[String]>),
    AllOf(Arc<[Rule]>),
    AnyOf(Arc<[Rule]>),
    Predicate(Predicate),
}

/// A named test over the verified claims.
#[derive(Clone)]
struct Predicate {
    name: Arc<str>,
    test: Arc<dyn Fn(&ClaimsView<'_>) -> bool + Send + Sync>,
}

/// What a [`Rule::predicate`] sees of the verified claims.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ClaimsView<'a> {
    /// The subject.
    pub sub: &'a str,
    /// The issuer.
    pub iss: Option<&'a str>,
    /// `acr`.
    pub acr: Option<&'a str>,
    /// `amr`.
    pub amr: &'a [String],
    /// The roles, groups or permissions read from the issuer's claim paths.
    pub permissions: &'a Permissions,
    /// `act` (RFC 8693): who acts for the subject, and through whom.
    pub act: Option<&'a Actor>,
    scopes: ScopeClaims<'a>,
    client: bool,
}

impl<'a> ClaimsView<'a> {
    pub(crate) fn of<E>(claims: &'a Claims<E>) -> Self {
        ClaimsView {
            sub: &claims.sub,
            iss: claims.iss.as_deref(),
            acr: claims.acr.as_deref(),
            amr: claims.amr.as_deref().unwrap_or_default(),
            permissions: &claims.permissions,
            act: claims.act.as_ref(),
            scopes: claims.scope_claims(),
            client: claims.is_client(),
        }
    }

    /// Whether no user is behind the token ([`Claims::is_client`]): its
    /// `sub` names a client, not a user.
    pub fn is_client(&self) -> bool {
        self.client
    }

    /// Every scope granted (AuthX's `scopes`, OAuth's `scope` and `scp`).
    pub fn granted_scopes(&self) -> impl Iterator<Item = &'a str> {
        self.scopes.iter()
    }

    /// Whether `required` is granted, directly or through a wildcard
    /// (`admin:*` grants `admin` and `admin:users`).
    pub fn has_scope(&self, required: &str) -> bool {
        self.scopes.covers(required)
    }
}

fn list<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Arc<[String]> {
    items.into_iter().map(Into::into).collect()
}

impl Rule {
    /// Every scope in `scopes` (granted wildcards count).
    pub fn all_scopes<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Rule {
        Rule(Node::Scopes(Scopes {
            required: list(scopes),
            all: true,
        }))
    }

    /// At least one scope in `scopes`.
    pub fn any_scope<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Rule {
        Rule(Node::Scopes(Scopes {
            required: list(scopes),
            all: false,
        }))
    }

    /// Every role (group, permission) in `roles`, among the token's
    /// [`Permissions`].
    pub fn all_roles<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Rule {
        Rule(Node::Roles {
            required: list(roles),
            all: true,
        })
    }

    /// At least one role (group, permission) in `roles`.
    pub fn any_role<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Rule {
        Rule(Node::Roles {
            required: list(roles),
            all: false,
        })
    }

    /// An `acr` among `values` (RFC 9470: otherwise 401
    /// `insufficient_user_authentication` with `acr_values`).
    pub fn acr_values<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Rule {
        Rule(Node::Acr(list(values)))
    }

    /// An `amr` that holds every method in `methods` (`["otp"]`, `["mfa"]`).
    pub fn amr<I: IntoIterator<Item = S>, S: Into<String>>(methods: I) -> Rule {
        Rule(Node::Amr(list(methods)))
    }

    /// Delegation (RFC 8693): the token says in `act` that `actor` (a
    /// client id) acts for its subject, as a token exchanged by that service
    /// does. A token without `act` (the user's own) is refused.
    pub fn actor(actor: impl Into<String>) -> Rule {
        let actor = actor.into();
        Rule::predicate(&format!("acting through {actor}"), move |claims| {
            claims.act.is_some_and(|act| act.sub == actor)
        })
    }

    /// Delegation through trusted parties only: every actor of the token's
    /// `act` chain is among `actors` (a token without `act` passes; add
    /// [`actor`](Self::actor) to require one).
    pub fn actors_among<I: IntoIterator<Item = S>, S: Into<String>>(actors: I) -> Rule {
        let trusted = list(actors);
        let name = format!("actors among {trusted:?}");
        Rule::predicate(&name, move |claims| {
            claims
                .act
                .is_none_or(|act| act.chain().all(|a| trusted.contains(&a.sub)))
        })
    }

    /// Every rule in `rules`. None at all refuses every request.
    pub fn all_of<I: IntoIterator<Item = Rule>>(rules: I) -> Rule {
        Rule(Node::AllOf(rules.into_iter().collect()))
    }

    /// At least one rule in `rules`. None at all refuses every request.
    pub fn any_of<I: IntoIterator<Item = Rule>>(rules: I) -> Rule {
        Rule(Node::AnyOf(rules.into_iter().collect()))
    }

    /// Your own test over the verified claims, named for refusals and logs.
    pub fn predicate<F>(name: &str, test: F) -> Rule
    where
        F: Fn(&ClaimsView<'_>) -> bool + Send + Sync + 'static,
    {
        Rule(Node::Predicate(Predicate {
            name: name.into(),
            test: Arc::new(test),
        }))
    }

    /// This rule and `other`. Never merged into an `all_of` the caller built:
    /// an empty one must stay empty (it refuses everyone).
    pub(crate) fn and(self, other: Rule) -> Rule {
        Rule::all_of([self, other])
    }

    /// Whether only how the user authenticated (`acr`, `amr`) decides it.
    fn is_authentication(&self) -> bool {
        match &self.0 {
            Node::Acr(_) | Node::Amr(_) => true,
            Node::AllOf(rules) | Node::AnyOf(rules) => {
                !rules.is_empty() && rules.iter().all(Rule::is_authentication)
            }
            _ => false,
        }
    }

    /// Whether the rule is scopes and nothing else.
    pub(crate) fn is_scopes_only(&self) -> bool {
        matches!(self.0, Node::Scopes(_))
    }

    /// The scopes this rule needs for sure: its own, or those of the
    /// `all_of`s it heads.
    pub(crate) fn scopes(&self) -> Option<&Scopes> {
        match &self.0 {
            Node::Scopes(scopes) => Some(scopes),
            Node::AllOf(rules) => rules.iter().find_map(Rule::scopes),
            _ => None,
        }
    }

    /// Whether the rule can never hold or reads a wildcard as required: a
    /// configuration slip, refused whatever the token says.
    pub(crate) fn flaw(&self) -> Option<String> {
        let empty = |l: &[String]| l.is_empty() || l.iter().any(String::is_empty);
        match &self.0 {
            Node::Scopes(Scopes { required, .. }) => {
                if empty(required) {
                    Some("a scope rule names no scope".into())
                } else {
                    required.iter().find(|s| s.ends_with('*')).map(|s| {
                        format!("the required scope '{s}' is a wildcard: wildcards are granted, never required")
                    })
                }
            }
            Node::Roles { required, .. } if empty(required) => {
                Some("a role rule names no role".into())
            }
            Node::Acr(values) if empty(values) => Some("an acr rule names no value".into()),
            Node::Amr(methods) if empty(methods) => Some("an amr rule names no method".into()),
            Node::AllOf(rules) | Node::AnyOf(rules) => {
                if rules.is_empty() {
                    Some("all_of / any_of of no rule".into())
                } else {
                    rules.iter().find_map(Rule::flaw)
                }
            }
            _ => None,
        }
    }

    /// Whether `claims` meet the rule; what was needed when they do not.
    pub(crate) fn check(&self, claims: &ClaimsView<'_>) -> Result<(), Missing> {
        if self.holds(claims) {
            return Ok(());
        }
        Err(match &self.0 {
            Node::Scopes(scopes) => Missing::Scopes(scopes.clone()),
            // Only a stronger login can meet it: RFC 9470's step-up.
            _ if self.is_authentication() => Missing::Authentication(self.clone()),
            // The first unmet rule of an all_of answers for it.
            Node::AllOf(rules) => match rules.iter().find_map(|r| r.check(claims).err()) {
                Some(missing) => missing,
                None => Missing::Permissions(self.clone()),
            },
            _ => Missing::Permissions(self.clone()),
        })
    }

    fn holds(&self, claims: &ClaimsView<'_>) -> bool {
        match &self.0 {
            Node::Scopes(Scopes { required, all }) => {
                // Refused in any case: see `flaw`.
                !required.is_empty()
                    && if *all {
                        required.iter().all(|s| claims.has_scope(s))
                    } else {
                        required.iter().any(|s| claims.has_scope(s))
                    }
            }
            Node::Roles { required, all } => {
                !required.is_empty()
                    && if *all {
                        required.iter().all(|r| claims.permissions.contains(r))
                    } else {
                        required.iter().any(|r| claims.permissions.contains(r))
                    }
            }
            Node::Acr(values) => claims
                .acr
                .is_some_and(|acr| values.iter().any(|v| v == acr)),
            Node::Amr(methods) => {
                !methods.is_empty() && methods.iter().all(|m| claims.amr.contains(m))
            }
            Node::AllOf(rules) => !rules.is_empty() && rules.iter().all(|r| r.holds(claims)),
            Node::AnyOf(rules) => rules.iter().any(|r| r.holds(claims)),
            Node::Predicate(p) => (p.test)(claims),
        }
    }

    /// The `acr_values` a step-up challenge names: those of this rule, or of
    /// the auth-level rules it holds.
    pub(crate) fn named_acr_values(&self) -> Vec<String> {
        match &self.0 {
            Node::Acr(values) => values.to_vec(),
            Node::AllOf(rules) | Node::AnyOf(rules) => {
                rules.iter().flat_map(Rule::named_acr_values).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// What an unmet rule needed, for the refusal.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Missing {
    /// Scopes alone: `insufficient_scope`.
    Scopes(Scopes),
    /// A stronger authentication (`acr`, `amr`): RFC 9470's step-up.
    Authentication(Rule),
    /// Anything else: roles, a composition, a predicate (403).
    Permissions(Rule),
}

/// How a rule reads in a refusal: the route's names, never the token's values.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |l: &[String]| {
            l.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let joined = |f: &mut fmt::Formatter<'_>, rules: &[Rule], word: &str| {
            for (i, rule) in rules.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                match rule.0 {
                    Node::AllOf(_) | Node::AnyOf(_) => write!(f, "({rule})")?,
                    _ => write!(f, "{rule}")?,
                }
            }
            Ok(())
        };
        match &self.0 {
            Node::Scopes(Scopes {
                required,
                all: true,
            }) => write!(f, "scopes [{}]", names(required)),
            Node::Scopes(Scopes {
                required,
                all: false,
            }) => {
                write!(f, "one of the scopes [{}]", names(required))
            }
            Node::Roles {
                required,
                all: true,
            } => write!(f, "roles [{}]", names(required)),
            Node::Roles {
                required,
                all: false,
            } => {
                write!(f, "one of the roles [{}]", names(required))
            }
            Node::Acr(values) => write!(f, "acr one of [{}]", names(values)),
            Node::Amr(methods) => write!(f, "authentication by [{}]", names(methods)),
            Node::AllOf(rules) => joined(f, rules, "and"),
            Node::AnyOf(rules) => joined(f, rules, "or"),
            Node::Predicate(p) => write!(f, "'{}'", p.name),
        }
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rule({self})")
    }
}

/// Rules are equal when they say the same; predicates when they are the same
/// closure.
impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        match (&self.0, &other.0) {
            (Node::Scopes(a), Node::Scopes(b)) => a == b,
            (
                Node::Roles {
                    required: a,
                    all: x,
                },
                Node::Roles {
                    required: b,
                    all: y,
                },
            ) => a == b && x == y,
            (Node::Acr(a), Node::Acr(b)) | (Node::Amr(a), Node::Amr(b)) => a == b,
            (Node::AllOf(a), Node::AllOf(b)) | (Node::AnyOf(a), Node::AnyOf(b)) => a == b,
            (Node::Predicate(a), Node::Predicate(b)) => {
                a.name == b.name && Arc::ptr_eq(&a.test, &b.test)
            }
            _ => false,
        }
    }
}

impl Eq for Rule {}
