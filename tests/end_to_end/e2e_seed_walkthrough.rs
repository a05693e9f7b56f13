//! The seed's curl walkthrough, step by step, against every example that serves
//! the seed's API (`fresh_token` on hyper, `axum`), each started as a real
//! process on an ephemeral port.

use crate::support;

use http::StatusCode;
use serde_json::json;
use support::Server;

/// Runs each check against every example serving the seed's API.
macro_rules! against_each_example {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;

            #[tokio::test]
            async fn fresh_token() {
                super::$check(Server::start("fresh_token", &[]).await).await;
            }

            #[cfg(feature = "axum")]
            #[tokio::test]
            async fn axum() {
                super::$check(Server::start("axum", &[]).await).await;
            }
        }
    )*};
}

against_each_example!(
    the_seed_walkthrough_runs_unchanged,
    protected_reports_a_fresh_token_as_fresh,
    login_also_answers_a_refresh_token_that_refresh_accepts,
    refresh_tokens_do_not_open_access_routes,
    wrong_credentials_are_the_seeds_401,
    bad_login_bodies_get_a_clear_4xx,
    unknown_routes_and_methods_answer_like_fastapi,
    a_second_factor_opens_the_mfa_route_and_its_lack_gets_rfc_9470s_challenge
);

/// Beyond the seed: a login with the demo second factor issues tokens with
/// `amr: ["pwd", "otp"]`; `/mfa-required` takes only those (and their
/// refreshed successors), and answers others with RFC 9470's challenge.
async fn a_second_factor_opens_the_mfa_route_and_its_lack_gets_rfc_9470s_challenge(server: Server) {
    let login = |body: &'static str| {
        server
            .post("/login")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let plain = login(r#"{"username":"user1","password":"password1"}"#).await;
    let plain = plain.json()["fresh_token"].as_str().unwrap().to_owned();
    assert!(support::payload_of(&plain).get("amr").is_none());
    let res = server.get("/mfa-required").bearer(&plain).send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(
        res.challenge()
            .contains("error=\"insufficient_user_authentication\""),
        "{}",
        res.challenge()
    );

    let strong = login(r#"{"username":"user1","password":"password1","otp":"000000"}"#).await;
    assert_eq!(strong.status, StatusCode::OK, "{}", strong.text());
    let fresh = strong.json()["fresh_token"].as_str().unwrap().to_owned();
    let refresh = strong.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(support::payload_of(&fresh)["amr"], json!(["pwd", "otp"]));
    let res = server.get("/mfa-required").bearer(&fresh).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json()["message"],
        "You have access to this MFA-required resource"
    );
    // Refreshed either way, the session keeps how the user authenticated.
    for token in [&fresh, &refresh] {
        let res = server.post("/refresh").bearer(token).send().await;
        let access = res.json()["access_token"].as_str().unwrap().to_owned();
        let res = server.get("/mfa-required").bearer(&access).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }
    // A wrong code is a failed login.
    let wrong = login(r#"{"username":"user1","password":"password1","otp":"123456"}"#).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.detail(), "Invalid one-time code");
}

async fn the_seed_walkthrough_runs_unchanged(server: Server) {
    // The public root lists the endpoints, word for word.
    let root = server.get("/").send().await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(
        root.json(),
        json!({
            "message": "Welcome to AuthX Fresh Token Example",
            "endpoints": {
                "login": "POST /login - Get a fresh token",
                "refresh": "POST /refresh - Get a non-fresh token using a fresh token",
                "protected": "GET /protected - Access protected resource (requires any token)",
                "fresh-required": "GET /fresh-required - Access protected resource (requires fresh token)",
            }
        })
    );

    // Step 3: login gives a fresh token.
    let login = server
        .post("/login")
        .header("Content-Type", "application/json")
        .body(r#"{"username":"user1","password":"password1"}"#)
        .send()
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.headers["content-type"], "application/json");
    let body = login.json();
    assert_eq!(body["token_type"], "bearer");
    let fresh = body["fresh_token"]
        .as_str()
        .expect("fresh_token")
        .to_owned();
    assert!(fresh.starts_with("eyJ"), "a JWT: {fresh}");

    // Step 4: the fresh token opens the fresh-required route.
    let sensitive = server.get("/fresh-required").bearer(&fresh).send().await;
    assert_eq!(sensitive.status, StatusCode::OK);
    assert_eq!(
        sensitive.json(),
        json!({
            "message": "You have access to this fresh-required resource",
            "username": "user1",
            "email": "user1@example.com",
        })
    );

    // Step 5: refresh with the fresh token gives a non-fresh one.
    let refreshed = server.post("/refresh").bearer(&fresh).send().await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let body = refreshed.json();
    assert_eq!(body["token_type"], "bearer");
    let non_fresh = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();

    // Step 6: the non-fresh token works for standard endpoints...
    let standard = server.get("/protected").bearer(&non_fresh).send().await;
    assert_eq!(standard.status, StatusCode::OK);
    assert_eq!(
        standard.json(),
        json!({
            "message": "You have access to this protected resource",
            "username": "user1",
            "email": "user1@example.com",
            "fresh": false,
        })
    );

    // ...and is refused by the fresh-required one, with the seed's detail.
    let refused = server
        .get("/fresh-required")
        .bearer(&non_fresh)
        .send()
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json(), json!({"detail": "Fresh token required"}));
}

async fn protected_reports_a_fresh_token_as_fresh(server: Server) {
    let (fresh, _) = server.login().await;
    let res = server.get("/protected").bearer(&fresh).send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["fresh"], true);
}

async fn login_also_answers_a_refresh_token_that_refresh_accepts(server: Server) {
    let (_, refresh) = server.login().await;
    let res = server.post("/refresh").bearer(&refresh).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let access = res.json()["access_token"].as_str().unwrap().to_owned();
    let protected = server.get("/protected").bearer(&access).send().await;
    assert_eq!(protected.json()["fresh"], false);
}

async fn refresh_tokens_do_not_open_access_routes(server: Server) {
    let (_, refresh) = server.login().await;
    for path in ["/protected", "/fresh-required"] {
        let res = server.get(path).bearer(&refresh).send().await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            res.detail(),
            "'access' token required, 'refresh' token received"
        );
    }
}

async fn wrong_credentials_are_the_seeds_401(server: Server) {
    for body in [
        r#"{"username":"user1","password":"nope"}"#,
        r#"{"username":"mallory","password":"password1"}"#,
    ] {
        let res = server
            .post("/login")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.json(),
            json!({"detail": "Invalid username or password"})
        );
    }
}

async fn bad_login_bodies_get_a_clear_4xx(server: Server) {
    let cases: [(&str, StatusCode); 4] = [
        ("not json", StatusCode::BAD_REQUEST),
        ("", StatusCode::BAD_REQUEST),
        (r#"{"username":"user1"}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (
            r#"{"username":1,"password":"password1"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (body, status) in cases {
        let res = server
            .post("/login")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        assert_eq!(res.status, status, "{body:?}");
        assert!(!res.detail().is_empty(), "{body:?}: {}", res.text());
    }
    let huge = format!(r#"{{"username":"{}","password":"x"}}"#, "a".repeat(1 << 20));
    let res = server.post("/login").body(huge).send().await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
}

async fn unknown_routes_and_methods_answer_like_fastapi(server: Server) {
    let res = server.get("/nope").send().await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.json(), json!({"detail": "Not Found"}));
    let res = server
        .request(http::Method::DELETE, "/protected")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    // axum also lists HEAD, which it answers for GET routes.
    let allow = res.headers["allow"].to_str().unwrap();
    assert!(allow == "GET" || allow == "GET,HEAD", "{allow}");
    assert_eq!(res.json(), json!({"detail": "Method Not Allowed"}));
}
