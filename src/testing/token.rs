//! Tokens on demand, signed with the mock issuer's keys (or a key nobody
//! publishes).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::state::{State, new_key, sign};
use crate::claims::NumericDate;

/// Where a token carries its roles, as each identity provider writes them
/// (the crate reads them with the matching [`Idp`](crate::Idp) preset).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RolesIn {
    /// Keycloak's realm roles: `realm_access.roles`.
    KeycloakRealm,
    /// Keycloak's client roles: `resource_access.<client>.roles`.
    KeycloakClient(String),
    /// Auth0's `permissions` list (RBAC with "Add Permissions in the Access Token").
    Auth0,
    /// Entra ID's `roles` list.
    Entra,
    /// Okta's `groups` list.
    Okta,
    /// Cognito's `cognito:groups` list.
    Cognito,
    /// AuthX's own `roles` list.
    Authx,
}

/// A token to sign: every claim a test may want wrong, one call each. Made
/// by [`MockIssuer::token`](super::MockIssuer::token); [`issue`](Self::issue)
/// signs it.
#[derive(Clone)]
#[must_use]
pub struct MockToken {
    state: Arc<State>,
    header_typ: String,
    claims: Map<String, Value>,
    unknown_key: bool,
}

impl std::fmt::Debug for MockToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockToken")
            .field("typ", &self.header_typ)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl MockToken {
    /// A valid access token of `state`'s issuer for its audience: subject
    /// `user`, client `test-client`, five minutes.
    pub(super) fn new(state: Arc<State>) -> MockToken {
        let now = NumericDate::now().as_secs_f64().floor() as i64;
        let mut claims = Map::new();
        claims.insert("iss".into(), state.url.clone().into());
        claims.insert("sub".into(), "user".into());
        claims.insert("aud".into(), state.audience.clone().into());
        claims.insert("client_id".into(), "test-client".into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + 300).into());
        claims.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
        MockToken {
            state,
            header_typ: "at+jwt".into(),
            claims,
            unknown_key: false,
        }
    }

    fn now() -> i64 {
        NumericDate::now().as_secs_f64().floor() as i64
    }

    /// The subject.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// OAuth's `scope`: one space-separated string.
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// The audience (`aud`), in place of the issuer's.
    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", aud)
    }

    /// Another issuer's `iss` (signed with this issuer's key all the same).
    pub fn issuer(self, iss: &str) -> Self {
        self.claim("iss", iss)
    }

    /// Any claim, as JSON.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Without the claim `name` (`exp`, `sub`, `aud`, ...).
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Lives `lifetime` from now.
    pub fn lifetime(self, lifetime: Duration) -> Self {
        let exp = Self::now() + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        self.claim("exp", exp)
    }

    /// Expired a minute ago (issued two minutes ago).
    pub fn expired(self) -> Self {
        let now = Self::now();
        self.claim("iat", now - 120).claim("exp", now - 60)
    }

    /// Not valid before five minutes from now (`nbf`).
    pub fn not_yet_valid(self) -> Self {
        let nbf = Self::now() + 300;
        self.claim("nbf", nbf).claim("exp", nbf + 300)
    }

    /// Another JOSE `typ` than `at+jwt` (`JWT`, or an ID token's, ...).
    pub fn typ(mut self, typ: &str) -> Self {
        self.header_typ = typ.to_owned();
        self
    }

    /// An ID token (OpenID Connect): `nonce`, `typ: JWT`; never an access token.
    pub fn id_token(self) -> Self {
        self.typ("JWT")
            .claim("nonce", "n-0")
            .claim("auth_time", Self::now())
    }

    /// AuthX's refresh token type (`"type": "refresh"`).
    pub fn refresh(self) -> Self {
        self.claim("type", "refresh")
    }

    /// AuthX's freshness: `fresh: true` (a login), or `false` (a refresh).
    pub fn fresh(self, fresh: bool) -> Self {
        self.claim("fresh", fresh)
    }

    /// `roles`, where `place` says its identity provider writes them.
    pub fn roles(self, place: RolesIn, roles: &[&str]) -> Self {
        let roles = json!(roles);
        match place {
            RolesIn::KeycloakRealm => self.claim("realm_access", json!({ "roles": roles })),
            RolesIn::KeycloakClient(client) => {
                self.claim("resource_access", json!({ client: { "roles": roles } }))
            }
            RolesIn::Auth0 => self.claim("permissions", roles),
            RolesIn::Entra => self.claim("roles", roles),
            RolesIn::Okta => self.claim("groups", roles),
            RolesIn::Cognito => self.claim("cognito:groups", roles),
            RolesIn::Authx => self.claim("roles", roles),
        }
    }

    /// Bound to a DPoP key (`cnf.jkt`, its RFC 7638 thumbprint, as
    /// [`DpopSigner::thumbprint`](crate::DpopSigner::thumbprint) gives it).
    pub fn dpop_bound(self, jkt: &str) -> Self {
        self.claim("cnf", json!({ "jkt": jkt }))
    }

    /// Bound to a client certificate (`cnf.x5t#S256`, RFC 8705).
    pub fn certificate_bound(self, x5t_s256: &str) -> Self {
        self.claim("cnf", json!({ "x5t#S256": x5t_s256 }))
    }

    /// Signed by a key the issuer never published (its JWKS does not hold it).
    pub fn unknown_key(mut self) -> Self {
        self.unknown_key = true;
        self
    }

    /// The signed token.
    ///
    /// # Panics
    ///
    /// If the crypto backend cannot sign (a test setup fault).
    pub fn issue(&self) -> String {
        let key = if self.unknown_key {
            new_key().expect("a key")
        } else {
            self.state.current_key()
        };
        sign(&key, &self.header_typ, &self.claims)
    }
}
