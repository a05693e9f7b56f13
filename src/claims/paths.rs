//! Permission sets read from wherever an identity provider puts them: a claim
//! path (nested objects; names with dots or colons kept whole) whose value is
//! a string or a list of strings, read strictly (a number where strings
//! belong refuses the token, never a guess).

use std::fmt;

use serde_json::Value;

/// A claim, named from the top of the payload down: `realm_access.roles` is
/// `ClaimPath::dotted("realm_access.roles")`; a name that holds a dot (an
/// Auth0 namespaced claim, a Keycloak client id) goes whole through
/// [`new`](Self::new).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimPath(Box<[String]>);

impl ClaimPath {
    /// The claim at these names, from the top down:
    /// `ClaimPath::new(["resource_access", "my.client", "roles"])`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> ClaimPath {
        ClaimPath(names.into_iter().map(Into::into).collect())
    }

    /// Names separated by dots: `"realm_access.roles"`, `"cognito:groups"`.
    pub fn dotted(path: &str) -> ClaimPath {
        ClaimPath::new(path.split('.'))
    }

    /// The names, from the top down.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The top-level claim the path starts at.
    pub(crate) fn root(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }

    /// Adds the strings at this path below its root's `value` to `into`; an
    /// absent member adds nothing, a wrongly typed one is an error naming the
    /// path (never the value).
    pub(crate) fn collect(&self, value: &Value, into: &mut Vec<String>) -> Result<(), String> {
        let mut value = value;
        for (depth, name) in self.0.iter().enumerate().skip(1) {
            match value {
                Value::Object(members) => match members.get(name) {
                    Some(inner) => value = inner,
                    None => return Ok(()),
                },
                _ => {
                    return Err(format!(
                        "claim '{}' must be an object",
                        ClaimPath(self.0[..depth].into())
                    ));
                }
            }
        }
        let wrong = || format!("claim '{self}' must be a string or a list of strings");
        match value {
            Value::String(one) => into.push(one.clone()),
            Value::Array(items) => {
                for item in items {
                    into.push(item.as_str().ok_or_else(wrong)?.to_owned());
                }
            }
            _ => return Err(wrong()),
        }
        Ok(())
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl fmt::Debug for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimPath({self})")
    }
}

/// Where an identity provider puts roles, groups or permissions in its access
/// tokens: the claim paths a token's [`Permissions`] are read from. Give it
/// to [`Issuer::permissions`](crate::Issuer::permissions) or
/// [`AuthXConfig::permissions`](crate::AuthXConfig::permissions).
///
/// | Provider | Preset | Claims read |
/// |---|---|---|
/// | Keycloak | `Idp::keycloak("my-client")` | `realm_access.roles`, `resource_access.my-client.roles` |
/// | Auth0 (RBAC) | `Idp::auth0()` | `permissions` |
/// | Entra ID | `Idp::entra()` | `roles` (app roles; `scp` stays scopes) |
/// | Okta | `Idp::okta()` | `groups` |
/// | Cognito | `Idp::cognito()` | `cognito:groups` |
/// | AuthX (`data={"roles": [...]}`) | `Idp::authx()` | `roles` |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idp {
    paths: Vec<ClaimPath>,
}

impl Idp {
    /// Keycloak: realm roles and the roles of client `client_id`.
    pub fn keycloak(client_id: &str) -> Idp {
        Idp::claims([
            ClaimPath::new(["realm_access", "roles"]),
            ClaimPath::new(["resource_access", client_id, "roles"]),
        ])
    }

    /// Auth0 with RBAC's "Add Permissions in the Access Token": `permissions`.
    pub fn auth0() -> Idp {
        Idp::claims([ClaimPath::new(["permissions"])])
    }

    /// Microsoft Entra ID: app roles, `roles` (its `scp` is read as scopes).
    pub fn entra() -> Idp {
        Idp::claims([ClaimPath::new(["roles"])])
    }

    /// Okta: `groups` (with a groups claim on the authorization server).
    pub fn okta() -> Idp {
        Idp::claims([ClaimPath::new(["groups"])])
    }

    /// Amazon Cognito: user pool groups, `cognito:groups`.
    pub fn cognito() -> Idp {
        Idp::claims([ClaimPath::new(["cognito:groups"])])
    }

    /// AuthX and flask-jwt-extended tokens issued with `roles` among their
    /// extra data (`data={"roles": [...]}`, `additional_claims`).
    pub fn authx() -> Idp {
        Idp::claims([ClaimPath::new(["roles"])])
    }

    /// Your own claim paths.
    pub fn claims<I: IntoIterator<Item = ClaimPath>>(paths: I) -> Idp {
        Idp {
            paths: paths.into_iter().collect(),
        }
    }

    /// The claim paths read.
    pub fn paths(&self) -> &[ClaimPath] {
        &self.paths
    }
}

/// The permission set of a verified token: the roles, groups or permissions
/// its issuer's [`Idp`] names, in the order read (empty when no `Idp` is
/// configured, or the token has none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions(Vec<String>);

impl Permissions {
    pub(crate) fn new(granted: Vec<String>) -> Permissions {
        Permissions(granted)
    }

    /// Whether `permission` is granted (compared exactly).
    pub fn contains(&self, permission: &str) -> bool {
        self.0.iter().any(|granted| granted == permission)
    }

    /// Every permission granted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether none is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_strings_and_lists_and_refuse_other_types() {
        let claims = json!({
            "realm_access": {"roles": ["staff", "offline_access"]},
            "resource_access": {"my.client": {"roles": "admin"}, "other": {"roles": [1]}},
        });
        let read = |path: ClaimPath| {
            let mut into = Vec::new();
            path.collect(&claims[path.root()], &mut into).map(|()| into)
        };
        assert_eq!(
            read(ClaimPath::dotted("realm_access.roles")).unwrap(),
            ["staff", "offline_access"]
        );
        assert_eq!(
            read(ClaimPath::new(["resource_access", "my.client", "roles"])).unwrap(),
            ["admin"]
        );
        assert!(
            read(ClaimPath::dotted("resource_access.absent.roles"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            read(ClaimPath::dotted("resource_access.other.roles")).unwrap_err(),
            "claim 'resource_access.other.roles' must be a string or a list of strings"
        );
        assert_eq!(
            read(ClaimPath::dotted("realm_access.roles.deeper")).unwrap_err(),
            "claim 'realm_access.roles' must be an object"
        );
        assert!(read(ClaimPath::dotted("realm_access")).is_err());
    }
}
