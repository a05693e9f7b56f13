//! Authorization from what identity providers put in tokens: each provider's
//! documented access token (tests/fixtures/idp/, with provenance) through its
//! preset, strict claim types, composed rules and their answers, RFC 9470
//! step-up by acr/amr, and configurations that would read stronger than they
//! are.

use crate::support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{
    AuthError, AuthX, AuthXConfig, ClaimPath, Idp, NoExtra, RequireAuthLayer, Requirement, Rule,
};

const SECRET: &[u8] = b"authz-tests-secret-of-32-bytes!!";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/idp/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn preset(name: &str) -> Idp {
    match name.split_once(':') {
        Some(("keycloak", client)) => Idp::keycloak(client),
        _ => match name {
            "auth0" => Idp::auth0(),
            "entra" => Idp::entra(),
            "okta" => Idp::okta(),
            "cognito" => Idp::cognito(),
            "authx" => Idp::authx(),
            other => panic!("no preset {other}"),
        },
    }
}

/// `payload` signed with our secret, its times made current.
fn sign(mut payload: Value) -> String {
    let now = support::now();
    payload["iat"] = json!(now);
    payload["exp"] = json!(now + 600);
    if payload.get("nbf").is_some() {
        payload["nbf"] = json!(now);
    }
    support::forge(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &payload.to_string(),
        SECRET,
    )
}

/// A handle that accepts `payload`'s issuer and audience and reads `idp`.
fn authx_for(payload: &Value, idp: Idp) -> AuthX {
    let mut config = AuthXConfig::from_secret(SECRET).unwrap().permissions(idp);
    if let Some(iss) = payload["iss"].as_str() {
        config = config.issuer(iss);
    }
    match &payload["aud"] {
        Value::String(aud) => config = config.audience(aud),
        Value::Array(auds) => {
            for aud in auds {
                config = config.audience(aud.as_str().unwrap());
            }
        }
        _ => {}
    }
    AuthX::new(config).unwrap()
}

#[tokio::test]
async fn each_providers_documented_token_grants_its_roles_through_its_preset() {
    for name in [
        "keycloak", "auth0", "entra_v1", "entra_v2", "okta", "cognito",
    ] {
        let fixture = fixture(name);
        let payload = fixture["payload"].clone();
        let authx = authx_for(&payload, preset(fixture["preset"].as_str().unwrap()));
        let token = sign(payload);
        let claims = authx
            .verify::<NoExtra>(&token, &Requirement::access())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for granted in fixture["grants"].as_array().unwrap() {
            let role = granted.as_str().unwrap();
            assert!(claims.permissions().contains(role), "{name}: {role}");
            let needs = Requirement::access().any_role([role]);
            authx
                .verify::<NoExtra>(&token, &needs)
                .await
                .unwrap_or_else(|e| panic!("{name} {role}: {e}"));
        }
        for refused in fixture["refuses"].as_array().unwrap() {
            let role = refused.as_str().unwrap();
            let needs = Requirement::access().any_role([role]);
            let error = authx.verify::<NoExtra>(&token, &needs).await.unwrap_err();
            assert_eq!(error.kind(), "insufficient_permissions", "{name} {role}");
            assert_eq!(error.status(), StatusCode::FORBIDDEN);
            // The detail names what the route needs, never what the token holds.
            let detail = error.to_string();
            assert!(detail.contains(role), "{detail}");
            for granted in fixture["grants"].as_array().unwrap() {
                assert!(!detail.contains(granted.as_str().unwrap()), "{detail}");
            }
        }
        // Another provider's preset reads nothing of this token.
        let elsewhere = authx_for(
            &fixture["payload"],
            Idp::claims([ClaimPath::dotted("nowhere")]),
        );
        let claims = elsewhere
            .verify::<NoExtra>(&token, &Requirement::access())
            .await
            .unwrap();
        assert!(claims.permissions().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_wrongly_typed_permission_claim_refuses_the_token() {
    let idp = || Idp::keycloak("my-app");
    for (why, payload) in [
        (
            "a number among roles",
            json!({"sub": "u", "realm_access": {"roles": ["staff", 7]}}),
        ),
        (
            "roles as an object",
            json!({"sub": "u", "realm_access": {"roles": {"staff": true}}}),
        ),
        (
            "realm_access as a list",
            json!({"sub": "u", "realm_access": ["staff"]}),
        ),
        (
            "null roles",
            json!({"sub": "u", "resource_access": {"my-app": {"roles": null}}}),
        ),
        ("roles twice", json!({"sub": "u"})),
    ] {
        let authx = authx_for(&payload, idp());
        let token = if why == "roles twice" {
            let now = support::now();
            support::forge(
                r#"{"alg":"HS256"}"#,
                &format!(
                    r#"{{"sub":"u","exp":{},"realm_access":{{"roles":["guest"]}},"realm_access":{{"roles":["staff"]}}}}"#,
                    now + 600
                ),
                SECRET,
            )
        } else {
            sign(payload)
        };
        let error = authx
            .verify::<NoExtra>(&token, &Requirement::access())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), "bad_claims", "{why}: {error}");
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED, "{why}");
    }
    // A claim path that starts at a claim read as its own is a configuration error.
    let config = AuthXConfig::from_secret(SECRET)
        .unwrap()
        .permissions(Idp::claims([ClaimPath::dotted("scope")]));
    assert!(AuthX::new(config).is_err());
}

/// Issue 38, finding 10: a member named twice inside an object (Keycloak's
/// `roles` twice in `realm_access`) was taken last-wins and opened `/staff`;
/// another verifier may read the first. Refused at every depth, whether the
/// claim is read for permissions, kept as the caller's own claims, or only
/// skipped.
#[tokio::test]
async fn a_member_named_twice_at_any_depth_refuses_the_token() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Own {
        profile: Option<Value>,
    }
    let now = support::now();
    let staff = Requirement::access().all_roles(["staff"]);
    for (why, inner) in [
        (
            "roles twice in realm_access",
            r#""realm_access":{"roles":["user"],"roles":["staff"]}"#,
        ),
        (
            "twice deep in an unknown claim",
            r#""realm_access":{"roles":["staff"]},"profile":{"a":[{"b":1,"b":2}]}"#,
        ),
        (
            "twice inside cnf",
            r#""realm_access":{"roles":["staff"]},"cnf":{"x5u":"a","x5u":"b"}"#,
        ),
    ] {
        let token = support::forge(
            r#"{"alg":"HS256"}"#,
            &format!(r#"{{"sub":"u","exp":{},{inner}}}"#, now + 600),
            SECRET,
        );
        let authx = authx_for(&json!({}), Idp::keycloak("my-app"));
        let error = authx.verify::<NoExtra>(&token, &staff).await.unwrap_err();
        assert_eq!(error.kind(), "bad_claims", "{why}: {error}");
        let error = authx.verify::<Own>(&token, &staff).await.unwrap_err();
        assert_eq!(error.kind(), "bad_claims", "{why} (own claims): {error}");
    }
    // The same claims, each named once, open the route.
    let token = support::forge(
        r#"{"alg":"HS256"}"#,
        &format!(
            r#"{{"sub":"u","exp":{},"realm_access":{{"roles":["staff"]}},"profile":{{"a":[{{"b":1}},{{"b":1}}]}}}}"#,
            now + 600
        ),
        SECRET,
    );
    let authx = authx_for(&json!({}), Idp::keycloak("my-app"));
    assert!(authx.verify::<Own>(&token, &staff).await.is_ok());
}

async fn status_and_challenge(
    guard: RequireAuthLayer,
    token: Option<&str>,
    grpc: bool,
) -> (StatusCode, Option<String>, Option<String>) {
    let service = guard.layer(service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
    }));
    let mut request = Request::post("/orders");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if grpc {
        request = request.header("content-type", "application/grpc");
    }
    let res = service
        .oneshot(request.body(Full::default()).unwrap())
        .await
        .unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (
        res.status(),
        header("www-authenticate"),
        header("grpc-status"),
    )
}

#[tokio::test]
async fn a_composed_rule_grants_either_way_and_refuses_with_what_it_needs() {
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .permissions(Idp::authx()),
    )
    .unwrap();
    let orders = authx
        .guard(Requirement::access().rule(Rule::any_of([
            Rule::all_scopes(["orders:write"]),
            Rule::any_role(["admin"]),
        ])))
        .unwrap();
    let writer = authx
        .access_token("w")
        .scopes(["orders:*"])
        .issue()
        .unwrap();
    let admin = authx
        .access_token("a")
        .extra(&json!({"roles": ["admin"]}))
        .issue()
        .unwrap();
    let neither = authx
        .access_token("n")
        .scopes(["orders:read"])
        .extra(&json!({"roles": ["staff"]}))
        .issue()
        .unwrap();
    for token in [&writer, &admin] {
        assert_eq!(
            status_and_challenge(orders.clone(), Some(token), false)
                .await
                .0,
            StatusCode::OK
        );
    }
    let (status, challenge, _) = status_and_challenge(orders.clone(), Some(&neither), false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    let error = authx
        .verify::<NoExtra>(
            &neither,
            &Requirement::access().rule(Rule::any_of([
                Rule::all_scopes(["orders:write"]),
                Rule::any_role(["admin"]),
            ])),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Missing required permissions: scopes ['orders:write'] or one of the roles ['admin']"
    );
    // gRPC: PERMISSION_DENIED.
    let (_, _, grpc) = status_and_challenge(orders.clone(), Some(&neither), true).await;
    assert_eq!(grpc.as_deref(), Some("7"));
    // Nobody without a credential, whatever the rule.
    let (status, _, _) = status_and_challenge(orders, None, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A predicate over the verified claims, named in its refusal.
    let own = authx
        .guard(Requirement::access().rule(Rule::predicate("subject is w", |c| c.sub == "w")))
        .unwrap();
    assert_eq!(
        status_and_challenge(own.clone(), Some(&writer), false)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        status_and_challenge(own, Some(&admin), false).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn step_up_by_acr_and_amr_answers_rfc_9470() {
    let authx = AuthX::new(AuthXConfig::from_secret(SECRET).unwrap()).unwrap();
    let password = authx
        .access_token("u")
        .amr(["pwd"])
        .acr("1")
        .issue()
        .unwrap();
    let second_factor = authx
        .access_token("u")
        .amr(["pwd", "otp"])
        .acr("urn:example:mfa")
        .issue()
        .unwrap();
    let mfa = authx.guard(Requirement::access().amr(["otp"])).unwrap();
    let (status, challenge, _) = status_and_challenge(mfa.clone(), Some(&password), false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenge
            .unwrap()
            .contains("error=\"insufficient_user_authentication\"")
    );
    assert_eq!(
        status_and_challenge(mfa, Some(&second_factor), false)
            .await
            .0,
        StatusCode::OK
    );
    let strong = authx
        .guard(Requirement::access().acr_values(["urn:example:mfa"]))
        .unwrap();
    let (status, challenge, _) = status_and_challenge(strong.clone(), Some(&password), false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains("acr_values=\"urn:example:mfa\""),
        "{challenge}"
    );
    assert_eq!(
        status_and_challenge(strong, Some(&second_factor), false)
            .await
            .0,
        StatusCode::OK
    );
    // Either of two stronger logins: still a step-up, naming the acr that would do.
    let either = authx
        .guard(Requirement::access().rule(Rule::any_of([
            Rule::acr_values(["urn:example:mfa"]),
            Rule::amr(["hwk"]),
        ])))
        .unwrap();
    let (status, challenge, _) = status_and_challenge(either, Some(&password), false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"urn:example:mfa\""),
        "{challenge}"
    );
    // Rotation keeps how the user authenticated.
    let pair = authx.token_pair("u").amr(["pwd", "otp"]).issue().unwrap();
    let refresh = authx
        .verify::<NoExtra>(&pair.refresh_token, &Requirement::refresh())
        .await
        .unwrap();
    let rotated = authx.rotate(&refresh).await.unwrap();
    let claims = authx
        .verify::<NoExtra>(&rotated.access_token, &Requirement::access().amr(["otp"]))
        .await
        .unwrap();
    assert_eq!(
        claims.amr.as_deref(),
        Some(&["pwd".to_owned(), "otp".to_owned()][..])
    );
}

#[tokio::test]
async fn rules_that_read_stronger_than_they_are_are_refused() {
    let authx = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .permissions(Idp::authx()),
    )
    .unwrap();
    let everything = authx
        .access_token("u")
        .scopes(["admin:*"])
        .extra(&json!({"roles": ["admin"]}))
        .issue()
        .unwrap();
    for (why, requirement) in [
        (
            "a required wildcard",
            Requirement::access().all_scopes(["admin:*"]),
        ),
        (
            "an empty any_of",
            Requirement::access().rule(Rule::any_of([])),
        ),
        (
            "an empty all_of",
            Requirement::access().rule(Rule::all_of([])),
        ),
        (
            "no role",
            Requirement::access().any_role(Vec::<String>::new()),
        ),
        (
            "a wildcard deep inside",
            Requirement::access().rule(Rule::any_of([
                Rule::any_role(["admin"]),
                Rule::all_scopes(["orders:*"]),
            ])),
        ),
    ] {
        assert!(authx.guard(requirement.clone()).is_err(), "{why}");
        // Asked per call, it refuses.
        let error = authx
            .verify::<NoExtra>(&everything, &requirement)
            .await
            .unwrap_err();
        assert!(
            matches!(error, AuthError::InsufficientPermissions { .. }),
            "{why}"
        );
    }
    // The scope guard's own constructors refuse to build one: at start, not
    // at the first request.
    for name in ["all", "any"] {
        let authx = authx.clone();
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || match name {
            "all" => tower_authx::RequireScopesLayer::all(authx, ["admin:*"]),
            _ => tower_authx::RequireScopesLayer::any(authx, ["admin:*"]),
        }));
        let why = built.expect_err("a guard requiring a wildcard was built");
        let why = why.downcast_ref::<String>().unwrap();
        assert!(
            why.contains(&format!("RequireScopesLayer::{name}")),
            "{why}"
        );
    }
}

/// Issue 38, finding 5: with our own keys, `ns:*` is a wildcard in AuthX's
/// `scopes` claim only; the same text in OAuth's `scope` or `scp` is a scope
/// name like any other, matched exactly.
#[tokio::test]
async fn wildcards_apply_to_authx_scopes_only() {
    let authx = authx_for(&json!({}), Idp::authx());
    let write = Requirement::access().all_scopes(["orders:write"]);
    for (claim, granted) in [
        ("scopes", json!(["orders:*"])),
        ("scope", json!("orders:*")),
        ("scp", json!(["orders:*"])),
    ] {
        let token = sign(json!({"sub": "u", claim: granted}));
        let verdict = authx.verify::<NoExtra>(&token, &write).await;
        if claim == "scopes" {
            assert!(verdict.is_ok(), "{claim}: {verdict:?}");
        } else {
            assert_eq!(verdict.unwrap_err().kind(), "insufficient_scope", "{claim}");
        }
    }
}

/// Issue 38, finding 4: an OpenID Connect ID token (or a logout token)
/// whose `aud` is ours is not an access token. What marks one is refused in
/// every configuration; what marks an access token (Keycloak's `typ:
/// Bearer`, Cognito's `token_use: access`, a scope) keeps it apart from an
/// ID token addressed to its `azp` alone.
#[tokio::test]
async fn id_tokens_and_logout_tokens_are_not_access_tokens() {
    let base = json!({"sub": "u", "iss": "https://idp.example", "aud": "api"});
    let with = |extra: Value| {
        let mut payload = base.clone();
        for (name, value) in extra.as_object().unwrap() {
            payload[name] = value.clone();
        }
        payload
    };
    let authx = authx_for(&base, Idp::authx());
    let access = Requirement::access();
    for (why, payload) in [
        ("nonce", with(json!({"nonce": "n-0S6_WzA2Mj"}))),
        (
            "at_hash",
            with(json!({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"})),
        ),
        ("c_hash", with(json!({"c_hash": "LDktKdoQak3Pk0cnXxCltA"}))),
        (
            "a back-channel logout token",
            with(
                json!({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}, "sid": "s"}),
            ),
        ),
        (
            "Keycloak's ID token",
            with(json!({"typ": "ID", "azp": "web"})),
        ),
        ("Keycloak's refresh token", with(json!({"typ": "Refresh"}))),
        ("Cognito's ID token", with(json!({"token_use": "id"}))),
        (
            "addressed to its azp alone",
            with(json!({"azp": "api", "aud": "api"})),
        ),
        (
            "addressed to its azp alone (a list)",
            with(json!({"azp": "api", "aud": ["api"]})),
        ),
        ("a typ claim that is no string", with(json!({"typ": 1}))),
    ] {
        let token = sign(payload);
        let error = authx.verify::<NoExtra>(&token, &access).await.unwrap_err();
        assert_eq!(error.kind(), "bad_claims", "{why}: {error}");
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED, "{why}");
        // Kept or skipped, the verdict is the same.
        let kept = authx.verify::<Value>(&token, &access).await;
        assert!(kept.is_err(), "{why} (own claims)");
    }
    for (why, payload) in [
        (
            "Keycloak's access token (before 25 it copied the nonce)",
            with(json!({"typ": "Bearer", "nonce": "n", "azp": "web"})),
        ),
        (
            "Cognito's access token",
            with(json!({"token_use": "access"})),
        ),
        (
            "a client calling its own API, with scopes",
            with(json!({"azp": "api", "scope": "read"})),
        ),
        ("azp another client", with(json!({"azp": "web"}))),
    ] {
        let token = sign(payload);
        let verdict = authx.verify::<NoExtra>(&token, &access).await;
        assert!(verdict.is_ok(), "{why}: {verdict:?}");
    }
}

/// Issue 38, finding 4: an issuer that types its access tokens can be held
/// to it, so that nothing else it signs gets in.
#[tokio::test]
async fn at_jwt_can_be_required() {
    let base = json!({"sub": "u", "iss": "https://idp.example", "aud": "api"});
    let config = || {
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .issuer("https://idp.example")
            .audience("api")
    };
    let typed = AuthX::new(config().require_at_jwt()).unwrap();
    let untyped = AuthX::new(config()).unwrap();
    let now = support::now();
    let mut payload = base.clone();
    payload["exp"] = json!(now + 600);
    let access = Requirement::access();
    for (typ, accepted) in [
        (Some("at+jwt"), true),
        (Some("application/at+jwt"), true),
        (Some("JWT"), false),
        (None, false),
    ] {
        let header = match typ {
            Some(typ) => json!({"alg": "HS256", "typ": typ}),
            None => json!({"alg": "HS256"}),
        };
        let token = support::forge(&header.to_string(), &payload.to_string(), SECRET);
        let verdict = typed.verify::<NoExtra>(&token, &access).await;
        assert_eq!(verdict.is_ok(), accepted, "{typ:?}: {verdict:?}");
        if !accepted {
            assert_eq!(verdict.unwrap_err().kind(), "malformed");
        }
        assert!(untyped.verify::<NoExtra>(&token, &access).await.is_ok());
    }
}

/// A claim that says what kind of token this is, named twice, is refused
/// like any other (a Keycloak access token's `nonce` included).
#[tokio::test]
async fn a_kind_claim_named_twice_is_refused() {
    let authx = authx_for(&json!({}), Idp::authx());
    let exp = support::now() + 600;
    for twice in [
        r#""typ":"Bearer","nonce":"a","nonce":"b""#,
        r#""typ":"Bearer","typ":"ID""#,
        r#""token_use":"access","token_use":"id""#,
    ] {
        let token = support::forge(
            r#"{"alg":"HS256"}"#,
            &format!(r#"{{"sub":"u","exp":{exp},{twice}}}"#),
            SECRET,
        );
        let error = authx
            .verify::<NoExtra>(&token, &Requirement::access())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), "bad_claims", "{twice}: {error}");
    }
}
