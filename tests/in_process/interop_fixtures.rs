//! Tokens minted by the real AuthX 1.7 and flask-jwt-extended 4.7 (committed in
//! tests/fixtures/python_tokens.json, made by mint_python_tokens.py) verify here.

use serde::Deserialize;
use tower_authx::{AuthX, AuthXConfig, Claims, NoExtra, Requirement, TokenType};

#[derive(Deserialize)]
struct Fixtures {
    secret: String,
    tokens: Vec<Fixture>,
}

#[derive(Deserialize)]
struct Fixture {
    name: String,
    token: String,
    sub: String,
    #[serde(rename = "type")]
    token_type: String,
    fresh: bool,
}

fn fixtures() -> (AuthX, Vec<Fixture>) {
    let text = include_str!("../fixtures/python_tokens.json");
    let f: Fixtures = serde_json::from_str(text).unwrap();
    (
        AuthX::new(AuthXConfig::from_secret(&f.secret).unwrap()).unwrap(),
        f.tokens,
    )
}

#[test]
fn every_python_token_verifies_with_its_type_subject_and_freshness() {
    let (authx, tokens) = fixtures();
    assert!(tokens.len() >= 9);
    for f in tokens {
        let claims: Claims = authx
            .verify_offline(&f.token, &Requirement::any_type())
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(claims.sub, f.sub, "{}", f.name);
        assert_eq!(claims.token_type.as_str(), f.token_type, "{}", f.name);
        assert_eq!(claims.is_fresh(), f.fresh, "{}", f.name);
        assert!(claims.jti.is_some(), "{}", f.name);

        let as_access = authx.verify_offline::<NoExtra>(&f.token, &Requirement::access());
        assert_eq!(
            as_access.is_ok(),
            claims.token_type == TokenType::Access,
            "{}",
            f.name
        );
        let as_fresh = authx.verify_offline::<NoExtra>(&f.token, &Requirement::fresh());
        assert_eq!(
            as_fresh.is_ok(),
            f.fresh && claims.token_type == TokenType::Access,
            "{}",
            f.name
        );
        let as_refresh = authx.verify_offline::<NoExtra>(&f.token, &Requirement::refresh());
        assert_eq!(
            as_refresh.is_ok(),
            claims.token_type == TokenType::Refresh,
            "{}",
            f.name
        );
    }
}

#[test]
fn authx_scopes_and_data_arrive_as_typed_claims() {
    #[derive(Clone, Debug, Deserialize)]
    struct Role {
        role: String,
    }
    let (authx, tokens) = fixtures();
    let f = tokens
        .iter()
        .find(|f| f.name == "authx_access_scopes_and_data")
        .unwrap();
    let claims: Claims<Role> = authx
        .verify_offline(&f.token, &Requirement::fresh())
        .unwrap();
    assert_eq!(claims.extra.role, "admin");
    assert!(claims.has_scopes(&["read", "admin:users:write"]));
    assert!(!claims.has_scope("write"));
}

#[test]
fn a_python_token_under_another_secret_is_refused() {
    let (_, tokens) = fixtures();
    let other =
        AuthX::new(AuthXConfig::from_secret("a-different-secret-of-32-bytes!!").unwrap()).unwrap();
    for f in tokens {
        assert!(
            other
                .verify_offline::<NoExtra>(&f.token, &Requirement::any_type())
                .is_err(),
            "{}",
            f.name
        );
    }
}
