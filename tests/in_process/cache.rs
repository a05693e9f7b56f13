//! The opt-in verified-token cache: repeat tokens skip the signature, but every
//! hit is checked again for time, revocation and policy, and nothing but the
//! exact token that was verified can hit.

use crate::support;

use std::time::Duration;

use support::{HS256, forge, now};
use tower_authx::{AuthError, AuthX, AuthXConfig, Claims, InvalidToken, Requirement};

const SECRET: &[u8] = b"cache-tests-secret-of-32-bytes!!";

fn cached() -> AuthX {
    AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .verified_token_cache(100),
    )
    .unwrap()
}

#[tokio::test]
async fn hits_are_checked_again_for_time_revocation_and_policy() {
    let authx = cached();
    // Expires within two seconds: verified (and cached) now, expired later.
    let short = authx
        .access_token("u")
        .fresh(true)
        .lifetime(Duration::from_secs(2))
        .issue()
        .unwrap();
    for _ in 0..3 {
        let claims: Claims = authx.verify_offline(&short, &Requirement::fresh()).unwrap();
        assert_eq!(claims.sub, "u");
    }
    // Policy is never cached: a cached fresh token is still a wrong type elsewhere.
    assert!(matches!(
        authx.verify_offline::<tower_authx::NoExtra>(&short, &Requirement::refresh()),
        Err(AuthError::WrongTokenType { .. })
    ));
    // Revocation is asked on every use.
    let claims: Claims = authx
        .verify_offline(&short, &Requirement::access())
        .unwrap();
    authx.revoke(&claims).await.unwrap();
    assert_eq!(
        authx.check_revocation(&claims).await.unwrap_err(),
        AuthError::Revoked
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        authx
            .verify_offline::<tower_authx::NoExtra>(&short, &Requirement::access())
            .unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Expired)
    );
}

#[test]
fn only_the_exact_verified_token_hits() {
    let authx = cached();
    let t = now();
    let payload = format!(r#"{{"sub":"u","exp":{},"iat":{t}}}"#, t + 600);
    let good = forge(HS256, &payload, SECRET);
    let _: Claims = authx.verify_offline(&good, &Requirement::access()).unwrap();
    // Same header and payload, another signature: not a hit, refused.
    let forged = forge(HS256, &payload, b"another-secret-of-32-bytes-long!");
    assert_eq!(
        authx
            .verify_offline::<tower_authx::NoExtra>(&forged, &Requirement::access())
            .unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Signature)
    );
    // A refused token never enters the cache: refused again, the same way.
    for _ in 0..2 {
        assert!(
            authx
                .verify_offline::<tower_authx::NoExtra>(&forged, &Requirement::access())
                .is_err()
        );
    }
    // Tokens that were never valid in time are not cached either.
    let expired = forge(HS256, &format!(r#"{{"sub":"u","exp":{}}}"#, t - 1), SECRET);
    for _ in 0..2 {
        assert_eq!(
            authx
                .verify_offline::<tower_authx::NoExtra>(&expired, &Requirement::access())
                .unwrap_err(),
            AuthError::InvalidToken(InvalidToken::Expired)
        );
    }
}
