//! The reverse direction, against the real Python packages: tokens we mint verify
//! in AuthX's `verify_token` and flask-jwt-extended's `decode_token`, and the
//! seed's AuthX server and ours accept each other's tokens over HTTP.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use support::{SECRET, Server, free_port, python};
use tokio::io::AsyncWriteExt;
use tower_authx::{AuthX, AuthXConfig};

fn entry(name: &str, token: String, token_type: &str, fresh: bool) -> Value {
    json!({"name": name, "token": token, "sub": "user1", "type": token_type, "fresh": fresh})
}

async fn verify_in_python(python: &std::path::Path, spec: Value) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/verify_in_python.py"
    );
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(spec.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python refused our tokens:\n{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[tokio::test]
async fn our_tokens_verify_in_authx_and_flask_jwt_extended() {
    let Some(python) = python() else { return };
    let authx = AuthX::new(AuthXConfig::from_secret(SECRET).unwrap()).unwrap();
    let scoped = authx
        .access_token("user1")
        .fresh(true)
        .scopes(["read", "admin:*"])
        .issue()
        .unwrap();
    let mut scoped = entry("access_with_scopes", scoped, "access", true);
    scoped["scopes"] = json!(["read", "admin:users"]);
    let tokens = vec![
        entry(
            "access_fresh",
            authx.access_token("user1").fresh(true).issue().unwrap(),
            "access",
            true,
        ),
        entry(
            "access_not_fresh",
            authx.access_token("user1").issue().unwrap(),
            "access",
            false,
        ),
        entry(
            "refresh",
            authx.refresh_token("user1").issue().unwrap(),
            "refresh",
            false,
        ),
        entry(
            "access_with_extra",
            authx
                .access_token("user1")
                .extra(&json!({"role": "admin"}))
                .issue()
                .unwrap(),
            "access",
            false,
        ),
        scoped,
    ];
    verify_in_python(&python, json!({"secret": SECRET, "tokens": tokens})).await;
}

#[tokio::test]
async fn our_tokens_with_issuer_and_audience_verify_in_python() {
    let Some(python) = python() else { return };
    let config = AuthXConfig::from_secret(SECRET)
        .unwrap()
        .issuer("https://issuer.example")
        .audience("api");
    let authx = AuthX::new(config).unwrap();
    let tokens = vec![
        entry(
            "access_iss_aud",
            authx.access_token("user1").fresh(true).issue().unwrap(),
            "access",
            true,
        ),
        entry(
            "refresh_iss_aud",
            authx.refresh_token("user1").issue().unwrap(),
            "refresh",
            false,
        ),
    ];
    let spec = json!({"secret": SECRET, "issuer": "https://issuer.example", "audience": "api", "tokens": tokens});
    verify_in_python(&python, spec).await;
}

/// The seed's AuthX FastAPI app under uvicorn, on a free port.
struct AuthxSeed {
    server: Server,
    _child: tokio::process::Child,
}

async fn start_authx_seed(python: &std::path::Path) -> AuthxSeed {
    let port = free_port();
    let child = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/authx_fresh_token.py"
        ))
        .env("PORT", port.to_string())
        .env("JWT_SECRET_KEY", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the AuthX seed app");
    let server = Server::at(format!("127.0.0.1:{port}"));
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(&server.addr).await.is_ok() {
            return AuthxSeed {
                server,
                _child: child,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the AuthX seed app did not start");
}

#[tokio::test]
async fn tokens_cross_between_the_authx_seed_server_and_ours() {
    let Some(python) = python() else { return };
    let ours = Server::start("fresh_token", &[]).await;
    let theirs = start_authx_seed(&python).await;
    let theirs = &theirs.server;

    for (issuer, verifier) in [(theirs, &ours), (&ours, theirs)] {
        let fresh = issuer.login_fresh().await;
        let res = verifier.get("/protected").bearer(&fresh).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.json()["username"], "user1");
        assert_eq!(res.json()["fresh"], true);
        let res = verifier.get("/fresh-required").bearer(&fresh).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());

        let res = issuer.post("/refresh").bearer(&fresh).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        let stale = res.json()["access_token"].as_str().unwrap().to_owned();
        let res = verifier.get("/protected").bearer(&stale).send().await;
        assert_eq!(res.json()["fresh"], false, "{}", res.text());
        let res = verifier.get("/fresh-required").bearer(&stale).send().await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        // The real seed app re-wraps its own HTTPException: "401: Fresh token required".
        assert!(
            res.detail().ends_with("Fresh token required"),
            "{}",
            res.text()
        );
    }
}

/// Asymmetric tokens in both directions: ours (with `kid`) verify in AuthX and
/// flask-jwt-extended with the public key, and theirs verify here.
#[tokio::test]
async fn asymmetric_tokens_cross_both_ways() {
    let Some(python) = python() else { return };
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/");
    for (alg, name) in [
        (tower_authx::Algorithm::RS256, "rsa"),
        (tower_authx::Algorithm::PS256, "rsa"),
        (tower_authx::Algorithm::ES256, "ec256"),
        (tower_authx::Algorithm::ES384, "ec384"),
        // EdDSA: AuthX 1.7's configuration accepts HS*, RS*, PS* and ES* only.
    ] {
        let private = format!("{keys}{name}_private.pem");
        let public_pem = std::fs::read_to_string(format!("{keys}{name}_public.pem")).unwrap();
        let ours = AuthX::new(AuthXConfig::new(
            tower_authx::Key::signing_pem(alg, &std::fs::read(&private).unwrap()).unwrap(),
        ))
        .unwrap();
        let pair = ours.token_pair("user1").issue().unwrap();
        let tokens = vec![
            entry(
                &format!("{alg} fresh access"),
                pair.access_token,
                "access",
                true,
            ),
            entry(
                &format!("{alg} refresh"),
                pair.refresh_token,
                "refresh",
                false,
            ),
        ];
        let spec = json!({"algorithm": alg.as_str(), "public_key": public_pem, "tokens": tokens});
        verify_in_python(&python, spec).await;

        // Theirs, minted by the real libraries with the same private key.
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/mint_asymmetric.py"
        );
        let out = tokio::process::Command::new(&python)
            .args([script, alg.as_str(), &private])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let minted: Value = serde_json::from_slice(&out.stdout).unwrap();
        let verifier = AuthX::new(AuthXConfig::new(tower_authx::KeySet::verify_only([
            tower_authx::Key::verifying_pem(alg, public_pem.as_bytes()).unwrap(),
        ])))
        .unwrap();
        for library in ["authx", "flask"] {
            let fresh = minted[library]["fresh"].as_str().unwrap();
            let claims: tower_authx::Claims = verifier
                .verify_offline(fresh, &tower_authx::Requirement::fresh())
                .unwrap_or_else(|e| panic!("{library} {alg} fresh: {e}"));
            assert_eq!(claims.sub, "user1");
            let refresh = minted[library]["refresh"].as_str().unwrap();
            let claims: tower_authx::Claims = verifier
                .verify_offline(refresh, &tower_authx::Requirement::refresh())
                .unwrap_or_else(|e| panic!("{library} {alg} refresh: {e}"));
            assert_eq!(claims.sub, "user1");
        }
    }
}
