//! Wycheproof's JOSE JWS vectors (a verbatim subset, see the fixture's `source`)
//! through our verification path. The vectors sign `foo`, not claims, so a vector
//! that passes the signature stops at the claims: "valid" means exactly that, and
//! every "invalid" vector must be refused before it (header, algorithm, shape or
//! signature).

use serde_json::Value;
use tower_authx::{AuthError, AuthX, AuthXConfig, InvalidToken, Key, Requirement};

#[test]
fn every_invalid_vector_is_refused_and_every_valid_signature_passes() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/wycheproof_jws.json")).unwrap();
    let mut checked = 0;
    for group in fixture["testGroups"].as_array().unwrap() {
        let jwk = group.get("public").unwrap_or(&group["private"]);
        let alg = jwk["alg"].as_str().unwrap().parse().unwrap();
        let key = Key::from_jwk(alg, &jwk.to_string()).unwrap();
        let authx = AuthX::new(AuthXConfig::new(key)).unwrap();
        for test in group["tests"].as_array().unwrap() {
            let (id, comment) = (&test["tcId"], &test["comment"]);
            let outcome = authx.verify::<tower_authx::NoExtra>(
                test["jws"].as_str().unwrap(),
                &Requirement::any_type(),
            );
            let Err(error) = outcome else {
                panic!("tcId {id} ({comment}) was accepted as claims");
            };
            let past_signature = matches!(error, AuthError::InvalidToken(InvalidToken::Claims(_)));
            match test["result"].as_str().unwrap() {
                "valid" => assert!(past_signature, "tcId {id} ({comment}): {error}"),
                _ => assert!(
                    !past_signature,
                    "tcId {id} ({comment}) passed the signature"
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 39);
}

#[test]
fn jwks_must_fit_the_algorithm() {
    let ec = r#"{"kty":"EC","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}"#;
    use tower_authx::Algorithm::*;
    assert!(Key::from_jwk(ES256, ec).is_ok());
    for wrong in [HS256, RS256, ES384, EdDSA] {
        assert!(Key::from_jwk(wrong, ec).is_err(), "{wrong}");
    }
    let declared_es384 = ec.replace(r#""kty""#, r#""alg":"ES384","kty""#);
    assert!(Key::from_jwk(ES256, &declared_es384).is_err());
    assert!(Key::from_jwk(HS256, r#"{"kty":"oct"}"#).is_err());
    assert!(Key::from_jwk(HS256, "not json").is_err());
}
