//! Consuming an issuer's JWKS (feature `remote-keys`): keys fetched with hyper's client,
//! cached, refreshed in the background, refetched when a token names an unknown
//! `kid` (rate-limited, so a flood of made-up kids cannot make us hammer the
//! issuer), and kept serving while the issuer is down.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::Uri;

use super::fetch::{
    FetchState, HttpsClient, PlainHttp, fetchable_url, get_json, https_client,
    openid_configuration, platform_tls,
};
use super::saved::SavedKeys;
use super::set::{KeyRing, signature_keys};
use crate::error::{ConfigError, FetchError};

/// The keys of an issuer, read from its JWKS URL. Cheap to clone; clones share
/// the cache.
///
/// - `https://` with rustls: the platform's roots plus the file named by
///   `SSL_CERT_FILE` (so a private CA needs no code), or your own
///   [`tls_config`](Self::tls_config) (roots, client certificates). `http://`
///   is for loopback and tests; anywhere else it is refused, unless built with
///   [`danger_plain_http`](Self::danger_plain_http).
///
/// - The first verification fetches the keys; afterwards they are refreshed in
///   the background every [`refresh_interval`](Self::refresh_interval) (5 min).
/// - A token naming a `kid` we do not hold triggers one refetch, but never more
///   than one per [`min_refetch_interval`](Self::min_refetch_interval) (10 s),
///   however many such tokens arrive; concurrent ones share a fetch.
/// - While the issuer is unreachable the cached keys keep serving; a token whose
///   key we cannot get is answered 503 (keys unavailable), not 401.
/// - Only signature keys are taken: `use` other than `sig` and symmetric (`oct`)
///   keys are skipped, each key is bound to its `alg` (RSA keys without `alg`:
///   RS256; EC and OKP keys by their curve).
/// - With [`keep_last_good`](Self::keep_last_good), the last good JWKS is
///   kept in a file and read at start, so a restart during the issuer's
///   outage keeps serving its tokens.
#[derive(Clone)]
pub struct RemoteJwks {
    inner: Arc<Remote>,
}

struct Remote {
    /// The JWKS URL, or where the OpenID configuration that names it is.
    url: Uri,
    /// Keys found by discovery when first needed: the `iss` the document
    /// must name, and the `jwks_uri` it named, once read.
    discovery: Option<Discovery>,
    /// The `issuer` label of its metrics: the issuer's `iss`, else the URL.
    #[cfg(feature = "metrics")]
    label: metrics::SharedString,
    client: HttpsClient,
    ring: RwLock<Arc<KeyRing>>,
    fetching: tokio::sync::Mutex<()>,
    state: FetchState,
    misses: std::sync::Mutex<Misses>,
    refresh_every: Duration,
    min_interval: Duration,
    timeout: Duration,
    /// Where the last good JWKS is kept, when asked.
    saved: Option<Arc<SavedKeys>>,
    /// The issuer these keys were discovered for, if any: what the saved
    /// file names (found now or on first use, its keys are the same).
    discovered_for: Option<String>,
    /// The keys came from that file and no fetch has succeeded since.
    from_file: AtomicBool,
}

/// An issuer's keys found by OpenID Connect discovery on first use.
#[derive(Clone, Debug)]
struct Discovery {
    iss: String,
    jwks: std::sync::OnceLock<Uri>,
}

/// The `kid`s tokens named that the keys lacked, remembered so that forged
/// tokens naming made-up keys are 401, not an outage's 503: those asked
/// since the last fetch, and those that fetch answered without.
#[derive(Debug, Default)]
struct Misses {
    asked: std::collections::HashSet<Box<str>>,
    missing: std::collections::HashSet<Box<str>>,
}

/// The most `kid`s remembered either way (past it, a made-up `kid` is
/// answered as before: 503 until a fetch after its token's `iat`).
const MAX_MISSES: usize = 1024;

/// The longest `kid` remembered.
const MAX_KID_LEN: usize = 256;

impl Misses {
    fn ask(&mut self, kid: &str) {
        if self.asked.len() < MAX_MISSES && kid.len() <= MAX_KID_LEN {
            self.asked.insert(kid.into());
        }
    }

    /// A fetch answered `ring`: the `kid`s asked for and not in it are missing.
    fn answered(&mut self, ring: &KeyRing) {
        self.missing = std::mem::take(&mut self.asked)
            .into_iter()
            .filter(|kid| !ring.contains(kid))
            .collect();
    }
}

/// The state of an issuer's keys, from [`RemoteJwks::health`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeysHealth {
    /// When the keys were last fetched successfully.
    pub last_success: Option<std::time::SystemTime>,
    /// When a fetch last failed.
    pub last_failure: Option<std::time::SystemTime>,
    /// Whether the latest fetch failed (cached keys keep serving).
    pub failing: bool,
    /// How many signature keys are held.
    pub keys: usize,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// Keys from `url` (`https://issuer/.well-known/jwks.json`), fetched on
    /// first use, over TLS trusted by the platform's roots and `SSL_CERT_FILE`.
    pub fn new(url: &str) -> Result<RemoteJwks, ConfigError> {
        RemoteJwks::at(fetchable_url(url, "JWKS", PlainHttp::LoopbackOnly)?)
    }

    /// Like [`new`](Self::new), and `url` may also be plain `http://` beyond
    /// this machine. Dangerous: whoever is on the network path (a proxy, a
    /// compromised host, anyone on the same Wi-Fi) can swap the keys and then
    /// sign any token. Only inside a network you trust end to end.
    pub fn danger_plain_http(url: &str) -> Result<RemoteJwks, ConfigError> {
        RemoteJwks::at(fetchable_url(url, "JWKS", PlainHttp::Anywhere)?)
    }

    /// The keys of `iss`, found by OpenID Connect discovery when first
    /// needed (see [`Issuer::discover_on_first_use`](crate::Issuer::discover_on_first_use)).
    pub(crate) fn discovering(iss: &str) -> Result<RemoteJwks, ConfigError> {
        let mut keys = RemoteJwks::at(super::fetch::openid_configuration_url(iss)?)?;
        if let Some(remote) = Arc::get_mut(&mut keys.inner) {
            remote.discovery = Some(Discovery {
                iss: iss.to_owned(),
                jwks: std::sync::OnceLock::new(),
            });
        }
        Ok(keys.discovered_for(iss))
    }

    /// These keys are `iss`'s, found by discovery.
    pub(crate) fn discovered_for(self, iss: &str) -> Self {
        let iss = iss.to_owned();
        self.with(|r| r.discovered_for = Some(iss))
    }

    fn at(url: Uri) -> Result<RemoteJwks, ConfigError> {
        Ok(RemoteJwks {
            inner: Arc::new(Remote {
                #[cfg(feature = "metrics")]
                label: url.to_string().into(),
                url,
                discovery: None,
                client: https_client(platform_tls()?),
                ring: RwLock::new(Arc::new(KeyRing::default())),
                fetching: tokio::sync::Mutex::new(()),
                state: FetchState::new(),
                misses: Default::default(),
                refresh_every: Duration::from_secs(300),
                min_interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
                saved: None,
                discovered_for: None,
                from_file: AtomicBool::new(false),
            }),
        })
    }

    /// How often cached keys are refreshed in the background (default 5 min).
    #[must_use]
    pub fn refresh_interval(self, every: Duration) -> Self {
        self.with(|r| r.refresh_every = every)
    }

    /// The least time between two fetches caused by unknown `kid`s (default 10 s).
    #[must_use]
    pub fn min_refetch_interval(self, interval: Duration) -> Self {
        self.with(|r| r.min_interval = interval)
    }

    /// How long a fetch may take (default 5 s).
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|r| r.timeout = timeout)
    }

    /// Fetches with your own rustls configuration instead of the platform's
    /// roots: a private CA, client certificates (mutual TLS).
    #[must_use]
    pub fn tls_config(self, config: rustls::ClientConfig) -> Self {
        self.with(|r| r.client = https_client(config))
    }

    /// Keeps the last good JWKS in the file at `path` (written after each
    /// fetch that brings a new document, atomically) and, now, reads it: keys
    /// saved from this same URL (for discovered keys: for the same issuer,
    /// whether found at start or on first use) at most `max_age` ago serve at
    /// once, until the first successful fetch replaces them (one is tried on
    /// first use). A restart while the issuer is down then serves its tokens
    /// instead of answering 503 until it is back.
    ///
    /// The trade-off, yours to bound with `max_age`: a key the issuer has
    /// since withdrawn keeps verifying from the file while the issuer cannot
    /// be reached. The file holds public keys only; protect it as you do the
    /// configuration (whoever can write it can add a key). A file that is
    /// missing, unreadable, for another URL or too old is ignored, with a
    /// warning.
    #[must_use]
    pub fn keep_last_good(self, path: impl Into<PathBuf>, max_age: Duration) -> Self {
        let saved = Arc::new(SavedKeys::new(path.into(), max_age));
        self.with(|r| {
            if let Some(ring) = saved.load(&r.saved_as()) {
                r.ring = RwLock::new(Arc::new(ring));
                r.from_file = AtomicBool::new(true);
            }
            r.saved = Some(saved);
        })
    }

    fn with(self, change: impl FnOnce(&mut Remote)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Remote {
            url: shared.url.clone(),
            discovery: shared.discovery.clone(),
            #[cfg(feature = "metrics")]
            label: shared.label.clone(),
            client: shared.client.clone(),
            ring: RwLock::new(shared.ring()),
            fetching: tokio::sync::Mutex::new(()),
            state: FetchState::new(),
            misses: Default::default(),
            refresh_every: shared.refresh_every,
            min_interval: shared.min_interval,
            timeout: shared.timeout,
            saved: shared.saved.clone(),
            discovered_for: shared.discovered_for.clone(),
            from_file: AtomicBool::new(shared.from_file.load(Ordering::Relaxed)),
        });
        change(&mut inner);
        RemoteJwks {
            inner: Arc::new(inner),
        }
    }

    /// Names these keys' metrics by the issuer they belong to.
    #[cfg(feature = "metrics")]
    pub(crate) fn labelled(self, iss: &str) -> Self {
        let label: metrics::SharedString = iss.to_owned().into();
        self.with(|r| r.label = label)
    }

    /// The cached keys; starts a background refresh when they are old.
    pub(crate) fn ring(&self) -> Arc<KeyRing> {
        let ring = self.inner.ring();
        if self.inner.is_stale() {
            self.refresh_in_background();
        }
        ring
    }

    fn refresh_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.state.background.swap(true, Ordering::AcqRel) {
            return; // one background refresh at a time
        }
        let remote = self.inner.clone();
        runtime.spawn(async move {
            remote.fetch_if_allowed(None, remote.refresh_every).await;
            remote.state.background.store(false, Ordering::Release);
        });
    }

    /// Refetches because a token named `kid` we do not hold (rate-limited).
    pub(crate) fn refetch_for(
        &self,
        kid: Option<String>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let remote = self.inner.clone();
        Box::pin(async move {
            let min_interval = remote.min_interval;
            remote.fetch_if_allowed(kid, min_interval).await;
        })
    }

    /// How long until a fetch for an unknown `kid` may run (zero: now). One
    /// that was refused for being too soon runs then on its own, so a client
    /// that comes back after this finds the keys fetched.
    pub(crate) fn next_fetch_in(&self) -> Duration {
        self.inner.next_fetch_in()
    }

    /// Whether the last fetch failed (the issuer is unreachable or answered badly).
    pub(crate) fn unavailable(&self) -> bool {
        self.inner.state.last_failed.load(Ordering::Relaxed)
    }

    /// Whether the latest fetch answered without `kid`, which a token had
    /// named before it: a token naming it is forged (401), not a rotation
    /// not yet seen (503), until the next fetch says otherwise.
    pub(crate) fn missed(&self, kid: Option<&str>) -> bool {
        let misses = self.inner.misses.lock().unwrap_or_else(|e| e.into_inner());
        kid.is_some_and(|kid| misses.missing.contains(kid))
    }

    /// Whether keys were fetched after `unix_secs` (a token's `iat`): only then
    /// does a `kid` missing from them prove the token's key unknown. `iat` has
    /// whole seconds, so a fetch in the same second does not count.
    pub(crate) fn fetched_after(&self, unix_secs: f64) -> bool {
        let fetched_ms = self.inner.state.success_unix_ms.load(Ordering::Relaxed);
        fetched_ms != 0 && fetched_ms as f64 >= (unix_secs.floor() + 1.0) * 1000.0
    }

    /// The client its keys are fetched with (its TLS configuration).
    pub(crate) fn http_client(&self) -> HttpsClient {
        self.inner.client.clone()
    }

    /// The JWKS URL (for keys found by discovery on first use, the OpenID
    /// configuration's URL).
    pub fn url(&self) -> &Uri {
        &self.inner.url
    }

    /// What a readiness probe wants to know: when the keys were last fetched,
    /// when a fetch last failed, and how many keys are held.
    pub fn health(&self) -> KeysHealth {
        let state = &self.inner.state;
        KeysHealth {
            last_success: FetchState::unix(&state.success_unix_ms),
            last_failure: FetchState::unix(&state.failure_unix_ms),
            failing: state.last_failed.load(Ordering::Relaxed),
            keys: self.inner.ring().len(),
        }
    }

    /// Fetches the keys now, whatever the intervals say.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        let _one_at_a_time = self.inner.fetching.lock().await;
        self.inner.fetch().await
    }
}

impl Remote {
    /// What the saved file names as its source.
    fn saved_as(&self) -> String {
        match &self.discovered_for {
            Some(iss) => format!("issuer {iss}"),
            None => self.url.to_string(),
        }
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the keys should be fetched again: they are older than the
    /// refresh interval, or came from the saved file (and no fetch has
    /// succeeded yet); and the last attempt is not too recent.
    fn is_stale(&self) -> bool {
        let state = &self.state;
        state
            .since(&state.last_success)
            .map_or(self.from_file.load(Ordering::Relaxed), |ago| {
                ago >= self.refresh_every
            })
            && state
                .since(&state.last_attempt)
                .is_none_or(|ago| ago >= self.min_interval)
    }

    fn next_fetch_in(&self) -> Duration {
        self.state
            .since(&self.state.last_attempt)
            .map_or(Duration::ZERO, |ago| self.min_interval.saturating_sub(ago))
    }

    /// One fetch at a time; skipped when another one just brought `kid`, or
    /// when the last attempt is more recent than `interval`. A fetch for a
    /// `kid` skipped for that is made as soon as the interval allows (once,
    /// however many tokens ask): the `Retry-After` their refusals carry.
    async fn fetch_if_allowed(self: &Arc<Self>, kid: Option<String>, interval: Duration) {
        let _one_at_a_time = self.fetching.lock().await;
        if kid.as_deref().is_some_and(|kid| self.ring().contains(kid)) {
            return;
        }
        if let Some(kid) = &kid {
            self.misses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ask(kid);
        }
        if self
            .state
            .since(&self.state.last_attempt)
            .is_some_and(|ago| ago < interval)
        {
            if kid.is_some() {
                self.fetch_when_allowed();
            }
            return;
        }
        if let Err(e) = self.fetch().await {
            tracing::warn!(url = %self.url, error = %e, "tower-authx: JWKS fetch failed; cached keys keep serving");
        }
    }

    /// Fetches once the rate limit allows (one such wait at a time).
    fn fetch_when_allowed(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.state.deferred.swap(true, Ordering::AcqRel) {
            return;
        }
        let remote = self.clone();
        runtime.spawn(async move {
            // A little past the limit: the clocks count whole milliseconds.
            tokio::time::sleep(remote.next_fetch_in() + Duration::from_millis(10)).await;
            remote.state.deferred.store(false, Ordering::Release);
            remote.fetch_if_allowed(None, remote.min_interval).await;
        });
    }

    async fn fetch(&self) -> Result<(), FetchError> {
        self.state.mark(&self.state.last_attempt);
        let result = tokio::time::timeout(self.timeout, self.download())
            .await
            .unwrap_or(Err(FetchError::TimedOut));
        match result {
            Ok((ring, document)) => {
                if let Some(saved) = &self.saved {
                    saved.save(&self.saved_as(), &document);
                }
                self.from_file.store(false, Ordering::Relaxed);
                #[cfg(feature = "metrics")]
                self.record_fetch(Some(ring.len()));
                self.misses
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .answered(&ring);
                *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
                self.state.mark(&self.state.last_success);
                FetchState::mark_unix(&self.state.success_unix_ms);
                self.state.last_failed.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                #[cfg(feature = "metrics")]
                self.record_fetch(None);
                self.state.last_failed.store(true, Ordering::Relaxed);
                FetchState::mark_unix(&self.state.failure_unix_ms);
                Err(e)
            }
        }
    }

    /// A fetch's metrics: its result, and after a success the keys held and when.
    #[cfg(feature = "metrics")]
    fn record_fetch(&self, keys: Option<usize>) {
        use crate::metrics::{JWKS_FETCHES, JWKS_KEYS, JWKS_LAST_SUCCESS};
        let issuer = self.label.clone();
        let result = if keys.is_some() { "ok" } else { "error" };
        metrics::counter!(JWKS_FETCHES, "issuer" => issuer.clone(), "result" => result)
            .increment(1);
        if let Some(keys) = keys {
            metrics::gauge!(JWKS_KEYS, "issuer" => issuer.clone()).set(keys as f64);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            metrics::gauge!(JWKS_LAST_SUCCESS, "issuer" => issuer).set(now);
        }
    }

    /// The keys, and the JWKS document they were read from.
    async fn download(&self) -> Result<(KeyRing, bytes::Bytes), FetchError> {
        let url = match &self.discovery {
            None => self.url.clone(),
            Some(discovery) => match discovery.jwks.get() {
                Some(jwks) => jwks.clone(),
                None => {
                    let document =
                        openid_configuration(&self.client, &self.url, &discovery.iss).await?;
                    let jwks = fetchable_url(&document.jwks_uri, "JWKS", PlainHttp::LoopbackOnly)
                        .map_err(|e| FetchError::Document(e.to_string()))?;
                    discovery.jwks.get_or_init(|| jwks).clone()
                }
            },
        };
        let document = get_json(&self.client, &url).await?;
        Ok((parse_jwks(&document)?, document))
    }
}

/// The signature keys of a JWKS document just fetched.
fn parse_jwks(body: &[u8]) -> Result<KeyRing, FetchError> {
    signature_keys(body).map_err(|e| FetchError::Document(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_usable_signature_keys_are_taken() {
        let ec = r#""kty":"EC","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw""#;
        let doc = format!(
            r#"{{"keys":[
                {{{ec},"kid":"a"}},
                {{{ec},"kid":"enc","use":"enc"}},
                {{"kty":"oct","k":"c2VjcmV0","kid":"s","alg":"HS256"}},
                {{{ec},"kid":"wrong-alg","alg":"RS256"}},
                {{"kty":"weird","kid":"w"}}
            ]}}"#
        );
        let ring = parse_jwks(doc.as_bytes()).unwrap();
        assert!(ring.contains("a"));
        for skipped in ["enc", "s", "wrong-alg", "w"] {
            assert!(!ring.contains(skipped), "{skipped}");
        }
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"not json").is_err());
    }
}
