//! What the example servers share: settings from the environment, AuthX's example's
//! users, and AuthX's example's JSON answers. Not an example itself (no `main.rs`).
#![allow(dead_code)]

pub mod observability;
pub mod responses;
pub mod server;

use std::collections::HashMap;
use std::sync::Mutex;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tower_authx::{Algorithm, AuthXConfig, Claims, Key, KeySet, TokenLocation};

/// Login bodies are small; anything bigger is refused before it is read.
pub const MAX_BODY: usize = 16 * 1024;

/// `HOST` (default 127.0.0.1) and `PORT`.
pub fn address(default_port: u16) -> Result<(String, u16), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = match std::env::var("PORT") {
        Ok(port) => port.parse()?,
        Err(_) => default_port,
    };
    Ok((host, port))
}

/// The keys from the environment:
/// - `JWT_ALGORITHM` (default HS256);
/// - HS*: `JWT_SECRET_KEY` (default: AuthX's example's `your-secret-key`, accepted with a warning);
/// - RS*/PS*/ES*/EdDSA: `JWT_PRIVATE_KEY_FILE` (PEM) signs, with its RFC 7638 thumbprint as
///   `kid`; `JWT_PREVIOUS_KEY_FILE` (PEM, public or private; `JWT_PREVIOUS_ALGORITHM`, default
///   the same) keeps verifying and being published after a rotation;
/// - `JWT_ISSUER` (optional): the `iss` written into tokens and required of them.
pub fn config_from_env() -> Result<AuthXConfig, Box<dyn std::error::Error>> {
    let config = keys_from_env()?;
    Ok(match std::env::var("JWT_ISSUER") {
        Ok(iss) if !iss.is_empty() => config.issuer(iss),
        _ => config,
    })
}

fn keys_from_env() -> Result<AuthXConfig, Box<dyn std::error::Error>> {
    let alg: Algorithm = std::env::var("JWT_ALGORITHM")
        .unwrap_or_else(|_| "HS256".into())
        .parse()?;
    if !alg.is_hmac() {
        let path = std::env::var("JWT_PRIVATE_KEY_FILE").map_err(|_| {
            format!("JWT_ALGORITHM={alg} needs JWT_PRIVATE_KEY_FILE (a PEM private key)")
        })?;
        let mut keys = KeySet::new(Key::signing_pem(alg, &std::fs::read(&path)?)?);
        if let Ok(previous) = std::env::var("JWT_PREVIOUS_KEY_FILE") {
            let previous_alg: Algorithm = match std::env::var("JWT_PREVIOUS_ALGORITHM") {
                Ok(name) => name.parse()?,
                Err(_) => alg,
            };
            let pem = std::fs::read(&previous)?;
            let key = if String::from_utf8_lossy(&pem).contains("PRIVATE KEY") {
                Key::signing_pem(previous_alg, &pem)?
            } else {
                Key::verifying_pem(previous_alg, &pem)?
            };
            keys = keys.with_previous(key);
        }
        return Ok(AuthXConfig::new(keys));
    }
    let secret = std::env::var("JWT_SECRET_KEY").unwrap_or_else(|_| "your-secret-key".into());
    let mut config = AuthXConfig::new(Key::hmac(alg, &secret)?);
    if secret.len() < 32 {
        // AuthX's demo secret is 15 bytes; HS256 wants 32 (RFC 7518 3.2).
        eprintln!(
            "warning: JWT_SECRET_KEY is shorter than 32 bytes; set a long random secret in production"
        );
        config = config.danger_allow_weak_secret();
    }
    Ok(config)
}

/// Where tokens are looked for, from the environment as AuthX names it:
/// `JWT_TOKEN_LOCATION` (comma-separated, in order: `headers`, `cookies`,
/// `query`, `json`; unset: `default`), `JWT_JSON_KEY` and
/// `JWT_REFRESH_JSON_KEY` (the JSON body's members).
pub fn locations_from_env(
    config: AuthXConfig,
    default: &[TokenLocation],
) -> Result<AuthXConfig, Box<dyn std::error::Error>> {
    let locations = match std::env::var("JWT_TOKEN_LOCATION") {
        Ok(names) => names
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| match name {
                "headers" => Ok(TokenLocation::Headers),
                "cookies" => Ok(TokenLocation::Cookies),
                "query" => Ok(TokenLocation::Query),
                "json" => Ok(TokenLocation::Json),
                other => Err(format!(
                    "JWT_TOKEN_LOCATION: {other:?} is none of headers, cookies, query, json"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Err(_) => default.to_vec(),
    };
    let config = config.token_location(locations);
    let access = std::env::var("JWT_JSON_KEY").unwrap_or_else(|_| "access_token".into());
    let refresh = std::env::var("JWT_REFRESH_JSON_KEY").unwrap_or_else(|_| "refresh_token".into());
    Ok(config.json_keys(access, refresh))
}

/// What every example that issues or guards reads beyond its keys:
/// - `JWT_VERIFIED_CACHE=<capacity>` turns on the verified-token cache (off by default);
/// - `REDIS_URL` moves revocations and refresh sessions to Redis (feature `redis`),
///   shared by every instance; the example refuses to start when Redis cannot be
///   reached or may evict keys (`maxmemory-policy` other than `noeviction`).
///   Several comma-separated node URLs mean a Redis Cluster. Checks are answered
///   from a local view kept current by Redis pub/sub (`REDIS_LOCAL_VIEW=<subjects>`,
///   default 100 000; `0` asks Redis on every request); `REDIS_WAIT_REPLICAS=<n>`
///   counts a logout or rotation only once n replicas have it.
pub async fn shared_settings(
    config: AuthXConfig,
) -> Result<AuthXConfig, Box<dyn std::error::Error>> {
    let config = match std::env::var("JWT_VERIFIED_CACHE") {
        Ok(capacity) => config.verified_token_cache(capacity.parse()?),
        Err(_) => config,
    };
    let Ok(url) = std::env::var("REDIS_URL") else {
        return Ok(config);
    };
    #[cfg(feature = "redis")]
    {
        let mut store = tower_authx::RedisStore::connect(&url)
            .await
            .map_err(|e| format!("REDIS_URL={url}: {e}"))?;
        let view = match std::env::var("REDIS_LOCAL_VIEW") {
            Ok(capacity) => capacity.parse()?,
            Err(_) => tower_authx::DEFAULT_VIEW_CAPACITY,
        };
        if view > 0 {
            store = store.local_view(view);
        }
        if let Ok(replicas) = std::env::var("REDIS_WAIT_REPLICAS") {
            store =
                store.wait_for_replicas(replicas.parse()?, std::time::Duration::from_millis(500));
        }
        Ok(config.revocation_store(store))
    }
    #[cfg(not(feature = "redis"))]
    {
        Err(format!("REDIS_URL={url} needs the example built with `--features redis`").into())
    }
}

/// DPoP-bound tokens (RFC 9449) taken beside Bearer ones:
/// - `public_url`: the base URL clients address this server by, which their
///   proofs name in `htu` (see [`public_url`]);
/// - `REDIS_URL` (feature `redis`): used proofs are remembered in Redis, so a
///   proof replayed to another instance is refused too;
/// - `DPOP_NONCE_SECRET` (32+ bytes, the same on every instance): proofs must
///   carry a server nonce (`DPoP-Nonce`), rotated every five minutes;
/// - `DPOP_PROOFS_PER_SUBJECT` (default 20 000): live proofs one account may
///   hold in the replay store over all its keys (past it: 429 for it alone).
pub async fn with_dpop(
    config: AuthXConfig,
    public_url: &str,
) -> Result<AuthXConfig, Box<dyn std::error::Error>> {
    let mut dpop = tower_authx::Dpop::new(public_url);
    if let Ok(secret) = std::env::var("DPOP_NONCE_SECRET") {
        dpop = dpop.nonces(secret, std::time::Duration::from_secs(300));
    }
    let per_subject = match std::env::var("DPOP_PROOFS_PER_SUBJECT") {
        Ok(n) => n.parse()?,
        Err(_) => tower_authx::DEFAULT_PROOFS_PER_SUBJECT,
    };
    dpop = dpop.replay_store(tower_authx::MemoryReplay::default().per_subject(per_subject));
    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("REDIS_URL") {
        let store = tower_authx::RedisStore::connect(&url)
            .await
            .map_err(|e| format!("REDIS_URL={url}: {e}"))?
            .proofs_per_subject(per_subject, tower_authx::DEFAULT_PROOFS_PER_KEY);
        dpop = dpop.replay_store(store);
    }
    Ok(config.dpop(dpop))
}

/// `PUBLIC_URL`, the base URL clients address this server by (DPoP proofs
/// name it), or `http://` and the address listened on.
pub fn public_url(addr: std::net::SocketAddr) -> String {
    std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}"))
}

/// A request body of at most [`MAX_BODY`] bytes that arrives within
/// [`server::BODY_TIMEOUT`], or the status and detail that refuse it.
pub async fn read_body<B>(body: B) -> Result<bytes::Bytes, (StatusCode, &'static str)>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, MAX_BODY).collect();
    match tokio::time::timeout(server::BODY_TIMEOUT, limited).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(_)) => Err((StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)),
        Err(_) => Err((StatusCode::REQUEST_TIMEOUT, TOO_SLOW)),
    }
}

/// AuthX's example's sample users, with passwords that `/account/password` may change.
pub struct Users {
    by_name: Mutex<HashMap<String, (String, String)>>,
}

impl Users {
    pub fn seed() -> Users {
        let users = [
            ("user1", "password1", "user1@example.com"),
            ("user2", "password2", "user2@example.com"),
        ];
        let by_name = users
            .into_iter()
            .map(|(name, password, email)| (name.into(), (password.into(), email.into())))
            .collect();
        Users {
            by_name: Mutex::new(by_name),
        }
    }

    /// Whether `login` names a user with that password.
    pub fn check(&self, login: &Login) -> bool {
        let users = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        users
            .get(&login.username)
            .is_some_and(|(password, _)| constant_time_eq(password, &login.password))
    }

    pub fn set_password(&self, user: &str, password: String) -> bool {
        let mut users = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        match users.get_mut(user) {
            Some(entry) => {
                entry.0 = password;
                true
            }
            None => false,
        }
    }

    pub fn email(&self, user: &str) -> Value {
        let users = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        users
            .get(user)
            .map_or(Value::Null, |(_, email)| json!(email))
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Deserialize)]
pub struct Login {
    pub username: String,
    pub password: String,
    /// A demo second factor: `"000000"` is the one accepted code.
    #[serde(default)]
    pub otp: Option<String>,
}

/// The demo second factor's one accepted code.
pub const DEMO_OTP: &str = "000000";
pub const BAD_OTP: &str = "Invalid one-time code";

/// How a login authenticated, for `amr`: with the demo second factor
/// `["pwd", "otp"]`, without it nothing (AuthX's example's tokens, unchanged); a
/// wrong code is the 401 that refuses the login.
pub fn second_factor(
    user: &Login,
) -> Result<Option<[&'static str; 2]>, (StatusCode, &'static str)> {
    match user.otp.as_deref() {
        None => Ok(None),
        Some(DEMO_OTP) => Ok(Some(["pwd", "otp"])),
        Some(_) => Err((StatusCode::UNAUTHORIZED, BAD_OTP)),
    }
}

pub fn mfa_required(claims: &Claims, users: &Users) -> Value {
    json!({
        "message": "You have access to this MFA-required resource",
        "username": claims.sub,
        "email": users.email(&claims.sub),
    })
}

#[derive(Deserialize)]
pub struct NewPassword {
    pub new_password: String,
}

/// A JSON body of type `T`, or the status and detail that refuse it.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    expected: &'static str,
) -> Result<T, (StatusCode, &'static str)> {
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(e) if e.is_data() => Err((StatusCode::UNPROCESSABLE_ENTITY, expected)),
        Err(_) => Err((StatusCode::BAD_REQUEST, "Body must be JSON")),
    }
}

pub const LOGIN_FIELDS: &str =
    "Body must be a JSON object with string fields 'username' and 'password'";
pub const PASSWORD_FIELDS: &str = "Body must be a JSON object with a string field 'new_password'";
pub const BAD_CREDENTIALS: &str = "Invalid username or password";
pub const TOO_LARGE: &str = "Request body too large or unreadable";
pub const TOO_SLOW: &str = "Request body not received in time";

pub fn root() -> Value {
    json!({
        "message": "Welcome to AuthX Fresh Token Example",
        "endpoints": {
            "login": "POST /login - Get a fresh token",
            "refresh": "POST /refresh - Get a non-fresh token using a fresh token",
            "protected": "GET /protected - Access protected resource (requires any token)",
            "fresh-required": "GET /fresh-required - Access protected resource (requires fresh token)",
        },
    })
}

pub fn protected(claims: &Claims, users: &Users, fresh: bool) -> Value {
    json!({
        "message": "You have access to this protected resource",
        "username": claims.sub,
        "email": email(claims, users),
        "fresh": fresh,
    })
}

pub fn fresh_required(claims: &Claims, users: &Users) -> Value {
    json!({
        "message": "You have access to this fresh-required resource",
        "username": claims.sub,
        "email": email(claims, users),
    })
}

/// The user's email; a client's own token (its `sub` a client id, which may
/// equal a user's name) has none.
fn email(claims: &Claims, users: &Users) -> Value {
    if claims.is_client() {
        Value::Null
    } else {
        users.email(&claims.sub)
    }
}
