//! Issue 42: the mock issuer's tokens, discovery and JWKS read by verifiers
//! that are not ours: PyJWT (its PyJWKClient over the JWKS), and panva's
//! openid-client (discovery, the client credentials grant) with jose.
#![cfg(feature = "test-util")]

use tokio::process::Command;
use tower_authx::testing::MockIssuer;

use crate::support;

const API: &str = "https://api.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_the_mock_issuers_tokens_and_refuses_its_bad_ones() {
    let Some(python) = support::python() else {
        return;
    };
    let idp = MockIssuer::start(API).await.unwrap();
    let script = support::repo_root().join("tests/interop/verify_mock_issuer.py");
    let run = |token: String| {
        let mut command = Command::new(&python);
        command.arg(&script).args([idp.url(), API, token.as_str()]);
        async move { command.output().await.unwrap() }
    };
    let good = idp.token().subject("alice").scope("read").issue();
    let out = run(good).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["scope"], "read");
    // Rotated: the new key comes from the JWKS by kid.
    idp.rotate_keys();
    assert!(run(idp.token().issue()).await.status.success());
    for (case, token) in [
        ("expired", idp.token().expired().issue()),
        (
            "another audience",
            idp.token().audience("https://other.test").issue(),
        ),
        (
            "another issuer",
            idp.token().issuer("https://other.test").issue(),
        ),
        ("an unpublished key", idp.token().unknown_key().issue()),
    ] {
        assert!(!run(token).await.status.success(), "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_discovers_the_mock_issuer_and_jose_verifies_its_tokens() {
    let Some(dir) = support::oidc_packages() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs node and tests/oidc's packages"
        );
        support::skipped("no node to run openid-client (tests/oidc)");
        return;
    };
    let idp = MockIssuer::start(API).await.unwrap();
    let given = idp.token().subject("alice").scope("read write").issue();
    let out = Command::new("node")
        .arg(dir.join("mock_issuer_client.mjs"))
        .args([idp.url(), API, given.as_str()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["grant_sub"], "test-client", "{seen}");
    assert_eq!(seen["grant_scope"], "read", "{seen}");
    assert_eq!(seen["given_sub"], "alice", "{seen}");
    assert_eq!(idp.requests("/.well-known/openid-configuration"), 1);
    assert_eq!(idp.requests("/token"), 1);
}
