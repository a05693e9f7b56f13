//! Keys end to end: the example as an issuer with every asymmetric algorithm
//! and a rotation, and the resource-server example verifying through its JWKS,
//! over real TCP.
#![cfg(feature = "remote-keys")]

use crate::support;

use std::time::Duration;

use http::StatusCode;
use support::{Server, header_of, key_fixture, private_key};
use tower_authx::{Algorithm, AuthX, AuthXConfig};

/// The `iss` the issuer example writes and the resource server requires.
const ISSUER: &str = "http://issuer.test";

async fn issuer(alg: &str, key: &str, previous: Option<&str>) -> Server {
    let key = key_fixture(key);
    let previous = previous.map(key_fixture);
    let mut env = vec![
        ("JWT_ALGORITHM", alg),
        ("JWT_PRIVATE_KEY_FILE", key.as_str()),
        ("JWT_ISSUER", ISSUER),
    ];
    if let Some(previous) = &previous {
        env.push(("JWT_PREVIOUS_KEY_FILE", previous.as_str()));
    }
    Server::start("fresh_token", &env).await
}

/// The status `/protected` answers for `token`.
async fn status(server: &Server, token: &str) -> StatusCode {
    server.get("/protected").bearer(token).send().await.status
}

/// The ES256 issuer on `port` (once the previous process has let it go), with
/// more environment.
async fn es256_issuer_on(port: &str, extra: &[(&str, &str)]) -> Server {
    for _ in 0..100 {
        if std::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = key_fixture("ec256_private.pem");
    let mut env = vec![
        ("PORT", port),
        ("JWT_ALGORITHM", "ES256"),
        ("JWT_PRIVATE_KEY_FILE", key.as_str()),
        ("JWT_ISSUER", ISSUER),
    ];
    env.extend_from_slice(extra);
    Server::start("fresh_token", &env).await
}

async fn resource_server(issuer: &Server, extra: &[(&str, &str)]) -> Server {
    let url = format!("http://{}/.well-known/jwks.json", issuer.addr);
    let mut env = vec![("JWKS_URL", url.as_str()), ("JWT_ISSUER", ISSUER)];
    env.extend_from_slice(extra);
    Server::start("resource_server", &env).await
}

#[tokio::test]
async fn every_asymmetric_algorithm_end_to_end() {
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ] {
        let issuer = issuer(alg, private_key_for(alg), None).await;
        let jwks = issuer.get("/.well-known/jwks.json").send().await;
        assert_eq!(jwks.status, StatusCode::OK, "{alg}");
        let keys = jwks.json()["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 1, "{alg}");
        let published = &keys[0];
        assert_eq!(published["alg"], alg);
        assert_eq!(published["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                published.get(private).is_none(),
                "{alg} publishes {private}"
            );
        }

        let (fresh, refresh) = issuer.login().await;
        let header = header_of(&fresh);
        assert_eq!(header["alg"], alg);
        assert_eq!(
            header["kid"], published["kid"],
            "{alg}: kid = RFC 7638 thumbprint"
        );

        let resource = resource_server(&issuer, &[]).await;
        let res = resource.get("/protected").bearer(&fresh).send().await;
        assert_eq!(res.status, StatusCode::OK, "{alg}: {}", res.text());
        assert_eq!(res.json()["username"], "user1");
        assert_eq!(res.json()["fresh"], true);
        assert_eq!(
            resource
                .get("/fresh-required")
                .bearer(&fresh)
                .send()
                .await
                .status,
            StatusCode::OK
        );
        // Non-fresh from the issuer's refresh: fine for /protected, not for /fresh-required.
        let stale = issuer.post("/refresh").bearer(&refresh).send().await.json()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = resource.get("/fresh-required").bearer(&stale).send().await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{alg}");
        assert_eq!(res.detail(), "Fresh token required");
        // A refresh token is not an access token here either.
        let res = resource.get("/protected").bearer(&refresh).send().await;
        assert_eq!(
            res.detail(),
            "'access' token required, 'refresh' token received"
        );
    }
}

#[tokio::test]
async fn rotation_keeps_old_tokens_while_the_previous_key_is_published() {
    let old_issuer = issuer("RS256", "rsa_private.pem", None).await;
    let old_token = old_issuer.login_fresh().await;
    let resource = resource_server(
        &old_issuer,
        &[("JWKS_REFRESH_SECS", "0.2"), ("JWKS_MIN_REFETCH_SECS", "0")],
    )
    .await;
    assert_eq!(status(&resource, &old_token).await, StatusCode::OK);
    let addr = old_issuer.addr.clone();
    drop(old_issuer);

    // The issuer restarts on the same address with a new key, publishing the old one too.
    let port = addr.rsplit(':').next().unwrap();
    let old_public = key_fixture("rsa_public.pem");
    let previous = [
        ("JWT_PREVIOUS_ALGORITHM", "RS256"),
        ("JWT_PREVIOUS_KEY_FILE", old_public.as_str()),
    ];
    let new_issuer = es256_issuer_on(port, &previous).await;
    assert_eq!(new_issuer.addr, addr);
    let keys = new_issuer.get("/.well-known/jwks.json").send().await.json();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
    let new_token = new_issuer.login_fresh().await;
    assert_ne!(header_of(&new_token)["kid"], header_of(&old_token)["kid"]);
    // The new kid is unknown to the resource server: one refetch, then accepted.
    let res = resource.get("/protected").bearer(&new_token).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(status(&resource, &old_token).await, StatusCode::OK);
    drop(new_issuer);

    // Once the old key is no longer published, old tokens stop verifying.
    let _issuer = es256_issuer_on(port, &[]).await;
    let mut refused = false;
    for _ in 0..50 {
        let res = resource.get("/protected").bearer(&old_token).send().await;
        if res.status == StatusCode::UNAUTHORIZED {
            assert_eq!(res.detail(), "Invalid token: unknown signing key (kid)");
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the unpublished key kept verifying");
    assert_eq!(
        resource
            .get("/protected")
            .bearer(&new_token)
            .send()
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn with_the_issuer_down_cached_keys_serve_and_unknown_kids_are_503() {
    let issuer = issuer("ES256", "ec256_private.pem", None).await;
    let token = issuer.login_fresh().await;
    let resource = resource_server(&issuer, &[("JWKS_MIN_REFETCH_SECS", "0")]).await;
    assert_eq!(
        resource
            .get("/protected")
            .bearer(&token)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    drop(issuer);

    assert_eq!(
        resource
            .get("/protected")
            .bearer(&token)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    let other = AuthX::new(
        AuthXConfig::new(
            private_key(Algorithm::ES256, "ec256_private.pem").with_kid("rotated-in-later"),
        )
        .issuer(ISSUER),
    )
    .unwrap()
    .access_token("user1")
    .fresh(true)
    .issue()
    .unwrap();
    let res = resource.get("/protected").bearer(&other).send().await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
    assert_eq!(res.detail(), "Signing keys unavailable, try again later");
    assert_eq!(res.headers["retry-after"], "1");
    // A malformed token is still a plain 401: no key needed to refuse it.
    assert_eq!(
        resource
            .get("/protected")
            .bearer("a.b.c")
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

fn private_key_for(alg: &str) -> &'static str {
    match alg {
        "ES256" => "ec256_private.pem",
        "ES384" => "ec384_private.pem",
        "EdDSA" => "ed25519_private.pem",
        _ => "rsa_private.pem",
    }
}
