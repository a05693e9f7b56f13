//! Every rejection of the core, over real TCP against `examples/fresh_token.rs`:
//! status, challenge, detail, and no token echoed back.

use crate::support;

use http::StatusCode;
use support::{HS256, SECRET, Server, forge, now};

/// The exact outcome of a refused request.
struct Expect {
    status: StatusCode,
    challenge: &'static str,
    detail: &'static str,
}

const MISSING: Expect = Expect {
    status: StatusCode::UNAUTHORIZED,
    challenge: "Bearer",
    detail: "Missing 'Bearer' in 'Authorization' header.",
};

fn invalid(detail: &'static str) -> Expect {
    Expect {
        status: StatusCode::UNAUTHORIZED,
        challenge: "invalid_token",
        detail,
    }
}

async fn assert_refused(server: &Server, path: &str, token: &str, expect: Expect) {
    let res = server.get(path).bearer(token).send().await;
    check(&res, token, &expect);
}

fn check(res: &support::Reply, token: &str, expect: &Expect) {
    assert_eq!(res.status, expect.status, "{}", res.text());
    assert_eq!(res.headers["content-type"], "application/json");
    let challenge = res.challenge();
    if expect.challenge == "Bearer" {
        assert_eq!(challenge, "Bearer");
    } else {
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(&format!("error=\"{}\"", expect.challenge)),
            "{challenge}"
        );
    }
    assert!(
        res.detail().starts_with(expect.detail),
        "detail {:?} vs {:?}",
        res.detail(),
        expect.detail
    );
    if token.len() > 8 {
        let everything = format!("{:?}{}", res.headers, res.text());
        assert!(!everything.contains(token), "token echoed back");
        let signature = token.rsplit('.').next().unwrap_or(token);
        assert!(
            signature.len() < 16 || !everything.contains(signature),
            "signature echoed back"
        );
    }
}

/// GET /protected with this exact `Authorization` value.
async fn protected_with(server: &Server, value: impl AsRef<[u8]>) -> support::Reply {
    server
        .get("/protected")
        .header("authorization", value)
        .send()
        .await
}

fn claims(extra: &str) -> String {
    let t = now();
    format!(
        r#"{{"sub":"user1","jti":"j","type":"access","fresh":false,"iat":{t},"exp":{}{extra}}}"#,
        t + 600
    )
}

#[tokio::test]
async fn no_credential_is_401_with_a_bare_bearer_challenge() {
    let server = Server::start("fresh_token", &[]).await;
    let res = server.get("/protected").send().await;
    check(&res, "", &MISSING);
}

#[tokio::test]
async fn another_scheme_counts_as_no_credential() {
    let server = Server::start("fresh_token", &[]).await;
    for value in [
        "Basic dXNlcjE6cGFzc3dvcmQx",
        "Token abc",
        "Bearerabc.def.ghi",
    ] {
        let res = protected_with(&server, value).await;
        check(&res, "", &MISSING);
    }
}

#[tokio::test]
async fn scheme_is_matched_case_insensitively() {
    let server = Server::start("fresh_token", &[]).await;
    let (fresh, _) = server.login().await;
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let res = protected_with(&server, format!("{scheme} {fresh}")).await;
        assert_eq!(res.status, StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn garbage_is_401_invalid_token() {
    let server = Server::start("fresh_token", &[]).await;
    for token in [
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9",
        "....",
    ] {
        assert_refused(&server, "/protected", token, invalid("Invalid token:")).await;
    }
}

#[tokio::test]
async fn a_foreign_or_altered_signature_is_refused() {
    let server = Server::start("fresh_token", &[]).await;
    let foreign = forge(HS256, &claims(""), b"another-secret-that-is-32-bytes!");
    assert_refused(
        &server,
        "/protected",
        &foreign,
        invalid("Signature verification failed"),
    )
    .await;
    let (fresh, _) = server.login().await;
    let mut tampered = fresh.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_refused(
        &server,
        "/protected",
        &tampered,
        invalid("Signature verification failed"),
    )
    .await;
    let stripped = fresh.rsplit_once('.').unwrap().0.to_owned() + ".";
    assert_refused(
        &server,
        "/protected",
        &stripped,
        invalid("Signature verification failed"),
    )
    .await;
}

#[tokio::test]
async fn alg_none_and_other_algorithms_are_refused() {
    let server = Server::start("fresh_token", &[]).await;
    for alg in ["none", "None", "NONE", "nOnE", "HS512", "RS256", "hs256"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let token = forge(&header, &claims(""), SECRET.as_bytes());
        assert_refused(
            &server,
            "/protected",
            &token,
            invalid("Invalid token: The specified alg"),
        )
        .await;
        let unsigned = token.rsplit_once('.').unwrap().0.to_owned() + ".";
        assert_refused(&server, "/protected", &unsigned, invalid("Invalid token:")).await;
    }
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let server = Server::start("fresh_token", &[]).await;
    let t = now();
    let payload = format!(
        r#"{{"sub":"user1","type":"access","fresh":true,"iat":{},"exp":{}}}"#,
        t - 100,
        t - 1
    );
    let token = forge(HS256, &payload, SECRET.as_bytes());
    assert_refused(&server, "/protected", &token, invalid("Token has expired")).await;
}

#[tokio::test]
async fn tokens_from_the_future_are_refused() {
    let server = Server::start("fresh_token", &[]).await;
    let nbf = forge(
        HS256,
        &claims(&format!(r#","nbf":{}"#, now() + 300)),
        SECRET.as_bytes(),
    );
    assert_refused(
        &server,
        "/protected",
        &nbf,
        invalid("Invalid token: The token is not yet valid (nbf)"),
    )
    .await;
    let t = now();
    let iat = format!(r#"{{"sub":"user1","iat":{},"exp":{}}}"#, t + 300, t + 900);
    let iat = forge(HS256, &iat, SECRET.as_bytes());
    assert_refused(
        &server,
        "/protected",
        &iat,
        invalid("Invalid token: The token is not yet valid (iat)"),
    )
    .await;
}

#[tokio::test]
async fn a_token_without_exp_is_refused() {
    let server = Server::start("fresh_token", &[]).await;
    let token = forge(
        HS256,
        r#"{"sub":"user1","type":"access","fresh":true}"#,
        SECRET.as_bytes(),
    );
    assert_refused(
        &server,
        "/protected",
        &token,
        invalid("Invalid token: missing claim 'exp'"),
    )
    .await;
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_refused_not_coerced() {
    let server = Server::start("fresh_token", &[]).await;
    let t = now();
    let cases = [
        (r#""sub":5"#, "Invalid token: claim 'sub' must be a string"),
        (
            r#""sub":"user1","fresh":"true""#,
            "Invalid token: claim 'fresh' must be",
        ),
        (
            r#""sub":"user1","fresh":null"#,
            "Invalid token: claim 'fresh' must be",
        ),
        (
            r#""sub":"user1","type":"id""#,
            "Invalid token: claim 'type' must be",
        ),
        (
            r#""sub":"user1","sub":"admin""#,
            "Invalid token: duplicate claim 'sub'",
        ),
    ];
    for (members, detail) in cases {
        let payload = format!(r#"{{{members},"iat":{t},"exp":{}}}"#, t + 600);
        let token = forge(HS256, &payload, SECRET.as_bytes());
        for path in ["/protected", "/fresh-required"] {
            assert_refused(&server, path, &token, invalid(detail)).await;
        }
    }
}

#[tokio::test]
async fn numeric_one_is_not_fresh() {
    let server = Server::start("fresh_token", &[]).await;
    let token = forge(
        HS256,
        &claims("").replace(r#""fresh":false"#, r#""fresh":1"#),
        SECRET.as_bytes(),
    );
    assert_eq!(
        server.get("/protected").bearer(&token).send().await.status,
        StatusCode::OK
    );
    let res = server.get("/fresh-required").bearer(&token).send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.detail(), "Fresh token required");
}

#[tokio::test]
async fn flask_fresh_until_counts_while_it_lasts() {
    let server = Server::start("fresh_token", &[]).await;
    let until = claims("").replace(r#""fresh":false"#, &format!(r#""fresh":{}.5"#, now() + 300));
    let token = forge(HS256, &until, SECRET.as_bytes());
    assert_eq!(
        server
            .get("/fresh-required")
            .bearer(&token)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    let past = claims("").replace(r#""fresh":false"#, &format!(r#""fresh":{}"#, now() - 1));
    let token = forge(HS256, &past, SECRET.as_bytes());
    assert_eq!(
        server
            .get("/fresh-required")
            .bearer(&token)
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn not_fresh_is_the_rfc_9470_step_up_challenge() {
    let server = Server::start("fresh_token", &[]).await;
    let (fresh, _) = server.login().await;
    let res = server.post("/refresh").bearer(&fresh).send().await;
    let stale = res.json()["access_token"].as_str().unwrap().to_owned();
    let res = server.get("/fresh-required").bearer(&stale).send().await;
    check(
        &res,
        &stale,
        &Expect {
            status: StatusCode::UNAUTHORIZED,
            challenge: "insufficient_user_authentication",
            detail: "Fresh token required",
        },
    );
}

#[tokio::test]
async fn an_audience_we_do_not_expect_is_refused() {
    let server = Server::start("fresh_token", &[]).await;
    let token = forge(HS256, &claims(r#","aud":"billing""#), SECRET.as_bytes());
    assert_refused(&server, "/protected", &token, invalid("Invalid audience")).await;
}

#[tokio::test]
async fn unknown_critical_headers_and_encrypted_tokens_are_refused() {
    let server = Server::start("fresh_token", &[]).await;
    for header in [
        r#"{"alg":"HS256","typ":"JWT","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","typ":"JWT","crit":[]}"#,
        r#"{"alg":"HS256","enc":"A256GCM"}"#,
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"JWE"}"#,
    ] {
        let token = forge(header, &claims(""), SECRET.as_bytes());
        assert_refused(&server, "/protected", &token, invalid("Invalid token:")).await;
    }
}

#[tokio::test]
async fn malformed_credential_headers_are_400_invalid_request() {
    let server = Server::start("fresh_token", &[]).await;
    let (fresh, _) = server.login().await;
    let bad_request = Expect {
        status: StatusCode::BAD_REQUEST,
        challenge: "invalid_request",
        detail: "Invalid request:",
    };
    let res = server
        .get("/protected")
        .bearer(&fresh)
        .bearer(&fresh)
        .send()
        .await;
    check(&res, &fresh, &bad_request);
    for value in [
        "Bearer".to_owned(),
        format!("Bearer\t{fresh}"),
        format!("Bearer {fresh} trailing"),
    ] {
        let res = protected_with(&server, &value).await;
        check(&res, &fresh, &bad_request);
    }
    let res = protected_with(&server, b"Bearer abc\xff\xfe.def.ghi").await;
    check(&res, "", &bad_request);
}

#[tokio::test]
async fn oversized_tokens_are_refused_as_too_long() {
    let server = Server::start("fresh_token", &[]).await;
    let token = "a".repeat(20_000);
    assert_refused(
        &server,
        "/protected",
        &token,
        invalid("Invalid token: too long"),
    )
    .await;
    let dots = ".".repeat(20_000);
    assert_refused(
        &server,
        "/protected",
        &dots,
        invalid("Invalid token: too long"),
    )
    .await;
}
