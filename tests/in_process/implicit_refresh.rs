//! Implicit refresh in process: which requests renew the access cookie and
//! what the renewed token carries; sessions logged out, responses that set
//! the cookie themselves, the filters, the absolute session lifetime. The
//! races over TCP and AuthX side by side are in tests/end_to_end.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::Full;
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::layer::ImplicitRefreshLayer;
use tower_authx::{
    AuthX, AuthXConfig, Claims, NumericDate, RequireAuthLayer, Requirement, TokenLocation,
};

const SECRET: &[u8] = b"implicit-refresh-secret-32-bytes";

fn authx() -> AuthX {
    AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .token_location([TokenLocation::Headers, TokenLocation::Cookies]),
    )
    .unwrap()
}

/// An access token of a login session (`fam`), living `secs` more.
fn session_token(authx: &AuthX, secs: u64) -> String {
    authx
        .access_token("alice")
        .fresh(true)
        .fam("session-1")
        .scopes(["read"])
        .extra(&json!({"role": "admin"}))
        .auth_time(NumericDate::now())
        .lifetime(Duration::from_secs(secs))
        .issue()
        .unwrap()
}

/// A 5-minute access token of session `session-1` whose login was at
/// `login` (its `auth_time`).
fn token_since(authx: &AuthX, login: u64) -> String {
    authx
        .access_token("alice")
        .fam("session-1")
        .auth_time(NumericDate::from_secs(login))
        .lifetime(Duration::from_secs(300))
        .issue()
        .unwrap()
}

fn with_cookie(method: Method, path: &str, token: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", format!("access_token_cookie={token}"))
        // The double submit, for the unsafe methods.
        .header("x-csrf-token", csrf_of(token))
        .body(Full::default())
        .unwrap()
}

fn csrf_of(token: &str) -> String {
    let payload = crate::support::payload_of(token);
    payload["csrf"].as_str().unwrap_or_default().to_owned()
}

/// The `Set-Cookie` lines a guarded request gets with `refresh` inside the
/// guard, around `handler`.
async fn set_cookies_with(
    authx: &AuthX,
    refresh: ImplicitRefreshLayer,
    req: Request<Full<Bytes>>,
    handler: impl Fn(&AuthX, Claims) -> HeaderMap + Clone + Send + 'static,
) -> Vec<String> {
    let inner_authx = authx.clone();
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        let claims = req.extensions().get::<Claims>().cloned().unwrap();
        let headers = handler(&inner_authx, claims);
        async move {
            let mut res = Response::new(Full::<Bytes>::default());
            *res.headers_mut() = headers;
            Ok::<_, Infallible>(res)
        }
    });
    let service = RequireAuthLayer::new(authx.clone()).layer(refresh.layer(inner));
    let res = service.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn set_cookies(
    authx: &AuthX,
    refresh: ImplicitRefreshLayer,
    req: Request<Full<Bytes>>,
) -> Vec<String> {
    set_cookies_with(authx, refresh, req, |_, _| HeaderMap::new()).await
}

fn renewed(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|line| {
        line.strip_prefix("access_token_cookie=")
            .map(|rest| rest.split(';').next().unwrap().to_owned())
    })
}

#[tokio::test]
async fn a_cookie_near_its_end_is_renewed_not_fresh_same_session_same_claims() {
    let authx = authx();
    let token = session_token(&authx, 300);
    let lines = set_cookies(
        &authx,
        ImplicitRefreshLayer::new(authx.clone()),
        with_cookie(Method::GET, "/", &token),
    )
    .await;
    let new = renewed(&lines).expect("renewed");
    assert!(
        lines.iter().any(|l| l.starts_with("csrf_access_token=")),
        "{lines:?}"
    );
    let claims: Claims<Value> = authx.verify_offline(&new, &Requirement::access()).unwrap();
    let old: Claims<Value> = authx
        .verify_offline(&token, &Requirement::access())
        .unwrap();
    assert!(!claims.is_fresh(), "a renewed token is not fresh");
    assert_eq!(claims.fam.as_deref(), Some("session-1"));
    assert_eq!(claims.scopes, old.scopes);
    assert_eq!(claims.extra["role"], "admin");
    assert_eq!(claims.auth_time, old.auth_time, "the login's time stays");
    assert_ne!(claims.jti, old.jti);
    assert!(claims.exp.as_secs_f64() > old.exp.as_secs_f64());
    // The same attributes a login's cookies have.
    let mut login = HeaderMap::new();
    authx.set_access_cookies(&token, &mut login).unwrap();
    let attributes = |line: &str| line.split_once(';').unwrap().1.to_owned();
    let first_login = login
        .get_all("set-cookie")
        .iter()
        .next()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(attributes(&lines[0]), attributes(&first_login));
}

#[tokio::test]
async fn only_a_session_cookie_near_its_end_admitted_by_this_authx_is_renewed() {
    let authx = authx();
    let layer = || ImplicitRefreshLayer::new(authx.clone());
    // Far from its end.
    let far = session_token(&authx, 3600);
    assert!(
        set_cookies(&authx, layer(), with_cookie(Method::GET, "/", &far))
            .await
            .is_empty()
    );
    // Near, but sent in the Authorization header: not a browser session.
    let near = session_token(&authx, 300);
    let header = Request::get("/")
        .header("authorization", format!("Bearer {near}"))
        .body(Full::default())
        .unwrap();
    assert!(set_cookies(&authx, layer(), header).await.is_empty());
    // Of no session: its successor could not be logged out with it.
    let lone = authx
        .access_token("alice")
        .lifetime(Duration::from_secs(300))
        .issue()
        .unwrap();
    assert!(
        set_cookies(&authx, layer(), with_cookie(Method::GET, "/", &lone))
            .await
            .is_empty()
    );
    // Admitted by another AuthX's guard (same secret, another instance).
    let other = ImplicitRefreshLayer::new(self::authx());
    assert!(
        set_cookies(&authx, other, with_cookie(Method::GET, "/", &near))
            .await
            .is_empty()
    );
    // The window is the configured one.
    let wide = layer().within(Duration::from_secs(7200));
    assert!(
        renewed(&set_cookies(&authx, wide, with_cookie(Method::GET, "/", &far)).await).is_some()
    );
}

#[tokio::test]
async fn a_session_logged_out_by_the_request_itself_is_not_renewed() {
    let authx = authx();
    let token = session_token(&authx, 300);
    // The handler logs the session out, as a logout route would, without
    // touching the cookies.
    let lines = set_cookies_with(
        &authx,
        ImplicitRefreshLayer::new(authx.clone()),
        with_cookie(Method::POST, "/anything", &token),
        |authx, claims| {
            let authx = authx.clone();
            std::thread::spawn(move || {
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(authx.revoke(&claims))
                    .unwrap()
            })
            .join()
            .unwrap();
            HeaderMap::new()
        },
    )
    .await;
    assert!(lines.is_empty(), "{lines:?}");
}

#[tokio::test]
async fn a_response_that_sets_the_cookie_itself_is_left_as_it_is() {
    let authx = authx();
    let token = session_token(&authx, 300);
    let lines = set_cookies_with(
        &authx,
        ImplicitRefreshLayer::new(authx.clone()),
        with_cookie(Method::POST, "/logout", &token),
        |authx, _| {
            let mut headers = HeaderMap::new();
            authx.unset_cookies(&mut headers);
            headers
        },
    )
    .await;
    assert!(
        lines
            .iter()
            .all(|l| l.contains("Max-Age=0") || l.contains("expires=")),
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("access_token_cookie="))
            .count(),
        1
    );
}

#[tokio::test]
async fn the_filters_work_as_documented_and_exclude_wins() {
    let authx = authx();
    let token = session_token(&authx, 300);
    let refreshes = |layer: ImplicitRefreshLayer, method: Method, path: &'static str| {
        let (authx, token) = (authx.clone(), token.clone());
        async move {
            renewed(&set_cookies(&authx, layer, with_cookie(method, path, &token)).await).is_some()
        }
    };
    let base = || ImplicitRefreshLayer::new(authx.clone());
    assert!(!refreshes(base().exclude_paths(["/logout"]), Method::GET, "/logout").await);
    assert!(refreshes(base().exclude_paths(["/logout"]), Method::GET, "/page").await);
    assert!(!refreshes(base().include_paths(["/page"]), Method::GET, "/other").await);
    assert!(refreshes(base().include_paths(["/page"]), Method::GET, "/page").await);
    assert!(
        !refreshes(
            base().exclude_methods([Method::POST]),
            Method::POST,
            "/page"
        )
        .await
    );
    assert!(!refreshes(base().include_methods([Method::GET]), Method::POST, "/page").await);
    assert!(refreshes(base().include_methods([Method::GET]), Method::GET, "/page").await);
    let both = base().include_paths(["/page"]).exclude_paths(["/page"]);
    assert!(!refreshes(both, Method::GET, "/page").await, "exclude wins");
}

#[tokio::test]
async fn no_renewal_past_the_sessions_absolute_lifetime_nor_beyond_it() {
    let authx = authx();
    let started = crate::support::now();
    let token_since = |login_ago: u64| token_since(&authx, started - login_ago);
    let layer = || ImplicitRefreshLayer::new(authx.clone()).max_session(Duration::from_secs(3600));
    // Logged in 2 hours ago: the session is over.
    let old = token_since(7200);
    assert!(
        set_cookies(&authx, layer(), with_cookie(Method::GET, "/", &old))
            .await
            .is_empty()
    );
    // Logged in 59 minutes ago: renewed, but only to the session's end.
    let late = token_since(3540);
    let new =
        renewed(&set_cookies(&authx, layer(), with_cookie(Method::GET, "/", &late)).await).unwrap();
    let claims: Claims = authx.verify_offline(&new, &Requirement::access()).unwrap();
    let end = (started - 3540 + 3600) as f64;
    assert!(
        claims.exp.as_secs_f64() <= end + 1.0,
        "{} > {end}",
        claims.exp.as_secs_f64()
    );
    // Without auth_time the session's age is unknown: not renewed.
    let unknown = authx
        .access_token("alice")
        .fam("s")
        .lifetime(Duration::from_secs(300))
        .issue()
        .unwrap();
    assert!(
        set_cookies(&authx, layer(), with_cookie(Method::GET, "/", &unknown))
            .await
            .is_empty()
    );
}

/// Issue 38, finding 7: a layer built with no lifetime of its own still
/// ends renewals, at the refresh token's lifetime after the login: a cookie
/// used every few minutes is not renewed forever, and a stolen one ages out.
#[tokio::test]
async fn by_default_renewals_end_at_the_refresh_tokens_lifetime() {
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .token_location([TokenLocation::Cookies])
            .refresh_token_lifetime(Duration::from_secs(3 * 3600)),
    )
    .unwrap();
    let started = crate::support::now();
    let token_since = |login_ago: u64| token_since(&authx, started - login_ago);
    let layer = || ImplicitRefreshLayer::new(authx.clone());
    let over = token_since(3 * 3600 + 60);
    let cookies = set_cookies(&authx, layer(), with_cookie(Method::GET, "/", &over)).await;
    assert!(cookies.is_empty(), "{cookies:?}");
    let within = token_since(3600);
    let cookies = set_cookies(&authx, layer(), with_cookie(Method::GET, "/", &within)).await;
    assert!(renewed(&cookies).is_some(), "{cookies:?}");
    // Without auth_time, not renewed either.
    let unknown = authx
        .access_token("alice")
        .fam("s")
        .lifetime(Duration::from_secs(300))
        .issue()
        .unwrap();
    let cookies = set_cookies(&authx, layer(), with_cookie(Method::GET, "/", &unknown)).await;
    assert!(cookies.is_empty(), "{cookies:?}");
}
