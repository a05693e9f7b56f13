//! Fetching an issuer's documents (feature `remote-keys`): which URLs we fetch
//! from (https, or plain http on loopback unless allowed by name), TLS
//! trusted by the platform's roots and `SSL_CERT_FILE`, and a bounded GET of
//! a JSON document; and when fetches happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{ConfigError, FetchError, with_causes};

/// Whether keys may come over plain `http://` from beyond this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlainHttp {
    /// Only on loopback, where nobody is on the way.
    LoopbackOnly,
    /// Anywhere: whoever is on the way can swap the keys (an explicit opt-in).
    Anywhere,
}

/// `url` parsed, if it is one we fetch from: `https://`, or `http://` on
/// loopback (elsewhere only when `plain` allows it: anyone on the way could
/// swap the keys).
pub(crate) fn fetchable_url(url: &str, what: &str, plain: PlainHttp) -> Result<Uri, ConfigError> {
    let parsed: Uri = url
        .parse()
        .map_err(|_| ConfigError::new(format!("invalid {what} URL {url:?}")))?;
    let Some(host) = parsed.host() else {
        return Err(ConfigError::new(format!("the {what} URL needs a host")));
    };
    match parsed.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback(host) => {}
        Some("http") if plain == PlainHttp::Anywhere => tracing::warn!(
            url = %parsed,
            "tower-authx: fetching over plain http: anyone on the way can swap the keys; use https"
        ),
        Some("http") => {
            return Err(ConfigError::new(format!(
                "the {what} URL {url:?} is plain http beyond loopback: anyone on the way could \
                 swap the keys; use https (or RemoteJwks::danger_plain_http, knowing that)"
            )));
        }
        _ => {
            return Err(ConfigError::new(format!(
                "the {what} URL must be https:// (or http:// on loopback)"
            )));
        }
    }
    Ok(parsed)
}

/// Whether `host` is this machine (where plain http cannot be intercepted).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// TLS trusted by the platform's roots plus `SSL_CERT_FILE` / `SSL_CERT_DIR`
/// (rustls-native-certs' convention).
pub(crate) fn platform_tls() -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "tower-authx: a trusted root could not be read");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("tower-authx: no trusted roots found: https JWKS fetches will fail");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(super::backend::tls_provider()?))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| ConfigError::new(format!("TLS: {e}")))
}

/// The client keys and discovery documents are fetched with (and tokens
/// introspected: the same TLS).
pub(crate) type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `https://` (with `config`) and `http://` URLs.
pub(crate) fn https_client(config: rustls::ClientConfig) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(2)));
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A JWKS document larger than this is refused.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// The body of a `200` answer to a GET of `url` (a JSON document of at most
/// 1 MiB); the caller bounds the time.
pub(crate) async fn get_json(client: &HttpsClient, url: &Uri) -> Result<Bytes, FetchError> {
    let request = Request::get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(Full::default())
        .map_err(|e| FetchError::Unreachable(with_causes(&e)))?;
    Ok(send(client, request, MAX_JWKS_BYTES).await?.into_body())
}

/// The answer to `request`, which must be `200`, with its body read whole
/// (at most `max_bytes`); the caller bounds the time.
pub(crate) async fn send(
    client: &HttpsClient,
    request: Request<Full<Bytes>>,
    max_bytes: usize,
) -> Result<http::Response<Bytes>, FetchError> {
    let response = client.request(request).await.map_err(|e| {
        let why = with_causes(&e);
        // rustls's refusal, found by type, or by its words where a layer
        // between turned it into text.
        if certificate_refused(&e) || why.contains("invalid peer certificate") {
            FetchError::Untrusted(why)
        } else {
            FetchError::Unreachable(why)
        }
    })?;
    if response.status() != StatusCode::OK {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let (head, body) = response.into_parts();
    let body = Limited::new(body, max_bytes)
        .collect()
        .await
        .map_err(|e| FetchError::Body(with_causes(&*e)))?
        .to_bytes();
    Ok(http::Response::from_parts(head, body))
}

/// Whether `error` comes from a TLS certificate rustls would not trust
/// (found down its chain of causes, I/O errors' inner ones included).
fn certificate_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        let inner = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(error), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                );
            }
        }
        next = error.source();
    }
    false
}

/// When fetches happened, as atomics: every verification looks at them, so no
/// lock on the request path.
pub(super) struct FetchState {
    /// The zero of the two clocks below.
    pub(super) origin: Instant,
    /// Milliseconds since `origin`, plus one; 0 means never.
    pub(super) last_attempt: AtomicU64,
    pub(super) last_success: AtomicU64,
    pub(super) last_failed: AtomicBool,
    pub(super) background: AtomicBool,
    /// A fetch waits for the rate limit to allow it.
    pub(super) deferred: AtomicBool,
    /// Wall-clock times (Unix milliseconds; 0 means never), for tokens' `iat`
    /// and for health probes.
    pub(super) success_unix_ms: AtomicU64,
    pub(super) failure_unix_ms: AtomicU64,
}

impl FetchState {
    pub(super) fn new() -> Self {
        FetchState {
            origin: Instant::now(),
            last_attempt: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
            last_failed: AtomicBool::new(false),
            background: AtomicBool::new(false),
            deferred: AtomicBool::new(false),
            success_unix_ms: AtomicU64::new(0),
            failure_unix_ms: AtomicU64::new(0),
        }
    }

    pub(super) fn mark_unix(at: &AtomicU64) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        at.store(ms, Ordering::Relaxed);
    }

    pub(super) fn unix(at: &AtomicU64) -> Option<std::time::SystemTime> {
        match at.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(std::time::UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    pub(super) fn mark(&self, at: &AtomicU64) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        at.store(ms + 1, Ordering::Relaxed);
    }

    /// How long ago `at` was marked, or `None` if never.
    pub(super) fn since(&self, at: &AtomicU64) -> Option<Duration> {
        match at.load(Ordering::Relaxed) {
            0 => None,
            marked => {
                let now = self.origin.elapsed().as_millis();
                Some(Duration::from_millis(
                    u64::try_from(now.saturating_sub(u128::from(marked - 1))).unwrap_or(u64::MAX),
                ))
            }
        }
    }
}

/// The URL of `iss`'s OpenID configuration (`{iss}/.well-known/openid-configuration`).
pub(crate) fn openid_configuration_url(iss: &str) -> Result<Uri, ConfigError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        iss.trim_end_matches('/')
    );
    fetchable_url(&url, "OpenID configuration", PlainHttp::LoopbackOnly)
}

/// What an OpenID configuration says of an issuer's keys and introspection.
pub(crate) struct OpenIdConfiguration {
    pub(crate) jwks_uri: String,
    pub(crate) introspection_endpoint: Option<String>,
    pub(crate) token_endpoint: Option<String>,
}

/// Fetches `iss`'s OpenID configuration from `url` (OpenID Connect
/// Discovery 1.0) and reads it: its `issuer` must be `iss` exactly (4.3),
/// and a document fetched over https names only https endpoints (keys come
/// at least as safely as the document that names them).
pub(crate) async fn openid_configuration(
    client: &HttpsClient,
    url: &Uri,
    iss: &str,
) -> Result<OpenIdConfiguration, FetchError> {
    let body = tokio::time::timeout(Duration::from_secs(10), get_json(client, url))
        .await
        .unwrap_or(Err(FetchError::TimedOut))?;
    let document: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| FetchError::Document("the OpenID configuration is not JSON".into()))?;
    let member = |name: &str| document.get(name).and_then(serde_json::Value::as_str);
    if member("issuer") != Some(iss) {
        return Err(FetchError::Document(format!(
            "the OpenID configuration names issuer {:?}, not {iss:?}",
            member("issuer").unwrap_or("(none)")
        )));
    }
    let jwks_uri = member("jwks_uri")
        .ok_or_else(|| FetchError::Document("the OpenID configuration has no jwks_uri".into()))?;
    let https = url.scheme_str() == Some("https");
    if https && !jwks_uri.starts_with("https://") {
        return Err(FetchError::Document(format!(
            "the OpenID configuration (over https) names a jwks_uri that is not https: {jwks_uri:?}"
        )));
    }
    let introspection_endpoint = member("introspection_endpoint").map(str::to_owned);
    if https
        && introspection_endpoint
            .as_deref()
            .is_some_and(|endpoint| !endpoint.starts_with("https://"))
    {
        return Err(FetchError::Document(
            "the OpenID configuration (over https) names an introspection_endpoint that is not https".into(),
        ));
    }
    let token_endpoint = member("token_endpoint").map(str::to_owned);
    if https
        && token_endpoint
            .as_deref()
            .is_some_and(|endpoint| !endpoint.starts_with("https://"))
    {
        return Err(FetchError::Document(
            "the OpenID configuration (over https) names a token_endpoint that is not https".into(),
        ));
    }
    Ok(OpenIdConfiguration {
        jwks_uri: jwks_uri.to_owned(),
        introspection_endpoint,
        token_endpoint,
    })
}
