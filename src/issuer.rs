//! The issuers a resource server trusts (feature `remote-keys`): each with its
//! own keys, audiences and leeway, chosen by the token's `iss` before any
//! signature work, and found by OpenID Connect discovery from the issuer's URL
//! alone.

use std::time::Duration;

use crate::error::{ConfigError, FetchError};
use crate::introspection::Introspection;
use crate::keys::RemoteJwks;
use crate::keys::fetch::{
    https_client, openid_configuration, openid_configuration_url, platform_tls,
};

/// One issuer of tokens: its exact `iss`, where its keys are, and what its
/// tokens must say. Build it with [`discover`](Self::discover) (OpenID
/// Connect) or [`new`](Self::new) (a known JWKS URL), then hand one or more to
/// [`AuthXConfig::from_issuers`](crate::AuthXConfig::from_issuers).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_authx::{AuthX, AuthXConfig, Issuer};
///
/// let auth0 = Issuer::discover("https://tenant.eu.auth0.com/").await?.audience("https://api.example");
/// let keycloak = Issuer::discover("https://sso.example/realms/staff").await?.audience("api");
/// let authx = AuthX::new(AuthXConfig::from_issuers([auth0, keycloak]))?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Issuer {
    pub(crate) iss: String,
    pub(crate) keys: RemoteJwks,
    pub(crate) audience: Vec<String>,
    pub(crate) leeway: Option<Duration>,
    pub(crate) permissions: Option<crate::claims::Idp>,
    /// The discovery document's `introspection_endpoint`.
    pub(crate) introspection_endpoint: Option<String>,
    pub(crate) introspection: Option<Introspection>,
    /// Its granted `ns:*` scopes are AuthX wildcards (an explicit opt-in).
    pub(crate) scope_wildcards: bool,
    /// Its access tokens must be typed `at+jwt` in their header.
    pub(crate) require_at_jwt: bool,
}

impl Issuer {
    /// Tokens whose `iss` is exactly `iss`, verified with the keys of `keys`.
    pub fn new(iss: impl Into<String>, keys: RemoteJwks) -> Issuer {
        let iss = iss.into();
        #[cfg(feature = "metrics")]
        let keys = keys.labelled(&iss);
        Issuer {
            iss,
            keys,
            audience: Vec::new(),
            leeway: None,
            permissions: None,
            introspection_endpoint: None,
            introspection: None,
            scope_wildcards: false,
            require_at_jwt: false,
        }
    }

    /// OpenID Connect Discovery 1.0: reads `{iss}/.well-known/openid-configuration`
    /// (over HTTPS, trusting the platform's roots and `SSL_CERT_FILE`), checks
    /// that its `issuer` is `iss` exactly (§4.3), and takes its `jwks_uri`,
    /// which must be `https://` too (plain `http://` only on loopback, for tests).
    pub async fn discover(iss: &str) -> Result<Issuer, FetchError> {
        let tls = platform_tls().map_err(|e| FetchError::Unreachable(e.to_string()))?;
        Issuer::discover_with(iss, tls).await
    }

    /// [`discover`](Self::discover) with your own rustls configuration (a
    /// private CA, client certificates), used for the keys too.
    pub async fn discover_with(iss: &str, tls: rustls::ClientConfig) -> Result<Issuer, FetchError> {
        let url = openid_configuration_url(iss).map_err(|e| FetchError::Document(e.to_string()))?;
        let client = https_client(tls.clone());
        let document = openid_configuration(&client, &url, iss).await?;
        let keys = RemoteJwks::new(&document.jwks_uri)
            .map_err(|e: ConfigError| FetchError::Document(e.to_string()))?
            .tls_config(tls)
            .discovered_for(iss);
        let mut issuer = Issuer::new(iss, keys);
        issuer.introspection_endpoint = document.introspection_endpoint;
        Ok(issuer)
    }

    /// An issuer found by OpenID Connect discovery when its keys are first
    /// needed, not now: a service starts while its identity provider is
    /// down. Until the document and the keys have been fetched, its tokens
    /// are answered 503 with a `Retry-After` that holds (the time until the
    /// next attempt), other issuers' tokens are served, and
    /// [`AuthX::keys_health`](crate::AuthX::keys_health) shows it without a
    /// success; once reached, it is as [`discover`](Self::discover) makes it.
    /// The document must name `iss` exactly, and its keys are trusted as
    /// `discover`'s are. Its introspection, if any, takes an endpoint of its
    /// own ([`Introspection::at`](crate::Introspection::at)): there is no
    /// discovered one yet.
    pub fn discover_on_first_use(iss: &str) -> Result<Issuer, ConfigError> {
        Ok(Issuer::new(iss, RemoteJwks::discovering(iss)?))
    }

    /// An audience its tokens may name (`aud`); call again for more. With
    /// none, its tokens must carry no `aud` (RFC 8725 3.9).
    #[must_use]
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audience.push(aud.into());
        self
    }

    /// The clock leeway for its tokens' `exp`, `nbf` and `iat` (default: the
    /// configuration's).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Where its tokens carry roles, groups or permissions (an
    /// [`Idp`](crate::Idp) preset or claim paths), for
    /// [`Claims::permissions`](crate::Claims::permissions).
    #[must_use]
    pub fn permissions(mut self, idp: crate::claims::Idp) -> Self {
        self.permissions = Some(idp);
        self
    }

    /// Introspects its tokens that cannot be verified alone (RFC 7662):
    /// opaque ones, or all of them, as `introspection` says.
    #[must_use]
    pub fn introspection(mut self, introspection: Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// Reads its granted scopes that end in `:*` as AuthX's wildcards
    /// (`orders:*` covers `orders:write`), in every scope claim it writes.
    /// Off by default: an identity provider's scope is an opaque string
    /// that it, or a user's consent, may grant under any name, so another
    /// issuer's scopes are matched exactly unless you say that this one
    /// namespaces them AuthX's way (another AuthX service, say).
    #[must_use]
    pub fn scope_wildcards(mut self) -> Self {
        self.scope_wildcards = true;
        self
    }

    /// Takes only its tokens whose header says `typ: at+jwt` (RFC 9068 2.1).
    /// Set it for an issuer that types its access tokens (panva's
    /// oidc-provider, Auth0's RFC 9068 token profile, Duende IdentityServer,
    /// Spring Authorization Server...): an ID token or any other JWT it
    /// signs is then refused by its header, whatever its claims say. (ID
    /// tokens are refused by their claims in any case: `nonce`, `at_hash`,
    /// `c_hash`, `token_use: id`, Keycloak's `typ: ID`, an `aud` that is its
    /// `azp` alone.)
    #[must_use]
    pub fn require_at_jwt(mut self) -> Self {
        self.require_at_jwt = true;
        self
    }

    /// Its keys, for their health.
    pub fn keys(&self) -> &RemoteJwks {
        &self.keys
    }

    /// The same issuer with `keys` instead (tuned intervals, another TLS
    /// configuration); what discovery found is kept.
    #[must_use]
    pub fn with_keys(mut self, keys: RemoteJwks) -> Self {
        #[cfg(feature = "metrics")]
        let keys = keys.labelled(&self.iss);
        self.keys = keys;
        self
    }

    /// The introspection endpoint its discovery document names, if any.
    pub fn introspection_endpoint(&self) -> Option<&str> {
        self.introspection_endpoint.as_deref()
    }

    /// Its `iss`.
    pub fn iss(&self) -> &str {
        &self.iss
    }
}
