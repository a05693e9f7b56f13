//! One place to configure everything: [`AuthXConfig`], a consuming builder that
//! [`AuthX::new`](crate::AuthX::new) checks and turns into a ready handle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use http::header::AUTHORIZATION;

use crate::cookie::CookieConfig;
use crate::error::ConfigError;
use crate::keys::KeySet;
use crate::reject::Reject;
use crate::source::{JsonKeys, TokenLocation};
use crate::store::RevocationStore;

/// The longest token accepted by default. AuthX tokens are about 300 bytes; RS512
/// tokens with a few scopes about 1 KiB. Longer is refused before decoding.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Configuration, with AuthX's defaults: HS256, access tokens for 15 minutes,
/// refresh tokens for 20 days, no leeway, the token in `Authorization: Bearer`.
#[derive(Clone)]
pub struct AuthXConfig {
    pub(crate) keys: KeySet,
    pub(crate) access_lifetime: Duration,
    pub(crate) refresh_lifetime: Duration,
    pub(crate) leeway: Duration,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Vec<String>,
    pub(crate) header_name: HeaderName,
    pub(crate) header_type: String,
    pub(crate) locations: Vec<TokenLocation>,
    pub(crate) cookies: CookieConfig,
    pub(crate) query_name: String,
    pub(crate) json_keys: JsonKeys,
    pub(crate) fresh_max_age: Option<Duration>,
    pub(crate) max_token_len: usize,
    pub(crate) max_token_lifetime: Option<Duration>,
    pub(crate) verified_cache: Option<usize>,
    pub(crate) realm: Option<String>,
    pub(crate) allow_weak_secret: bool,
    pub(crate) pass_preflight: bool,
    pub(crate) rejection: Option<Arc<dyn Reject>>,
    pub(crate) grpc_rejection: Option<Arc<dyn Reject>>,
    pub(crate) store: Option<Arc<dyn RevocationStore>>,
    pub(crate) fail_open: bool,
    pub(crate) dpop: Option<crate::dpop::Dpop>,
    pub(crate) trace_subject: bool,
    pub(crate) resource: Option<crate::resource::ProtectedResource>,
    pub(crate) permissions: Option<crate::claims::Idp>,
    pub(crate) client_cert_proxies: Vec<std::net::IpAddr>,
    pub(crate) require_at_jwt: bool,
    #[cfg(feature = "remote-keys")]
    pub(crate) remote: Option<crate::keys::RemoteJwks>,
    #[cfg(feature = "remote-keys")]
    pub(crate) issuers: Vec<crate::issuer::Issuer>,
    /// `from_issuers` was called (with however many issuers).
    #[cfg(feature = "remote-keys")]
    pub(crate) by_issuers: bool,
    /// Remote keys may vouch for tokens of any `iss` (an explicit opt-out).
    #[cfg(feature = "remote-keys")]
    pub(crate) any_issuer: bool,
}

impl AuthXConfig {
    /// A configuration that signs and verifies with `keys`: one [`Key`](crate::Key),
    /// or a [`KeySet`] for rotation and several verifying keys.
    pub fn new(keys: impl Into<KeySet>) -> Self {
        AuthXConfig {
            keys: keys.into(),
            access_lifetime: Duration::from_secs(15 * 60),
            refresh_lifetime: Duration::from_secs(20 * 24 * 3600),
            leeway: Duration::ZERO,
            issuer: None,
            audience: Vec::new(),
            header_name: AUTHORIZATION,
            header_type: "Bearer".to_owned(),
            locations: vec![TokenLocation::Headers],
            cookies: CookieConfig::default(),
            query_name: "token".to_owned(),
            json_keys: JsonKeys {
                access: "access_token".to_owned(),
                refresh: "refresh_token".to_owned(),
            },
            fresh_max_age: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            max_token_lifetime: None,
            verified_cache: None,
            realm: None,
            allow_weak_secret: false,
            pass_preflight: false,
            rejection: None,
            grpc_rejection: None,
            store: None,
            fail_open: false,
            dpop: None,
            trace_subject: false,
            resource: None,
            permissions: None,
            client_cert_proxies: Vec::new(),
            require_at_jwt: false,
            #[cfg(feature = "remote-keys")]
            remote: None,
            #[cfg(feature = "remote-keys")]
            issuers: Vec::new(),
            #[cfg(feature = "remote-keys")]
            by_issuers: false,
            #[cfg(feature = "remote-keys")]
            any_issuer: false,
        }
    }

    /// A resource server's configuration: verifies with the keys of an issuer's
    /// JWKS only (it cannot issue tokens).
    ///
    /// Name the issuer whose tokens you accept with [`issuer`](Self::issuer):
    /// one key set often serves many issuers (every tenant of a multi-tenant
    /// identity provider signs with the same keys), so [`AuthX::new`](crate::AuthX::new)
    /// refuses this configuration without it, unless you opt out with
    /// [`danger_accept_any_issuer`](Self::danger_accept_any_issuer).
    #[cfg(feature = "remote-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote-keys")))]
    pub fn from_jwks(remote: crate::keys::RemoteJwks) -> Self {
        let mut config = AuthXConfig::new(KeySet::verify_only([]));
        config.remote = Some(remote);
        config
    }

    /// Verifies tokens of these issuers only, each with its own keys, audiences
    /// and leeway: the token's `iss` chooses, before any signature work; any
    /// other `iss` is refused without fetching anything. Verify-only.
    #[cfg(feature = "remote-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote-keys")))]
    pub fn from_issuers(issuers: impl IntoIterator<Item = crate::issuer::Issuer>) -> Self {
        let mut config = AuthXConfig::new(KeySet::verify_only([]));
        config.issuers = issuers.into_iter().collect();
        config.by_issuers = true;
        config
    }

    /// Accepts tokens of any `iss` (or none) signed by the keys of
    /// [`from_jwks`](Self::from_jwks). Dangerous where the keys serve more
    /// than one issuer: every tenant of a multi-tenant identity provider then
    /// gets in. Only for a JWKS that you know serves one issuer that writes
    /// no `iss` (flask-jwt-extended or AuthX behind a JWKS of their own).
    #[cfg(feature = "remote-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote-keys")))]
    #[must_use]
    pub fn danger_accept_any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// Takes only tokens whose header says `typ: at+jwt` (RFC 9068 2.1), for
    /// an issuer that types its access tokens (see
    /// [`Issuer::require_at_jwt`](crate::Issuer::require_at_jwt), its
    /// equivalent with [`from_issuers`](Self::from_issuers)). AuthX and
    /// flask-jwt-extended write `typ: JWT`: leave it off for them.
    #[must_use]
    pub fn require_at_jwt(mut self) -> Self {
        self.require_at_jwt = true;
        self
    }

    /// HS256 with `secret`, as AuthX's `JWT_SECRET_KEY`.
    pub fn from_secret(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Ok(AuthXConfig::new(crate::keys::Key::hs256(secret)?))
    }

    /// How long access tokens live (`JWT_ACCESS_TOKEN_EXPIRES`, default 15 min).
    #[must_use]
    pub fn access_token_lifetime(mut self, d: Duration) -> Self {
        self.access_lifetime = d;
        self
    }

    /// How long refresh tokens live (`JWT_REFRESH_TOKEN_EXPIRES`, default 20 days).
    #[must_use]
    pub fn refresh_token_lifetime(mut self, d: Duration) -> Self {
        self.refresh_lifetime = d;
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat` (`JWT_DECODE_LEEWAY`, default 0).
    #[must_use]
    pub fn leeway(mut self, d: Duration) -> Self {
        self.leeway = d;
        self
    }

    /// The issuer written into tokens and required of every token verified.
    /// (With [`from_issuers`](Self::from_issuers), each [`Issuer`](crate::Issuer)
    /// names its own: setting this too is a configuration error.)
    #[must_use]
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuer = Some(iss.into());
        self
    }

    /// An audience we accept (call again for more); the tokens we issue name them
    /// all. Without one, tokens carrying any `aud` are refused (RFC 8725 3.9).
    /// (With [`from_issuers`](Self::from_issuers), audiences are set per
    /// [`Issuer`](crate::Issuer): setting one here too is a configuration error.)
    #[must_use]
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audience.push(aud.into());
        self
    }

    /// The header the token is read from (`JWT_HEADER_NAME`, default `Authorization`).
    #[must_use]
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.header_name = name;
        self
    }

    /// The auth-scheme before the token (`JWT_HEADER_TYPE`, default `Bearer`;
    /// matched case-insensitively; empty for a bare token).
    #[must_use]
    pub fn header_type(mut self, scheme: impl Into<String>) -> Self {
        self.header_type = scheme.into();
        self
    }

    /// Where tokens are looked for, in order (`JWT_TOKEN_LOCATION`, default the
    /// header only). The first location that holds a token decides.
    #[must_use]
    pub fn token_location(mut self, locations: impl IntoIterator<Item = TokenLocation>) -> Self {
        self.locations = locations.into_iter().collect();
        self
    }

    /// Cookie names, attributes and the CSRF double submit, for
    /// [`TokenLocation::Cookies`] and the `Set-Cookie` helpers.
    #[must_use]
    pub fn cookies(mut self, cookies: CookieConfig) -> Self {
        self.cookies = cookies;
        self
    }

    /// The query parameter for [`TokenLocation::Query`] (`JWT_QUERY_STRING_NAME`,
    /// default `token`).
    #[must_use]
    pub fn query_param(mut self, name: impl Into<String>) -> Self {
        self.query_name = name.into();
        self
    }

    /// The members of a JSON body that hold the access and the refresh token,
    /// for [`TokenLocation::Json`] (`JWT_JSON_KEY`, `JWT_REFRESH_JSON_KEY`;
    /// default `access_token` and `refresh_token`).
    #[must_use]
    pub fn json_keys(mut self, access: impl Into<String>, refresh: impl Into<String>) -> Self {
        self.json_keys = JsonKeys {
            access: access.into(),
            refresh: refresh.into(),
        };
        self
    }

    /// Lets `auth_time` prove freshness: a token whose `auth_time` is at most
    /// `max_age` old counts as fresh (OpenID Connect `max_age`; RFC 9470).
    #[must_use]
    pub fn fresh_max_age(mut self, max_age: Duration) -> Self {
        self.fresh_max_age = Some(max_age);
        self
    }

    /// The longest token accepted ([`DEFAULT_MAX_TOKEN_LEN`] by default).
    #[must_use]
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// Refuses tokens that live longer than `max` from `iat` (or from now, without
    /// `iat`) to `exp`, whoever issued them: a stolen long-lived token is refused
    /// even with a valid signature. Our own lifetimes must fit (checked by `AuthX::new`).
    #[must_use]
    pub fn max_token_lifetime(mut self, max: Duration) -> Self {
        self.max_token_lifetime = Some(max);
        self
    }

    /// Remembers up to `capacity` verified tokens so that a token seen again skips
    /// the signature (off by default; a big saving for RS256/ES256 resource
    /// servers, a small one for HS256). Keyed by the whole token; on every hit
    /// the claims, time, issuer, audience, key, policy and revocation are checked
    /// again. Memory: about a token's length plus its payload per entry.
    #[must_use]
    pub fn verified_token_cache(mut self, capacity: usize) -> Self {
        self.verified_cache = Some(capacity);
        self
    }

    /// A `realm` for the `WWW-Authenticate` challenge.
    #[must_use]
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Accepts an HMAC secret shorter than RFC 7518 3.2 allows, with a
    /// warning (default: it is a `ConfigError`). For demos and for migrating
    /// services whose secret cannot change yet: a short secret can be
    /// guessed offline from one token.
    #[must_use]
    pub fn danger_allow_weak_secret(mut self) -> Self {
        self.allow_weak_secret = true;
        self
    }

    /// Hands CORS preflights to the service inside the guards (default: no,
    /// they are guarded like any request).
    ///
    /// Put your CORS layer outside the guard and it answers preflights before
    /// the guard sees them: that needs nothing here. Turn this on only when the
    /// service directly inside the guard is a CORS layer that answers every
    /// preflight itself. A request passes only when it can be nothing but a
    /// preflight: `OPTIONS` with `Origin` and one `Access-Control-Request-Method`,
    /// no credential in any configured location (header, cookies, query) nor
    /// a DPoP proof, no content type (so never gRPC) and no body; it goes in
    /// without claims. Only a CORS answer (one with
    /// `Access-Control-Allow-Origin`) goes back: any other answer is replaced
    /// by the 401 the request would have had, and logged at `warn`. The
    /// service directly inside must be the CORS layer: a route handler there
    /// would run for the preflight before its answer is replaced.
    #[must_use]
    pub fn danger_pass_cors_preflight(mut self) -> Self {
        self.pass_preflight = true;
        self
    }

    /// Where revocations and refresh-token families live (default: a
    /// [`MemoryStore`](crate::MemoryStore) of this process; `RedisStore` shares them
    /// between instances).
    #[must_use]
    pub fn revocation_store(mut self, store: impl RevocationStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Lets verified tokens through unchecked when the revocation store
    /// cannot answer (fail open, logged at `warn`), instead of refusing
    /// with 503 (the default: fail closed). A logged-out or stolen token
    /// then works for as long as the store is down.
    #[must_use]
    pub fn danger_revocation_fail_open(mut self) -> Self {
        self.fail_open = true;
        self
    }

    /// Accepts DPoP-bound tokens (RFC 9449): `Authorization: DPoP <token>`
    /// with a proof in the `DPoP` header, checked on every guarded route.
    /// Without it the `DPoP` scheme is not taken; a DPoP-bound token
    /// (`cnf.jkt`) is refused as Bearer either way.
    #[must_use]
    pub fn dpop(mut self, dpop: crate::dpop::Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Where tokens carry roles, groups or permissions: an [`Idp`](crate::Idp)
    /// preset (`Idp::keycloak("my-client")`, `Idp::auth0()`, ...) or your
    /// own claim paths. Each verified token's
    /// [`Claims::permissions`](crate::Claims::permissions) are read from
    /// them, for [`Requirement::all_roles`](crate::Requirement::all_roles)
    /// and the like. (With [`from_issuers`](Self::from_issuers), an
    /// [`Issuer::permissions`](crate::Issuer::permissions) of its own wins.)
    #[must_use]
    pub fn permissions(mut self, idp: crate::claims::Idp) -> Self {
        self.permissions = Some(idp);
        self
    }

    /// Takes the client certificate of a certificate-bound token (RFC 8705)
    /// from the RFC 9440 `Client-Cert` header, on connections from these
    /// proxies only (default: never; only from a
    /// [`ClientCertificate`](crate::ClientCertificate) your TLS acceptor puts
    /// into the request's extensions). For a TLS-terminating proxy that sets
    /// the header from the handshake and strips any copy a client sent:
    /// anyone who can set it can claim any certificate. The connection's
    /// peer address is read from the request's extensions (a
    /// `std::net::SocketAddr`, which your acceptor puts there); a header
    /// from any other address, or without one, refuses a certificate-bound
    /// token.
    #[must_use]
    pub fn danger_client_cert_header_from(
        mut self,
        proxies: impl IntoIterator<Item = std::net::IpAddr>,
    ) -> Self {
        self.client_cert_proxies = proxies.into_iter().map(|ip| ip.to_canonical()).collect();
        self
    }

    /// Makes this server an OAuth protected resource (RFC 9728, RFC 8707; what
    /// the MCP authorization spec asks of every remote MCP server): every
    /// token's `aud` must name the resource identifier (a token issued for
    /// another resource is refused), tokens come from the `Authorization`
    /// header only (cookie or query locations are a configuration error),
    /// every refusal's challenge carries `resource_metadata` (and a scoped
    /// route's 401 its `scope`), and
    /// [`AuthX::resource_metadata_service`](crate::AuthX::resource_metadata_service)
    /// serves the metadata built from this same configuration: the issuers
    /// as `authorization_servers`, DPoP's algorithms.
    #[must_use]
    pub fn protected_resource(mut self, resource: crate::resource::ProtectedResource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Whether each guarded request's `authx.verify` span (feature `metrics`)
    /// names the subject of an allowed token in its `sub` field (default: no;
    /// spans never carry the token or its `jti`).
    #[must_use]
    pub fn trace_subject(mut self, trace: bool) -> Self {
        self.trace_subject = trace;
        self
    }

    /// Shapes HTTP refusals: your hook gets the default answer (status,
    /// challenge, JSON `{"detail"}`) in a [`Refusal`](crate::Refusal) and
    /// returns the response to send. gRPC calls keep their gRPC answer (a JSON
    /// body would break every gRPC client) unless you set
    /// [`on_grpc_reject`](Self::on_grpc_reject) too.
    #[must_use]
    pub fn on_reject(mut self, reject: impl Reject) -> Self {
        self.rejection = Some(Arc::new(reject));
        self
    }

    /// Shapes refusals of gRPC calls: your hook gets the default trailers-only
    /// answer (`grpc-status`, `grpc-message`) and must keep it a valid gRPC
    /// response.
    #[must_use]
    pub fn on_grpc_reject(mut self, reject: impl Reject) -> Self {
        self.grpc_rejection = Some(Arc::new(reject));
        self
    }
}

impl AuthXConfig {
    /// The `danger_` settings in force, each weakening a check: shown by
    /// `Debug` and logged at `warn` when an [`AuthX`](crate::AuthX) is built.
    pub fn dangers(&self) -> Vec<&'static str> {
        let mut dangers = Vec::new();
        let mut note = |on: bool, name: &'static str| {
            if on {
                dangers.push(name);
            }
        };
        note(self.allow_weak_secret, "danger_allow_weak_secret");
        note(self.pass_preflight, "danger_pass_cors_preflight");
        note(self.fail_open, "danger_revocation_fail_open");
        note(
            !self.client_cert_proxies.is_empty(),
            "danger_client_cert_header_from",
        );
        note(!self.cookies.secure, "CookieConfig::danger_insecure");
        note(
            !self.cookies.csrf_protect,
            "CookieConfig::danger_without_csrf_protection",
        );
        #[cfg(feature = "remote-keys")]
        {
            note(self.any_issuer, "danger_accept_any_issuer");
            let untyped = self.issuers.iter().any(|issuer| {
                issuer
                    .introspection
                    .as_ref()
                    .is_some_and(|i| i.untyped_is_access)
            });
            note(
                untyped,
                "Introspection::danger_untyped_answers_are_access_tokens",
            );
            // Plain http beyond this machine (loopback http is for tests).
            let plain = |keys: &crate::keys::RemoteJwks| {
                let url = keys.url();
                let host = url.host().unwrap_or_default().trim_matches(['[', ']']);
                url.scheme_str() == Some("http")
                    && host != "localhost"
                    && !host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            };
            let plain = self.remote.as_ref().is_some_and(plain)
                || self.issuers.iter().any(|issuer| plain(&issuer.keys));
            note(plain, "RemoteJwks::danger_plain_http");
        }
        dangers
    }
}

impl fmt::Debug for AuthXConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("AuthXConfig");
        f.field("keys", &self.keys)
            .field("access_lifetime", &self.access_lifetime)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("leeway", &self.leeway)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("header_name", &self.header_name)
            .field("header_type", &self.header_type)
            .field("locations", &self.locations)
            .field("cookies", &self.cookies)
            .field("query_name", &self.query_name)
            .field("json_keys", &self.json_keys)
            .field("fresh_max_age", &self.fresh_max_age)
            .field("max_token_len", &self.max_token_len)
            .field("max_token_lifetime", &self.max_token_lifetime)
            .field("verified_cache", &self.verified_cache)
            .field("custom_rejection", &self.rejection.is_some())
            .field("custom_grpc_rejection", &self.grpc_rejection.is_some())
            .field("custom_store", &self.store.is_some())
            .field("fail_open", &self.fail_open)
            .field("allow_weak_secret", &self.allow_weak_secret)
            .field("pass_preflight", &self.pass_preflight)
            .field("dpop", &self.dpop)
            .field("resource", &self.resource)
            .field("permissions", &self.permissions)
            .field("client_cert_proxies", &self.client_cert_proxies)
            .field("require_at_jwt", &self.require_at_jwt)
            .field("danger", &self.dangers());
        #[cfg(feature = "remote-keys")]
        f.field("remote", &self.remote)
            .field("issuers", &self.issuers)
            .field("any_issuer", &self.any_issuer);
        f.finish_non_exhaustive()
    }
}
