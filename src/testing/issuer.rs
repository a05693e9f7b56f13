//! A mock OpenID Provider on a loopback port, for tests: real HTTP, real
//! keys, ordinary tokens.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value, json};

use super::state::{State, new_key, sign};
use super::token::MockToken;
use crate::error::ConfigError;
use crate::issuer::Issuer;
use crate::keys::{Algorithm, Key, RemoteJwks};

/// The client the token endpoint and introspection know.
const CLIENT: (&str, &str) = ("test-client", "test-secret");
/// The password every user has at the password grant.
const PASSWORD: &str = "password";
/// How long the tokens of its token endpoint live.
const TOKEN_SECS: i64 = 300;

/// A mock OpenID Provider on `127.0.0.1` (see [the module](super)). Stops
/// serving when dropped.
///
/// Its routes: `/.well-known/openid-configuration`, `/jwks`, `/token`
/// (`client_credentials` and `password`, as `test-client` / `test-secret`
/// by HTTP Basic or in the form; every user's password is `password`; a
/// `DPoP` proof binds the token), `/introspect` (as `test-client`).
pub struct MockIssuer {
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MockIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockIssuer")
            .field("url", &self.state.url)
            .field("audience", &self.state.audience)
            .finish_non_exhaustive()
    }
}

impl Drop for MockIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockIssuer {
    /// An issuer for tokens whose audience is `audience`, serving on a free
    /// loopback port (inside a tokio runtime).
    pub async fn start(audience: &str) -> Result<MockIssuer, ConfigError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| ConfigError::new(format!("the mock issuer cannot listen: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ConfigError::new(e.to_string()))?;
        let state = Arc::new(State {
            url: format!("http://{addr}"),
            audience: audience.to_owned(),
            keys: Mutex::new(vec![new_key()?]),
            down: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            requests: Mutex::new(HashMap::new()),
            opaque: Mutex::new(HashMap::new()),
            dpop_nonce: Mutex::new(None),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(MockIssuer { state, task })
    }

    /// Its URL, which is its `iss`.
    pub fn url(&self) -> &str {
        &self.state.url
    }

    /// The audience its tokens name.
    pub fn audience(&self) -> &str {
        &self.state.audience
    }

    /// An [`Issuer`] that trusts it (its JWKS, its `iss`, its audience),
    /// refetching keys at most once a second.
    pub fn issuer(&self) -> Result<Issuer, ConfigError> {
        let keys = RemoteJwks::new(&format!("{}/jwks", self.state.url))?
            .min_refetch_interval(Duration::from_secs(1));
        Ok(Issuer::new(&self.state.url, keys).audience(&self.state.audience))
    }

    /// A token to shape and sign: valid until changed.
    pub fn token(&self) -> MockToken {
        MockToken::new(self.state.clone())
    }

    /// An opaque token for `sub` with `scope`, which its introspection
    /// answers active for five minutes.
    pub fn opaque_token(&self, sub: &str, scope: &str) -> String {
        let token = format!("opaque-{}", uuid::Uuid::new_v4().simple());
        let now = crate::claims::NumericDate::now().as_secs_f64().floor() as i64;
        let answer = json!({
            "active": true, "sub": sub, "scope": scope, "client_id": CLIENT.0,
            "iss": self.state.url, "aud": self.state.audience, "token_type": "Bearer",
            "iat": now, "exp": now + TOKEN_SECS,
        });
        self.state
            .opaque
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), answer);
        token
    }

    /// Signs with a new key from now on; the old ones stay published.
    ///
    /// # Panics
    ///
    /// If the crypto backend cannot make a key.
    pub fn rotate_keys(&self) {
        let key = new_key().expect("a new key");
        self.state
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key);
    }

    /// Stops publishing every key but the signing one.
    pub fn drop_old_keys(&self) {
        let mut keys = self.state.keys.lock().unwrap_or_else(|e| e.into_inner());
        let current = keys.pop();
        keys.clear();
        keys.extend(current);
    }

    /// Answers `503` to everything until [`come_back`](Self::come_back).
    pub fn go_down(&self) {
        self.state.down.store(true, Ordering::SeqCst);
    }

    /// Answers again.
    pub fn come_back(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// Waits `delay` before each answer.
    pub fn answer_slowly(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Token requests with a DPoP proof must carry `nonce` (else `400
    /// use_dpop_nonce` with it, RFC 9449 8).
    pub fn require_dpop_nonce(&self, nonce: &str) {
        *self
            .state
            .dpop_nonce
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(nonce.to_owned());
    }

    /// How many requests it answered (or refused) at `path`.
    pub fn requests(&self, path: &str) -> u64 {
        let requests = self
            .state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        requests.get(path).copied().unwrap_or(0)
    }
}

type Answer = Response<Full<Bytes>>;

fn json_answer(status: StatusCode, body: &Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body.to_string())));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    answer
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Answer {
    json_answer(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

async fn answer(state: &State, req: Request<hyper::body::Incoming>) -> Answer {
    let path = req.uri().path().to_owned();
    *state
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(path.clone())
        .or_default() += 1;
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if state.down.load(Ordering::SeqCst) {
        return json_answer(StatusCode::SERVICE_UNAVAILABLE, &json!({}));
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, 64 * 1024).collect().await else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is too large",
        );
    };
    let body = body.to_bytes();
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/.well-known/openid-configuration") => json_answer(
            StatusCode::OK,
            &json!({
                "issuer": state.url,
                "jwks_uri": format!("{}/jwks", state.url),
                "token_endpoint": format!("{}/token", state.url),
                "introspection_endpoint": format!("{}/introspect", state.url),
                "grant_types_supported": ["client_credentials", "password"],
                "dpop_signing_alg_values_supported": ["ES256", "EdDSA", "RS256"],
            }),
        ),
        (&Method::GET, "/jwks") => {
            let keys = state.keys.lock().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<Value> = keys.iter().map(published).collect();
            json_answer(StatusCode::OK, &json!({ "keys": keys }))
        }
        (&Method::POST, "/token") => token(state, &parts.headers, &form(&body)),
        (&Method::POST, "/introspect") => {
            let form = form(&body);
            if !client_authenticated(&parts.headers, &form) {
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "who are you?");
            }
            let opaque = state.opaque.lock().unwrap_or_else(|e| e.into_inner());
            let answer = form
                .get("token")
                .and_then(|token| opaque.get(token))
                .cloned()
                .unwrap_or_else(|| json!({ "active": false }));
            json_answer(StatusCode::OK, &answer)
        }
        _ => json_answer(StatusCode::NOT_FOUND, &json!({})),
    }
}

/// A key's public JWK as a JWKS publishes it.
fn published(key: &Key) -> Value {
    let mut jwk = key.public_jwk().unwrap_or_default();
    jwk.insert("alg".into(), key.algorithm().as_str().into());
    jwk.insert("use".into(), "sig".into());
    if let Some(kid) = key.kid() {
        jwk.insert("kid".into(), kid.into());
    }
    Value::Object(jwk)
}

/// The token endpoint (RFC 6749 4.3 and 4.4; RFC 9449 for a proof).
fn token(state: &State, headers: &http::HeaderMap, form: &HashMap<String, String>) -> Answer {
    if !client_authenticated(headers, form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "who are you?");
    }
    let sub = match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => CLIENT.0.to_owned(),
        Some("password") => match (form.get("username"), form.get("password")) {
            (Some(user), Some(password)) if !user.is_empty() && password == PASSWORD => {
                user.clone()
            }
            _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "wrong password"),
        },
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "client_credentials or password",
            );
        }
    };
    let jkt = match headers.get("dpop").map(|proof| proof_key(state, proof)) {
        None => None,
        Some(Ok(jkt)) => Some(jkt),
        Some(Err(refusal)) => return *refusal,
    };
    let audience = form
        .get("resource")
        .or_else(|| form.get("audience"))
        .cloned()
        .unwrap_or_else(|| state.audience.clone());
    let now = crate::claims::NumericDate::now().as_secs_f64().floor() as i64;
    let mut claims = Map::new();
    claims.insert("iss".into(), state.url.clone().into());
    claims.insert("sub".into(), sub.into());
    claims.insert("aud".into(), audience.into());
    claims.insert("client_id".into(), CLIENT.0.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + TOKEN_SECS).into());
    claims.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
    if let Some(scope) = form.get("scope") {
        claims.insert("scope".into(), scope.clone().into());
    }
    if let Some(jkt) = &jkt {
        claims.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    let token = sign(&state.current_key(), "at+jwt", &claims);
    let mut body = json!({
        "access_token": token,
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": TOKEN_SECS,
    });
    if let Some(scope) = form.get("scope") {
        body["scope"] = scope.clone().into();
    }
    json_answer(StatusCode::OK, &body)
}

/// The key a token request's DPoP proof proves (its thumbprint), once its
/// signature, `typ`, `htm` and `htu` hold, and its nonce when one is asked
/// for; or the refusal to answer.
fn proof_key(state: &State, proof: &http::HeaderValue) -> Result<String, Box<Answer>> {
    let invalid = |why: &str| {
        Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            why,
        ))
    };
    let proof = proof.to_str().map_err(|_| invalid("not text"))?;
    let mut parts = proof.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a compact JWS"));
    };
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (Some(header_json), Some(claims)) = (decode(header), decode(payload)) else {
        return Err(invalid("not JSON"));
    };
    let alg: Algorithm = header_json["alg"]
        .as_str()
        .and_then(|alg| alg.parse().ok())
        .ok_or_else(|| invalid("no usable alg"))?;
    let key = Key::verifying_jwk(alg, &header_json["jwk"].to_string())
        .map_err(|_| invalid("no usable jwk"))?;
    let signed = &proof[..header.len() + 1 + payload.len()];
    if header_json["typ"] != "dpop+jwt" || !key.verify_signature(signed.as_bytes(), signature) {
        return Err(invalid("not a DPoP proof signed by its jwk"));
    }
    if claims["htm"] != "POST" || claims["htu"] != format!("{}/token", state.url).as_str() {
        return Err(invalid("not a proof for this request"));
    }
    let nonce = state
        .dpop_nonce
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(nonce) = nonce
        && claims["nonce"] != nonce.as_str()
    {
        let mut answer = oauth_error(StatusCode::BAD_REQUEST, "use_dpop_nonce", "a nonce, please");
        if let Ok(value) = http::HeaderValue::try_from(nonce) {
            answer.headers_mut().insert("dpop-nonce", value);
        }
        return Err(Box::new(answer));
    }
    key.thumbprint().ok_or_else(|| invalid("no thumbprint"))
}

/// Whether the request authenticates as the test client: HTTP Basic, or the
/// client id and secret in the form.
fn client_authenticated(headers: &http::HeaderMap, form: &HashMap<String, String>) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let (id, secret) = match &basic {
        Some(pair) => match pair.split_once(':') {
            Some((id, secret)) => (decoded(id), decoded(secret)),
            None => return false,
        },
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => return false,
        },
    };
    (id.as_str(), secret.as_str()) == CLIENT
}

/// An `application/x-www-form-urlencoded` body's fields (the last of a name wins).
fn form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decoded(name), decoded(value))
        })
        .collect()
}

/// `text` with `+` as space and `%XX` decoded.
fn decoded(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                match std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(decoded) => out.push(decoded),
                    None => {
                        out.push(b'%');
                        out.extend(hex);
                    }
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
