//! axum over real TCP: the extractors, every layer placement, optional auth, the
//! missing-layer error, and the cookie + CSRF flow of `dev/examples/axum.rs`.
#![cfg(feature = "axum")]

use crate::support;

use axum::Router;
use axum::routing::{get, post};
use http::StatusCode;
use serde::Deserialize;
use support::{Reply, SECRET, Server};
use tower_authx::{AuthX, AuthXConfig, Claims, RequireAuthLayer, RequireFreshLayer};

fn authx() -> AuthX {
    AuthX::new(AuthXConfig::from_secret(SECRET).unwrap()).unwrap()
}

/// Serves `router` on an ephemeral loopback port for the rest of the test.
async fn serve(router: Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server::at(addr)
}

async fn whoami(claims: Claims) -> String {
    claims.sub
}

async fn maybe(claims: Option<Claims>) -> String {
    claims.map_or_else(|| "anonymous".to_owned(), |c| c.sub)
}

#[tokio::test]
async fn router_layer_guards_every_route() {
    let authx = authx();
    let server = serve(
        Router::new()
            .route("/a", get(whoami))
            .route("/b", post(whoami))
            .layer(RequireAuthLayer::new(authx.clone())),
    )
    .await;
    let token = authx.access_token("alice").issue().unwrap();
    assert_eq!(server.get("/a").bearer(&token).send().await.text(), "alice");
    assert_eq!(
        server.post("/b").bearer(&token).send().await.text(),
        "alice"
    );
    let refused = server.get("/a").send().await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.challenge(), "Bearer");
    // Router::layer also wraps the fallback: unknown paths are refused first.
    assert_eq!(
        server.get("/nope").send().await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn route_layer_guards_everything_but_login() {
    let authx = authx();
    let server = serve(
        Router::new()
            .route("/me", get(whoami))
            .route_layer(RequireAuthLayer::new(authx.clone()))
            // Added after route_layer: public.
            .route("/login", post(|| async { "welcome" })),
    )
    .await;
    assert_eq!(server.post("/login").send().await.text(), "welcome");
    assert_eq!(
        server.get("/me").send().await.status,
        StatusCode::UNAUTHORIZED
    );
    let token = authx.access_token("bob").fresh(true).issue().unwrap();
    assert_eq!(server.get("/me").bearer(&token).send().await.text(), "bob");
    // route_layer leaves unknown paths a 404, not a 401.
    assert_eq!(
        server.get("/nope").send().await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn per_route_layer_requires_fresh_on_one_route_only() {
    let authx = authx();
    let server = serve(
        Router::new()
            .route("/profile", get(whoami))
            .route(
                "/password",
                post(whoami).layer(RequireFreshLayer::new(authx.clone())),
            )
            .route_layer(RequireAuthLayer::new(authx.clone())),
    )
    .await;
    let stale = authx.access_token("carol").issue().unwrap();
    let fresh = authx.access_token("carol").fresh(true).issue().unwrap();
    assert_eq!(
        server.get("/profile").bearer(&stale).send().await.text(),
        "carol"
    );
    let refused = server.post("/password").bearer(&stale).send().await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.detail(), "Fresh token required");
    assert!(
        refused
            .challenge()
            .contains("error=\"insufficient_user_authentication\"")
    );
    assert_eq!(
        server.post("/password").bearer(&fresh).send().await.text(),
        "carol"
    );
}

#[tokio::test]
async fn optional_claims_are_none_without_a_token_and_bad_tokens_still_fail() {
    let authx = authx();
    let server = serve(
        Router::new()
            .route("/", get(maybe))
            .layer(tower_authx::OptionalAuthLayer::new(authx.clone())),
    )
    .await;
    assert_eq!(server.get("/").send().await.text(), "anonymous");
    let token = authx.access_token("dave").issue().unwrap();
    assert_eq!(server.get("/").bearer(&token).send().await.text(), "dave");
    let bad = server.get("/").bearer("not.a.token").send().await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.challenge().contains("invalid_token"));
    let refresh = authx.refresh_token("dave").issue().unwrap();
    assert_eq!(
        server.get("/").bearer(&refresh).send().await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn extractors_without_a_guard_fail_loudly_naming_the_fix() {
    let server = serve(
        Router::new()
            .route("/required", get(whoami))
            .route("/optional", get(maybe)),
    )
    .await;
    for (path, extractor, layer) in [
        ("/required", "Claims", "RequireAuthLayer::new"),
        ("/optional", "Option<Claims>", "OptionalAuthLayer::new"),
    ] {
        let res = server.get(path).send().await;
        assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        let text = res.text();
        assert!(
            text.contains(&format!("the {extractor} extractor")),
            "{text}"
        );
        assert!(text.contains(layer), "{text}");
        assert!(text.contains("route_layer"), "{text}");
    }
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
struct Tenant {
    tenant: String,
}

#[tokio::test]
async fn own_claims_types_extract_and_a_mismatch_names_the_type() {
    let authx = authx();
    let server = serve(
        Router::new()
            .route(
                "/tenant",
                get(|claims: Claims<Tenant>| async move { claims.extra.tenant }),
            )
            .route_layer(RequireAuthLayer::new(authx.clone()).with_claims::<Tenant>())
            // Guarded with the default claims type, extracted with Tenant: a bug.
            .route(
                "/mismatch",
                get(|claims: Claims<Tenant>| async move { claims.extra.tenant })
                    .layer(RequireAuthLayer::new(authx.clone())),
            ),
    )
    .await;
    let token = authx
        .access_token("erin")
        .extra(&Tenant {
            tenant: "acme".into(),
        })
        .issue()
        .unwrap();
    assert_eq!(
        server.get("/tenant").bearer(&token).send().await.text(),
        "acme"
    );
    let res = server.get("/mismatch").bearer(&token).send().await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.text().contains("Tenant"), "{}", res.text());
    assert!(res.text().contains("with_claims"), "{}", res.text());
}

#[tokio::test]
async fn cors_preflights_pass_the_guard_to_a_cors_layer_only() {
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .header_name(http::HeaderName::from_static("x-api-token"))
            .danger_pass_cors_preflight(),
    )
    .unwrap();
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(http::HeaderValue::from_static("https://app.example"))
        .allow_methods([http::Method::GET]);
    let server = serve(
        Router::new()
            .route("/a", get(whoami))
            .layer(cors)
            .layer(RequireAuthLayer::new(authx.clone()))
            // A route handler directly inside the guard, answering any method.
            .route(
                "/handler",
                axum::routing::any(|| async { "a handler ran" })
                    .layer(RequireAuthLayer::new(authx)),
            ),
    )
    .await;
    let preflight = |path: &'static str| {
        server
            .request(http::Method::OPTIONS, path)
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
    };
    let res = preflight("/a").send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.headers["access-control-allow-origin"],
        "https://app.example"
    );
    // Only a CORS layer's answer goes back: a handler's is replaced by the refusal.
    let res = preflight("/handler").send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(!res.text().contains("a handler ran"));
    // A credential in the configured header makes it no preflight: guarded.
    let res = preflight("/a")
        .header("x-api-token", "Bearer x")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(!res.headers.contains_key("access-control-allow-origin"));
    // A plain OPTIONS is not a preflight.
    let res = server.request(http::Method::OPTIONS, "/a").send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

/// The `name=value` of each `Set-Cookie` line, and the lines themselves.
pub(crate) fn cookies(reply: &Reply) -> Vec<(String, String, String)> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let line = v.to_str().unwrap().to_owned();
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), value.to_owned(), line.clone())
        })
        .collect()
}

pub(crate) async fn cookie_login(server: &Server) -> Vec<(String, String, String)> {
    let res = server
        .post("/login/cookie")
        .header("content-type", "application/json")
        .body(r#"{"username":"user1","password":"password1"}"#)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["message"], "Login successful");
    cookies(&res)
}

pub(crate) fn value<'a>(jar: &'a [(String, String, String)], name: &str) -> &'a str {
    &jar.iter().find(|(n, _, _)| n == name).unwrap().1
}

fn change_password(server: &Server, password: &str) -> support::Call {
    server
        .post("/account/password")
        .header("content-type", "application/json")
        .body(format!(r#"{{"new_password":"{password}"}}"#))
}

#[tokio::test]
async fn cookie_login_sets_the_authx_cookies() {
    let server = Server::start("axum", &[]).await;
    let jar = cookie_login(&server).await;
    let names: Vec<&str> = jar.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "access_token_cookie",
            "csrf_access_token",
            "refresh_token_cookie",
            "csrf_refresh_token"
        ]
    );
    for (name, value, line) in &jar {
        assert!(!value.is_empty(), "{line}");
        assert!(line.contains("; Path=/"), "{line}");
        assert!(line.contains("; SameSite=Lax"), "{line}");
        assert!(line.contains("; Secure"), "{line}");
        assert_eq!(
            line.contains("; HttpOnly"),
            !name.starts_with("csrf_"),
            "{line}"
        );
    }
    let dev = Server::start("axum", &[("JWT_COOKIE_SECURE", "false")]).await;
    for (_, _, line) in cookie_login(&dev).await {
        assert!(!line.contains("Secure"), "{line}");
    }
}

#[tokio::test]
async fn cookie_and_csrf_double_submit_end_to_end() {
    let server = Server::start("axum", &[]).await;
    let jar = cookie_login(&server).await;
    let cookie = format!(
        "access_token_cookie={}; other=1",
        value(&jar, "access_token_cookie")
    );
    let csrf = value(&jar, "csrf_access_token");

    // The cookie without the CSRF header: a CSRF failure, not "missing token".
    let res = change_password(&server, "new-secret")
        .header("cookie", &cookie)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.detail(), "Missing CSRF token in 'X-CSRF-TOKEN' header.");

    // A wrong CSRF value (another login's).
    let other = cookie_login(&server).await;
    let res = change_password(&server, "new-secret")
        .header("cookie", &cookie)
        .header("x-csrf-token", value(&other, "csrf_access_token"))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.detail(), "CSRF double submit does not match");

    // The CSRF cookie sent back as a cookie only proves nothing.
    let res = change_password(&server, "new-secret")
        .header("cookie", format!("{cookie}; csrf_access_token={csrf}"))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // Double submit: the password changes.
    let res = change_password(&server, "new-secret")
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["username"], "user1");
    let old = server
        .post("/login")
        .header("content-type", "application/json")
        .body(r#"{"username":"user1","password":"password1"}"#)
        .send()
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = server
        .post("/login")
        .header("content-type", "application/json")
        .body(r#"{"username":"user1","password":"new-secret"}"#)
        .send()
        .await;
    assert_eq!(new.status, StatusCode::OK);
}

#[tokio::test]
async fn password_change_takes_the_header_without_csrf_and_wants_fresh() {
    let server = Server::start("axum", &[]).await;
    // A client that sends no cookies hears of the header only (the seed's
    // wording); one that sends cookies, of both places.
    let res = change_password(&server, "x").send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.detail(), "Missing 'Bearer' in 'Authorization' header.");
    let res = change_password(&server, "x")
        .header("cookie", "theme=dark")
        .send()
        .await;
    assert_eq!(
        res.detail(),
        "Missing 'Bearer' in 'Authorization' header. Missing cookie 'access_token_cookie'."
    );
    let res = server.get("/protected").send().await;
    assert_eq!(res.detail(), "Missing 'Bearer' in 'Authorization' header.");

    // A refresh token in the access cookie is refused with CSRF satisfied.
    let jar = cookie_login(&server).await;
    let res = change_password(&server, "x")
        .header(
            "cookie",
            format!(
                "access_token_cookie={}",
                value(&jar, "refresh_token_cookie")
            ),
        )
        .header("x-csrf-token", value(&jar, "csrf_refresh_token"))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.detail(),
        "'access' token required, 'refresh' token received"
    );

    let (fresh, refresh) = server.login().await;
    let stale = server.post("/refresh").bearer(&refresh).send().await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = change_password(&server, "x").bearer(&stale).send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.detail(), "Fresh token required");

    let res = change_password(&server, "another")
        .bearer(&fresh)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

/// The `Cookie` line a browser would send back.
fn cookie_header(jar: &[(String, String, String)]) -> String {
    jar.iter()
        .map(|(name, value, _)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn after_a_cookie_login_every_guarded_route_takes_the_cookie() {
    let server = Server::start("axum", &[("JWT_COOKIE_SECURE", "false")]).await;
    let jar = cookie_login(&server).await;
    let cookie = cookie_header(&jar);
    for path in ["/protected", "/fresh-required"] {
        let res = server.get(path).header("cookie", &cookie).send().await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text());
        assert_eq!(res.json()["username"], "user1");
    }
    // POST with cookies needs the double submit.
    let res = server
        .post("/refresh")
        .header("cookie", &cookie)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = server
        .post("/refresh")
        .header("cookie", &cookie)
        .header("x-csrf-token", value(&jar, "csrf_access_token"))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // Logout ends the session and clears the cookies.
    let res = server
        .post("/logout")
        .header("cookie", &cookie)
        .header("x-csrf-token", value(&jar, "csrf_access_token"))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.headers.get_all("set-cookie").iter().count(), 4);
    let res = server
        .get("/protected")
        .header("cookie", &cookie)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_axum_example_logs_out_rotates_and_detects_reuse() {
    let server = Server::start("axum", &[]).await;
    let (access, refresh) = server.login().await;
    let res = server.post("/refresh").bearer(&refresh).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.headers["cache-control"], "no-store");
    let rotated = res.json();
    let (new_access, new_refresh) = (
        rotated["access_token"].as_str().unwrap().to_owned(),
        rotated["refresh_token"].as_str().unwrap().to_owned(),
    );
    assert_ne!(new_refresh, refresh);
    // The old refresh token again: reuse, and the whole session is over.
    let res = server.post("/refresh").bearer(&refresh).send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.detail().contains("reuse"), "{}", res.detail());
    for token in [&access, &new_access] {
        let res = server.get("/protected").bearer(token).send().await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = server.post("/refresh").bearer(&new_refresh).send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // A logout ends a session: its access and refresh tokens alike.
    let (access, refresh) = server.login().await;
    let res = server.post("/logout").bearer(&access).send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.headers.get("set-cookie").is_none());
    assert_eq!(
        server.get("/protected").bearer(&access).send().await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.post("/refresh").bearer(&refresh).send().await.status,
        StatusCode::UNAUTHORIZED
    );
}
