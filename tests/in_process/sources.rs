//! Token locations in process: header, cookie and query, their order, the CSRF
//! double submit and its settings, and the gRPC shape of a refusal.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{
    AuthX, AuthXConfig, Claims, CookieConfig, RequireAuthLayer, Requirement, SameSite,
    TokenLocation,
};

const SECRET: &[u8] = b"source-tests-secret-of-32-bytes!";

fn authx_with(config: impl FnOnce(AuthXConfig) -> AuthXConfig) -> AuthX {
    AuthX::new(config(AuthXConfig::from_secret(SECRET).unwrap())).unwrap()
}

fn all_locations(c: AuthXConfig) -> AuthXConfig {
    c.token_location([
        TokenLocation::Headers,
        TokenLocation::Cookies,
        TokenLocation::Query,
    ])
}

struct Outcome {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    called: usize,
}

/// Sends `req` through `layer` around a counting inner service answering the subject.
async fn send(layer: RequireAuthLayer, req: Request<Full<Bytes>>) -> Outcome {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        let sub = req.extensions().get::<Claims>().map(|c| c.sub.clone());
        async move { Ok::<_, Infallible>(Response::new(Full::from(sub.unwrap_or_default()))) }
    });
    let res = layer.layer(inner).oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Outcome {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        called: calls.load(Ordering::SeqCst),
    }
}

fn req(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::default()).unwrap()
}

fn detail(outcome: &Outcome) -> String {
    let json: serde_json::Value = serde_json::from_str(&outcome.body).unwrap();
    json["detail"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_default_reads_the_header_only() {
    let authx = authx_with(|c| c);
    let token = authx.access_token("u").issue().unwrap();
    let cookie = format!("access_token_cookie={token}");
    let out = send(
        RequireAuthLayer::new(authx.clone()),
        req(
            Method::GET,
            &format!("/?token={token}"),
            &[("cookie", &cookie)],
        ),
    )
    .await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert_eq!(out.called, 0);
    assert_eq!(detail(&out), "Missing 'Bearer' in 'Authorization' header.");
}

#[tokio::test]
async fn each_location_works_and_the_first_one_present_decides() {
    let authx = authx_with(all_locations);
    let layer = RequireAuthLayer::new(authx.clone());
    let header = authx.access_token("from-header").issue().unwrap();
    let cookie = authx.access_token("from-cookie").issue().unwrap();
    let query = authx.access_token("from-query").issue().unwrap();
    let bearer = format!("Bearer {header}");
    let cookie_line = format!("theme=dark; access_token_cookie={cookie}");
    let uri = format!("/x?a=1&token={query}&b=2");

    let cases = [
        (
            vec![
                ("authorization", bearer.as_str()),
                ("cookie", cookie_line.as_str()),
            ],
            uri.as_str(),
            "from-header",
        ),
        (
            vec![("cookie", cookie_line.as_str())],
            uri.as_str(),
            "from-cookie",
        ),
        (vec![], uri.as_str(), "from-query"),
    ];
    for (headers, uri, expected) in cases {
        let out = send(layer.clone(), req(Method::GET, uri, &headers)).await;
        assert_eq!(out.status, StatusCode::OK, "{expected}: {}", out.body);
        assert_eq!(out.body, expected);
    }

    // A malformed header is refused; it does not fall through to the cookie.
    let out = send(
        layer.clone(),
        req(
            Method::GET,
            "/",
            &[("authorization", "Bearer a b"), ("cookie", &cookie_line)],
        ),
    )
    .await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);

    // "No token" names the places this request could have used: all three
    // for a request with cookies and a query...
    let out = send(
        layer.clone(),
        req(Method::GET, "/?page=2", &[("cookie", "theme=dark")]),
    )
    .await;
    assert_eq!(
        detail(&out),
        "Missing 'Bearer' in 'Authorization' header. Missing cookie 'access_token_cookie'. \
         Missing 'token' in query parameters."
    );
    // ...the header alone for a client that sends neither (the seed's wording).
    let out = send(layer, req(Method::GET, "/", &[])).await;
    assert_eq!(detail(&out), "Missing 'Bearer' in 'Authorization' header.");
}

#[tokio::test]
async fn query_values_are_decoded_and_hostile_ones_refused() {
    let authx = authx_with(|c| c.token_location([TokenLocation::Query]).query_param("jwt"));
    let layer = RequireAuthLayer::new(authx.clone());
    let token = authx.access_token("q").issue().unwrap();
    let encoded = token.replace('.', "%2E");
    let out = send(
        layer.clone(),
        req(Method::GET, &format!("/?jwt={encoded}"), &[]),
    )
    .await;
    assert_eq!(out.body, "q");

    let long = "a".repeat(20_000);
    let cases = [
        (
            format!("/?jwt={token}&jwt={token}"),
            StatusCode::BAD_REQUEST,
        ),
        ("/?jwt=%zz".to_owned(), StatusCode::BAD_REQUEST),
        ("/?jwt=%4".to_owned(), StatusCode::BAD_REQUEST),
        ("/?jwt=a%20b".to_owned(), StatusCode::BAD_REQUEST),
        ("/?jwt=%FF%FE".to_owned(), StatusCode::BAD_REQUEST),
        (format!("/?jwt={long}"), StatusCode::UNAUTHORIZED),
        ("/?jwt=".to_owned(), StatusCode::UNAUTHORIZED),
        ("/?jwt=a.b.c".to_owned(), StatusCode::UNAUTHORIZED),
        (format!("/?token={token}"), StatusCode::UNAUTHORIZED),
    ];
    for (uri, status) in cases {
        let out = send(layer.clone(), req(Method::GET, &uri, &[])).await;
        assert_eq!(out.status, status, "{uri}: {}", out.body);
        assert_eq!(out.called, 0, "{uri}");
        assert!(!out.body.contains(&token));
    }
}

#[tokio::test]
async fn cookies_need_csrf_on_unsafe_methods_only() {
    let authx = authx_with(|c| c.token_location([TokenLocation::Cookies]));
    let layer = RequireAuthLayer::new(authx.clone());
    let token = authx.access_token("c").issue().unwrap();
    let mut set = HeaderMap::new();
    authx.set_access_cookies(&token, &mut set).unwrap();
    let csrf_line = set
        .get_all("set-cookie")
        .iter()
        .nth(1)
        .unwrap()
        .to_str()
        .unwrap();
    let csrf = csrf_line
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let cookie = format!("access_token_cookie={token}");

    for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
        let out = send(
            layer.clone(),
            req(method.clone(), "/", &[("cookie", &cookie)]),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK, "{method}");
    }
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let out = send(
            layer.clone(),
            req(method.clone(), "/", &[("cookie", &cookie)]),
        )
        .await;
        assert_eq!(out.status, StatusCode::UNAUTHORIZED, "{method}");
        assert_eq!(detail(&out), "Missing CSRF token in 'X-CSRF-TOKEN' header.");
        let out = send(
            layer.clone(),
            req(
                method.clone(),
                "/",
                &[("cookie", &cookie), ("x-csrf-token", "")],
            ),
        )
        .await;
        assert_eq!(detail(&out), "Missing CSRF token in 'X-CSRF-TOKEN' header.");
        let out = send(
            layer.clone(),
            req(
                method.clone(),
                "/",
                &[("cookie", &cookie), ("x-csrf-token", &csrf[1..])],
            ),
        )
        .await;
        assert_eq!(detail(&out), "CSRF double submit does not match");
        assert_eq!(out.called, 0);
        let out = send(
            layer.clone(),
            req(
                method.clone(),
                "/",
                &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            ),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK, "{method}");
    }

    // A token without a csrf claim never passes the double submit.
    let forged_free = common_token_without_csrf(&authx);
    let out = send(
        layer,
        req(
            Method::POST,
            "/",
            &[
                ("cookie", &format!("access_token_cookie={forged_free}")),
                ("x-csrf-token", "x"),
            ],
        ),
    )
    .await;
    assert_eq!(detail(&out), "CSRF double submit does not match");
}

/// A valid token of ours, re-signed without its `csrf` claim.
fn common_token_without_csrf(authx: &AuthX) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = authx.access_token("c").issue().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    claims.as_object_mut().unwrap().remove("csrf");
    let message = format!(
        "{}.{}",
        b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    );
    let sig = b64.encode(crate::support::hs256(SECRET, message.as_bytes()));
    format!("{message}.{sig}")
}

#[tokio::test]
async fn csrf_header_methods_and_protection_are_configurable() {
    let authx = authx_with(|c| {
        c.token_location([TokenLocation::Cookies]).cookies(
            CookieConfig::default()
                .access_cookie_name("sid")
                .csrf_header("x-xsrf".parse().unwrap())
                .csrf_methods([Method::POST]),
        )
    });
    let token = authx.access_token("c").issue().unwrap();
    let cookie = format!("sid={token}");
    let layer = RequireAuthLayer::new(authx);
    let out = send(
        layer.clone(),
        req(Method::DELETE, "/", &[("cookie", &cookie)]),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    let out = send(layer, req(Method::POST, "/", &[("cookie", &cookie)])).await;
    assert_eq!(detail(&out), "Missing CSRF token in 'X-XSRF' header.");

    let unprotected = authx_with(|c| {
        c.token_location([TokenLocation::Cookies])
            .cookies(CookieConfig::default().danger_without_csrf_protection())
    });
    let token = unprotected.access_token("c").issue().unwrap();
    let out = send(
        RequireAuthLayer::new(unprotected),
        req(
            Method::POST,
            "/",
            &[("cookie", &format!("access_token_cookie={token}"))],
        ),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_routes_read_the_refresh_cookie() {
    let authx = authx_with(|c| c.token_location([TokenLocation::Cookies]));
    let refresh = authx.refresh_token("r").issue().unwrap();
    let access = authx.access_token("a").issue().unwrap();
    let both = format!("access_token_cookie={access}; refresh_token_cookie={refresh}");
    let out = send(
        RequireAuthLayer::refresh(authx.clone()),
        req(Method::GET, "/", &[("cookie", &both)]),
    )
    .await;
    assert_eq!(out.body, "r");
    let out = send(
        RequireAuthLayer::new(authx),
        req(Method::GET, "/", &[("cookie", &both)]),
    )
    .await;
    assert_eq!(out.body, "a");
}

#[test]
fn cookie_helpers_write_authx_attributes_and_refuse_foreign_tokens() {
    let authx = authx_with(|c| {
        c.cookies(
            CookieConfig::default()
                .same_site(SameSite::Strict)
                .path("/api")
                .max_age(std::time::Duration::from_secs(900)),
        )
    });
    let mut headers = HeaderMap::new();
    let access = authx.access_token("u").fresh(true).issue().unwrap();
    authx.set_access_cookies(&access, &mut headers).unwrap();
    authx.unset_cookies(&mut headers);
    let lines: Vec<&str> = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(
        lines[0],
        format!(
            "access_token_cookie={access}; Path=/api; Max-Age=900; Secure; HttpOnly; SameSite=Strict"
        )
    );
    assert!(lines[1].starts_with("csrf_access_token="));
    assert!(!lines[1].contains("HttpOnly"));
    assert!(lines[2..].iter().all(|l| l.contains("Max-Age=0")));

    // Only our own tokens, of the right type, go into cookies.
    let refresh = authx.refresh_token("u").issue().unwrap();
    assert!(authx.set_access_cookies(&refresh, &mut headers).is_err());
    assert!(authx.set_access_cookies("a.b.c", &mut headers).is_err());
    assert!(
        AuthX::new(
            AuthXConfig::from_secret(SECRET)
                .unwrap()
                .cookies(CookieConfig::default().domain("bad;domain"))
        )
        .is_err()
    );
    assert!(AuthX::new(AuthXConfig::from_secret(SECRET).unwrap().token_location([])).is_err());
}

#[tokio::test]
async fn grpc_requests_are_refused_the_grpc_way() {
    let authx = authx_with(|c| c);
    let grpc = |token: Option<&str>| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("content-type", "application/grpc+proto"),
            ("te", "trailers"),
        ];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        req(Method::POST, "/helloworld.Greeter/SayHello", &headers)
    };
    let out = send(RequireAuthLayer::new(authx.clone()), grpc(None)).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.headers["content-type"], "application/grpc");
    assert_eq!(out.headers["grpc-status"], "16");
    assert_eq!(
        out.headers["grpc-message"],
        "Missing 'Bearer' in 'Authorization' header."
    );
    assert!(out.body.is_empty());
    assert_eq!(out.called, 0);

    let web = req(
        Method::POST,
        "/helloworld.Greeter/SayHello",
        &[("content-type", "application/grpc-web+proto")],
    );
    let out = send(RequireAuthLayer::new(authx.clone()), web).await;
    assert_eq!(out.headers["content-type"], "application/grpc-web");
    assert_eq!(out.headers["grpc-status"], "16");

    let scoped = authx.access_token("u").scopes(["read"]).issue().unwrap();
    let out = send(
        authx
            .guard(Requirement::access().all_scopes(["write"]))
            .unwrap(),
        grpc(Some(&scoped)),
    )
    .await;
    assert_eq!(out.headers["grpc-status"], "7");
    assert_eq!(
        out.headers["grpc-message"],
        "Missing required scopes: ['write']. Provided: ['read']"
    );
}

/// Cookie settings mean what they say or are refused: `SameSite::None` is
/// sent as `SameSite=None` and needs `Secure`; an empty CSRF method list
/// would turn the protection off unseen.
#[test]
fn cookie_settings_that_would_mean_something_else_are_refused() {
    let with = |cookies: CookieConfig| {
        AuthX::new(AuthXConfig::from_secret(SECRET).unwrap().cookies(cookies))
    };
    let authx = with(CookieConfig::default().same_site(SameSite::None)).unwrap();
    let mut headers = HeaderMap::new();
    let access = authx.access_token("u").fresh(true).issue().unwrap();
    authx.set_access_cookies(&access, &mut headers).unwrap();
    for line in headers.get_all("set-cookie") {
        let line = line.to_str().unwrap();
        assert!(
            line.ends_with("; Secure; HttpOnly; SameSite=None")
                || line.ends_with("; Secure; SameSite=None"),
            "{line}"
        );
    }
    assert!(
        with(
            CookieConfig::default()
                .same_site(SameSite::None)
                .danger_insecure()
        )
        .is_err()
    );
    assert!(with(CookieConfig::default().csrf_methods([])).is_err());
    assert!(
        with(
            CookieConfig::default()
                .csrf_methods([])
                .danger_without_csrf_protection()
        )
        .is_ok()
    );
}

/// A memory store of capacity 0 holds one entry, as the replay store does:
/// a logout is not refused by a store that can hold nothing.
#[tokio::test]
async fn a_zero_capacity_memory_store_still_takes_a_logout() {
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .revocation_store(tower_authx::MemoryStore::with_capacity(0)),
    )
    .unwrap();
    let token = authx.access_token("u").fresh(true).issue().unwrap();
    let claims: tower_authx::Claims = authx
        .verify(&token, &tower_authx::Requirement::access())
        .await
        .unwrap();
    authx.revoke(&claims).await.unwrap();
    assert!(authx.check_revocation(&claims).await.is_err());
}
