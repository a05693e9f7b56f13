//! An OAuth protected resource (RFC 9728, RFC 8707): what a client needs to
//! find the authorization server that issues tokens for this resource. One
//! configuration feeds both what is advertised and what is enforced: the
//! metadata names the issuers, DPoP and the header the guards take, every
//! refusal's challenge points at the metadata (`resource_metadata`), and every
//! token must name the resource in its `aud`.

use serde::{Deserialize, Serialize};

use crate::dpop::DpopCheck;
use crate::error::ConfigError;

mod service;

pub use self::service::ResourceMetadataService;

/// The well-known path of RFC 9728 3, before the resource's own path.
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// This server as an OAuth protected resource, for
/// [`AuthXConfig::protected_resource`](crate::AuthXConfig::protected_resource):
/// its identifier (the URL clients call, which every token's `aud` must name)
/// and what its metadata tells clients beyond what the guard's configuration
/// already says.
///
/// ```
/// use tower_authx::ProtectedResource;
///
/// let resource = ProtectedResource::new("https://mcp.example.com/mcp")
///     .name("Example tools")
///     .scopes(["mcp:tools", "mcp:admin"]);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ProtectedResource {
    resource: String,
    name: Option<String>,
    documentation: Option<String>,
    scopes: Vec<String>,
}

impl ProtectedResource {
    /// The resource identifier: an `https://` URL (`http://` for loopback and
    /// tests) in its canonical form (RFC 8707 2; the MCP authorization spec):
    /// scheme and host in lower case, no query, no fragment, no trailing
    /// slash unless the path is only `/`. [`AuthX::new`](crate::AuthX::new)
    /// refuses any other form and names the canonical one, so what tokens
    /// must carry and what the metadata says are the same bytes.
    pub fn new(resource: impl Into<String>) -> Self {
        ProtectedResource {
            resource: resource.into(),
            name: None,
            documentation: None,
            scopes: Vec::new(),
        }
    }

    /// `resource_name`: a human-readable name for the resource.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `resource_documentation`: a page for developers.
    pub fn documentation(mut self, url: impl Into<String>) -> Self {
        self.documentation = Some(url.into());
        self
    }

    /// `scopes_supported`: the scopes this resource's routes ask for (clients
    /// that know no better request these).
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

/// Protected Resource Metadata (RFC 9728 2): the document served at
/// [`ResourceMetadataService::path`], also readable to check a server's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResourceMetadata {
    /// The resource identifier, exactly as configured.
    pub resource: String,
    /// The issuers whose tokens are taken (their `iss`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// The scopes the resource's routes ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How a token may be sent: `["header"]` (the `Authorization` header only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A page for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// The DPoP proof algorithms taken (when DPoP is configured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether only DPoP-bound tokens are taken (when DPoP is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens_required: Option<bool>,
}

/// The metadata as served, and where; shared by the guard's challenges and
/// the metadata service.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) metadata: ResourceMetadata,
    pub(crate) json: String,
    /// The metadata's URL, for `resource_metadata` in challenges.
    pub(crate) url: String,
    /// Its path on this server.
    pub(crate) path: String,
}

/// What the guard enforces that the metadata tells.
pub(crate) struct Enforced<'a> {
    /// Tokens come only from `Authorization: Bearer` (or `DPoP`).
    pub(crate) header_only: bool,
    /// The issuers whose tokens are taken.
    pub(crate) issuers: Vec<String>,
    pub(crate) dpop: Option<&'a DpopCheck>,
}

impl ProtectedResource {
    /// The identifier, if it is in canonical form: what every token's `aud`
    /// must contain.
    pub(crate) fn identifier(&self) -> Result<&str, ConfigError> {
        let id = self.resource.as_str();
        let canonical = canonical(id)?;
        if canonical != id {
            return Err(ConfigError::new(format!(
                "the resource identifier {id:?} is not in canonical form; write {canonical:?}"
            )));
        }
        Ok(id)
    }

    /// The metadata of this resource under what the guard `enforced`.
    pub(crate) fn publish(self, enforced: Enforced<'_>) -> Result<Published, ConfigError> {
        let id = self.identifier()?.to_owned();
        if !enforced.header_only {
            return Err(ConfigError::new(
                "a protected resource takes tokens as RFC 6750 says, in `Authorization: Bearer` \
                 (and `DPoP`) only (bearer_methods_supported = [\"header\"]): remove the cookie \
                 and query locations, and leave header_name and header_type at their defaults",
            ));
        }
        if enforced.issuers.is_empty() {
            return Err(ConfigError::new(
                "a protected resource names its authorization servers: set AuthXConfig::issuer \
                 (or use from_issuers)",
            ));
        }
        let dpop = enforced.dpop;
        let (origin, path) = split(&id);
        let path = match path {
            "/" | "" => WELL_KNOWN.to_owned(),
            path => format!("{WELL_KNOWN}{path}"),
        };
        let url = format!("{origin}{path}");
        let metadata = ResourceMetadata {
            resource: id,
            authorization_servers: enforced.issuers,
            scopes_supported: self.scopes,
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: self.name,
            resource_documentation: self.documentation,
            dpop_signing_alg_values_supported: dpop
                .map(|d| {
                    d.algorithms()
                        .iter()
                        .map(|a| a.as_str().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            dpop_bound_access_tokens_required: dpop.map(|d| d.required),
        };
        let json = serde_json::to_string(&metadata)
            .map_err(|e| ConfigError::new(format!("the resource metadata: {e}")))?;
        Ok(Published {
            url,
            path,
            metadata,
            json,
        })
    }
}

/// The canonical form of a resource identifier, or why it cannot be one.
fn canonical(id: &str) -> Result<String, ConfigError> {
    let refuse = |why: &str| {
        Err(ConfigError::new(format!(
            "the resource identifier {id:?} {why}"
        )))
    };
    if id.contains('#') {
        return refuse("has a fragment (RFC 8707 2 forbids it)");
    }
    if id.contains('?') {
        return refuse("has a query (RFC 8707 2: it should not; a metadata path cannot carry it)");
    }
    if id.bytes().any(|b| !b.is_ascii_graphic()) {
        return refuse("has spaces, controls or non-ASCII characters (percent-encode them)");
    }
    let lower = id.to_ascii_lowercase();
    let (scheme_len, https) = if lower.starts_with("https://") {
        (8, true)
    } else if lower.starts_with("http://") {
        (7, false)
    } else {
        return refuse("is not an https:// URL");
    };
    let rest = &lower[scheme_len..];
    let authority_len = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    if authority.is_empty() || authority.contains('@') {
        return refuse("needs a host, and no user information");
    }
    let Ok(parsed) = authority.parse::<http::uri::Authority>() else {
        return refuse("has no valid host");
    };
    let host = parsed.host();
    let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
    if !https && !loopback {
        return refuse("is not https:// (plain http:// only on loopback, for tests)");
    }
    // Scheme and host in lower case; the path as written.
    let mut canonical = format!(
        "{}{}",
        &lower[..scheme_len + authority_len],
        &id[scheme_len + authority_len..]
    );
    while canonical.len() > scheme_len + authority_len + 1 && canonical.ends_with('/') {
        canonical.pop();
    }
    Ok(canonical)
}

/// `https://host:port` and the path (`""` when there is none).
fn split(id: &str) -> (&str, &str) {
    let after_scheme = id.find("://").map_or(0, |i| i + 3);
    let path_start = id[after_scheme..]
        .find('/')
        .map_or(id.len(), |i| after_scheme + i);
    id.split_at(path_start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        for (given, canonical_form) in [
            ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
            ("HTTPS://MCP.Example.com/MCP", "https://mcp.example.com/MCP"),
            (
                "https://mcp.example.com/mcp/",
                "https://mcp.example.com/mcp",
            ),
            ("https://mcp.example.com/", "https://mcp.example.com/"),
            ("https://mcp.example.com", "https://mcp.example.com"),
            (
                "https://mcp.example.com:8443",
                "https://mcp.example.com:8443",
            ),
            ("http://127.0.0.1:8002/mcp", "http://127.0.0.1:8002/mcp"),
            ("http://localhost/a/b//", "http://localhost/a/b"),
        ] {
            assert_eq!(canonical(given).unwrap(), canonical_form, "{given}");
        }
        for refused in [
            "https://mcp.example.com/mcp#frag",
            "https://mcp.example.com/mcp?x=1",
            "http://mcp.example.com/mcp",
            "ftp://mcp.example.com/",
            "mcp.example.com/mcp",
            "https://user@mcp.example.com/",
            "https:///mcp",
            "https://mcp.example.com/a b",
            "https://mcp.exa mple.com/",
        ] {
            assert!(canonical(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_metadata_path_inserts_the_resource_path() {
        assert_eq!(
            split("https://h.example/mcp"),
            ("https://h.example", "/mcp")
        );
        assert_eq!(split("https://h.example"), ("https://h.example", ""));
        assert_eq!(split("https://h.example/"), ("https://h.example", "/"));
    }
}
