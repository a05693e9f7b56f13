//! Properties over the entry points an attacker reaches (the request head and the
//! token), with proptest. Bounded so CI stays fast; the fuzz targets in `fuzz/`
//! explore the same entry points for longer.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::{HS256, SECRET, forge, now, ready_now};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{
    AuthError, AuthX, AuthXConfig, NoExtra, RequestHead, RequireAuthLayer, Requirement,
    TokenLocation,
};

fn authx() -> AuthX {
    AuthX::new(AuthXConfig::from_secret(SECRET).unwrap().token_location([
        TokenLocation::Headers,
        TokenLocation::Cookies,
        TokenLocation::Query,
    ]))
    .unwrap()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs the guard on a request carrying these raw values; returns the status and
/// whether the inner service ran.
fn guard(method: Method, uri: &str, headers: &[(&str, Vec<u8>)]) -> (u16, bool) {
    let mut req = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        if let Ok(v) = http::HeaderValue::from_bytes(value) {
            req = req.header(*name, v);
        }
    }
    let req = req.body(Full::<Bytes>::default()).unwrap();
    let service =
        RequireAuthLayer::new(authx()).layer(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let res = runtime.block_on(service.oneshot(req)).unwrap();
    let called = res.headers().get("www-authenticate").is_none();
    (res.status().as_u16(), called)
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary Authorization, Cookie, CSRF and query bytes: a 400 or 401, never a
    /// pass, never a panic.
    #[test]
    fn hostile_request_heads_are_refused(
        authorization in proptest::collection::vec(any::<u8>(), 0..300),
        cookie in proptest::collection::vec(any::<u8>(), 0..300),
        csrf in proptest::collection::vec(any::<u8>(), 0..40),
        query in "[ -~]{0,200}",
        post in any::<bool>(),
    ) {
        let uri = format!("/?{}", query.replace(['#', ' '], ""));
        let Ok(_) = uri.parse::<http::Uri>() else { return Ok(()) };
        let method = if post { Method::POST } else { Method::GET };
        let (status, called) = guard(method, &uri, &[
            ("authorization", authorization),
            ("cookie", cookie),
            ("x-csrf-token", csrf),
        ]);
        prop_assert!(!called);
        prop_assert!(status == 400 || status == 401, "status {}", status);
    }

    /// Arbitrary text as a token: never verifies.
    #[test]
    fn arbitrary_tokens_never_verify(token in "\\PC{0,400}") {
        prop_assert!(authx().verify_offline::<NoExtra>(&token, &Requirement::any_type()).is_err());
    }

    /// Structured garbage: three dot-separated base64url-ish segments.
    #[test]
    fn token_shaped_garbage_never_verifies(
        h in "[A-Za-z0-9_-]{0,80}", p in "[A-Za-z0-9_-]{0,200}", s in "[A-Za-z0-9_-]{0,90}",
    ) {
        let token = format!("{h}.{p}.{s}");
        prop_assert!(authx().verify_offline::<NoExtra>(&token, &Requirement::any_type()).is_err());
    }

    /// Any one character of a valid token changed: refused.
    #[test]
    fn every_single_character_change_is_refused(position in any::<prop::sample::Index>(), replacement in "[ -~]") {
        let authx = authx();
        let token = authx.access_token("user1").fresh(true).issue().unwrap();
        let i = position.index(token.len());
        let replacement = replacement.chars().next().unwrap();
        prop_assume!(token.as_bytes()[i] != replacement as u8);
        let mut changed = token.clone().into_bytes();
        changed[i] = replacement as u8;
        let changed = String::from_utf8(changed).unwrap();
        prop_assert!(authx.verify_offline::<NoExtra>(&changed, &Requirement::any_type()).is_err());
    }

    /// Signed claims of arbitrary shapes: the verdict matches a plain model of
    /// the rules (types never coerced, time, token type, freshness).
    #[test]
    fn signed_claims_follow_the_model(
        sub in prop_oneof![Just(json!("user1")), Just(json!(1)), Just(Value::Null), Just(json!(["u"]))],
        token_type in prop_oneof![Just(None), Just(Some(json!("access"))), Just(Some(json!("refresh"))), Just(Some(json!("id"))), Just(Some(json!(true)))],
        fresh in prop_oneof![Just(None), Just(Some(json!(true))), Just(Some(json!(false))), Just(Some(json!("true"))), Just(Some(json!(1))), Just(Some(Value::Null)), Just(Some(json!(i64::MAX)))],
        exp_offset in prop_oneof![Just(None), (-1000i64..1000).prop_map(Some)],
        fresh_until_offset in -1000i64..1000,
        requirement in prop_oneof![Just(0u8), Just(1), Just(2), Just(3)],
    ) {
        let t = now() as i64;
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), sub.clone());
        if let Some(v) = &token_type { claims.insert("type".into(), v.clone()); }
        // A numeric `fresh` stands for a fresh-until date, relative to now.
        let fresh = fresh.map(|f| if f == json!(1) { json!(t + fresh_until_offset) } else { f });
        if let Some(v) = &fresh { claims.insert("fresh".into(), v.clone()); }
        if let Some(offset) = exp_offset { claims.insert("exp".into(), json!(t + offset)); }
        claims.insert("iat".into(), json!(t - 10));
        let token = forge(HS256, &Value::Object(claims).to_string(), SECRET.as_bytes());

        let requirement = [Requirement::access(), Requirement::fresh(), Requirement::refresh(), Requirement::any_type()][requirement as usize].clone();
        let verdict = authx().verify_offline::<NoExtra>(&token, &requirement);

        // The model.
        let well_typed = sub.is_string()
            && token_type.as_ref().is_none_or(|v| v == "access" || v == "refresh")
            && fresh.as_ref().is_none_or(|v| v.is_boolean() || (v.is_i64() && v.as_i64().unwrap() >= 0 && v.as_i64().unwrap() < 253_402_300_800))
            && exp_offset.is_some();
        let live = exp_offset.is_some_and(|o| o > 0);
        let is_refresh = token_type.as_ref().is_some_and(|v| v == "refresh");
        let is_fresh = fresh.as_ref().is_some_and(|v| v == &json!(true) || v.as_i64().is_some_and(|until| until > t));
        let type_ok = match requirement.token_type() {
            Some(tower_authx::TokenType::Refresh) => is_refresh,
            Some(tower_authx::TokenType::Access) => !is_refresh,
            Some(other) => panic!("a requirement of another type: {other:?}"),
            None => true,
        };
        let fresh_ok = !requirement.needs_fresh() || is_fresh;
        let expected = well_typed && live && type_ok && fresh_ok;
        prop_assert_eq!(verdict.is_ok(), expected, "{:?}", verdict.err());
        if let Err(e) = verdict {
            prop_assert!(matches!(e.status().as_u16(), 400 | 401 | 403));
        }
    }
}

#[test]
fn the_request_head_path_matches_verify() {
    // authenticate (request head) and verify (token) agree on a valid token.
    let authx = authx();
    let token = authx.access_token("u").issue().unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let uri: http::Uri = "/".parse().unwrap();
    let head = RequestHead {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
        extensions: None,
    };
    assert!(ready_now(authx.authenticate::<NoExtra>(head, &Requirement::access())).is_ok());
    assert!(matches!(
        ready_now(authx.authenticate::<NoExtra>(head, &Requirement::fresh())),
        Err(AuthError::FreshTokenRequired { .. })
    ));
}

/// DPoP: an honest client's proof for `GET https://api.example.com/protected`
/// and the token it is bound to.
mod dpop {
    use super::*;
    use support::dpop::{ProofKey, ath};
    use tower_authx::Dpop;

    pub const URL: &str = "https://api.example.com/protected";

    pub struct Setup {
        pub authx: AuthX,
        pub key: ProofKey,
        pub token: String,
    }

    pub fn setup() -> Setup {
        let authx = AuthX::new(
            AuthXConfig::from_secret(SECRET)
                .unwrap()
                .dpop(Dpop::new("https://api.example.com")),
        )
        .unwrap();
        let key = ProofKey::es256();
        let login = key.proof("POST", "https://api.example.com/login", None);
        let login = Request::post("/login")
            .header("dpop", login)
            .body(())
            .unwrap();
        let bound = futures_ready(authx.dpop_key(RequestHead::of(&login)))
            .unwrap()
            .unwrap();
        let token = authx.access_token("u").bound_to(&bound).issue().unwrap();
        Setup { authx, key, token }
    }

    fn futures_ready<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        match std::pin::pin!(f).poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("memory stores answer at once"),
        }
    }

    /// Whether the guard (without the replay store) takes `proof` for
    /// `GET /protected`.
    pub fn accepted(setup: &Setup, proof: &str) -> bool {
        let request = Request::get("/protected")
            .header("authorization", format!("DPoP {}", setup.token))
            .header("dpop", proof)
            .body(())
            .unwrap();
        super::ready_now(
            setup
                .authx
                .authenticate::<NoExtra>(RequestHead::of(&request), &Requirement::access()),
        )
        .is_ok()
    }

    pub fn claims(htm: &str, htu: &str, iat_offset: i64, ath_kind: u8, token: &str) -> Value {
        let mut claims = json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": htm,
            "htu": htu,
            "iat": now() as i64 + iat_offset,
        });
        match ath_kind {
            0 => {}
            1 => claims["ath"] = ath(token).into(),
            _ => claims["ath"] = ath("another").into(),
        }
        claims
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_change_to_an_honest_dpop_proof_is_refused(
        position in any::<prop::sample::Index>(),
        replacement in "[ -~]",
    ) {
        let setup = dpop::setup();
        let proof = setup.key.proof("GET", dpop::URL, Some(&setup.token));
        prop_assert!(dpop::accepted(&setup, &proof));
        let at = position.index(proof.len());
        prop_assume!(proof[at..].chars().next() != replacement.chars().next());
        let mut changed = proof.clone();
        changed.replace_range(at..at + 1, &replacement);
        prop_assert!(!dpop::accepted(&setup, &changed), "{changed}");
    }

    #[test]
    fn dpop_proofs_follow_the_model(
        htm in prop::sample::select(vec!["GET", "POST", "get", "HEAD"]),
        htu in prop::sample::select(vec![
            (dpop::URL, true),
            ("HTTPS://API.EXAMPLE.COM:443/protected?q=1#f", true),
            ("https://api.example.com/./protected", true),
            ("https://api.example.com/protected/", false),
            ("https://api.example.com/Protected", false),
            ("http://api.example.com/protected", false),
            ("https://api.example.com:8443/protected", false),
            ("https://api.example.org/protected", false),
            ("/protected", false),
        ]),
        iat_offset in -200i64..200,
        ath_kind in 0u8..3,
    ) {
        let setup = dpop::setup();
        let claims = dpop::claims(htm, htu.0, iat_offset, ath_kind, &setup.token);
        let proof = setup.key.sign(&setup.key.header(), &claims);
        // Defaults: a minute old at most (plus 5 s of skew), 5 s ahead at most.
        let model = htm == "GET" && htu.1 && (-65..=5).contains(&iat_offset) && ath_kind == 1;
        let fuzzy_edge = matches!(iat_offset, -66..=-64 | 4..=6);
        prop_assume!(!fuzzy_edge);
        prop_assert_eq!(dpop::accepted(&setup, &proof), model, "{}", claims);
    }
}

/// A requirement built through the public API from random parts: a base,
/// then scopes (all or any, possibly none, possibly empty names).
fn requirement_from(base: u8, scopes: Option<(bool, Vec<String>)>) -> Requirement {
    let requirement = match base % 4 {
        0 => Requirement::access(),
        1 => Requirement::fresh(),
        2 => Requirement::refresh(),
        _ => Requirement::any_type(),
    };
    match scopes {
        Some((true, scopes)) => requirement.all_scopes(scopes),
        Some((false, scopes)) => requirement.any_scope(scopes),
        None => requirement,
    }
}

/// Whether the inner service ran behind `layer` for a request with no credential.
fn anonymous_reaches_inner<L>(layer: L) -> bool
where
    L: Layer<
        tower::util::ServiceFn<
            fn(
                Request<Full<Bytes>>,
            ) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
        >,
    >,
    L::Service: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<tower_authx::layer::EitherBody<Full<Bytes>>>,
            Error = Infallible,
        >,
{
    fn inner(
        _req: Request<Full<Bytes>>,
    ) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
        let mut res = Response::new(Full::<Bytes>::default());
        res.headers_mut()
            .insert("x-inner", http::HeaderValue::from_static("1"));
        std::future::ready(Ok(res))
    }
    let service = layer.layer(service_fn(inner as fn(_) -> _));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let req = Request::get("/admin")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = runtime.block_on(service.oneshot(req)).unwrap();
    res.headers().contains_key("x-inner")
}

proptest! {
    #![proptest_config(config())]

    /// No requirement, however built, lets a request without any credential
    /// reach the service: only the optional kind does (issue: an optional
    /// admin gate let anonymous requests through).
    #[test]
    fn no_requirement_lets_an_anonymous_request_in(
        base in any::<u8>(),
        scopes in proptest::option::of((any::<bool>(), proptest::collection::vec("[a-z:*]{0,8}", 0..4))),
    ) {
        let requirement = requirement_from(base, scopes.clone());
        if let Ok(guard) = authx().guard(requirement) {
            prop_assert!(!anonymous_reaches_inner(guard));
        }
        if let Some((all, scopes)) = scopes {
            // Scopes no token could hold are refused when the guard is built.
            let requirement = if all {
                Requirement::access().all_scopes(scopes.clone())
            } else {
                Requirement::access().any_scope(scopes.clone())
            };
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| if all {
                tower_authx::RequireScopesLayer::all(authx(), scopes)
            } else {
                tower_authx::RequireScopesLayer::any(authx(), scopes)
            }));
            prop_assert_eq!(built.is_ok(), requirement.flaw().is_none());
            if let Ok(layer) = built {
                prop_assert!(!anonymous_reaches_inner(layer));
            }
        }
        prop_assert!(!anonymous_reaches_inner(tower_authx::RequireFreshLayer::new(authx())));
        prop_assert!(!anonymous_reaches_inner(RequireAuthLayer::refresh(authx())));
        prop_assert!(!anonymous_reaches_inner(RequireAuthLayer::any_type(authx())));
        // The one kind that lets anonymous requests in says so in its name.
        prop_assert!(anonymous_reaches_inner(tower_authx::OptionalAuthLayer::new(authx())));
    }
}

/// A rule tree as the test writes it, evaluated plainly below.
#[derive(Clone, Debug)]
enum Tree {
    AllScopes(Vec<String>),
    AnyScope(Vec<String>),
    AllRoles(Vec<String>),
    AnyRole(Vec<String>),
    Acr(Vec<String>),
    Amr(Vec<String>),
    AllOf(Vec<Tree>),
    AnyOf(Vec<Tree>),
}

/// What a token holds, as the test writes it.
#[derive(Clone, Debug)]
struct Held {
    scopes: Vec<String>,
    roles: Vec<String>,
    acr: Option<String>,
    amr: Vec<String>,
}

fn names(vocabulary: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        proptest::sample::select(vocabulary).prop_map(str::to_owned),
        0..3,
    )
}

const SCOPES: &[&str] = &["a", "a:b", "a:b:c", "a:*", "b", ""];
const ROLES: &[&str] = &["r1", "r2", "r3", ""];
const ACRS: &[&str] = &["1", "2"];
const AMRS: &[&str] = &["pwd", "otp", "mfa"];

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        names(SCOPES).prop_map(Tree::AllScopes),
        names(SCOPES).prop_map(Tree::AnyScope),
        names(ROLES).prop_map(Tree::AllRoles),
        names(ROLES).prop_map(Tree::AnyRole),
        names(ACRS).prop_map(Tree::Acr),
        names(AMRS).prop_map(Tree::Amr),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Tree::AllOf),
            proptest::collection::vec(inner, 0..3).prop_map(Tree::AnyOf),
        ]
    })
}

fn held() -> impl Strategy<Value = Held> {
    (
        names(SCOPES),
        names(ROLES),
        proptest::option::of(proptest::sample::select(ACRS).prop_map(str::to_owned)),
        names(AMRS),
    )
        .prop_map(|(scopes, roles, acr, amr)| Held {
            scopes,
            roles,
            acr,
            amr,
        })
}

impl Tree {
    fn rule(&self) -> tower_authx::Rule {
        use tower_authx::Rule;
        match self {
            Tree::AllScopes(v) => Rule::all_scopes(v.clone()),
            Tree::AnyScope(v) => Rule::any_scope(v.clone()),
            Tree::AllRoles(v) => Rule::all_roles(v.clone()),
            Tree::AnyRole(v) => Rule::any_role(v.clone()),
            Tree::Acr(v) => Rule::acr_values(v.clone()),
            Tree::Amr(v) => Rule::amr(v.clone()),
            Tree::AllOf(v) => Rule::all_of(v.iter().map(Tree::rule)),
            Tree::AnyOf(v) => Rule::any_of(v.iter().map(Tree::rule)),
        }
    }

    /// A slip that refuses everyone: an empty list or name, a required wildcard.
    fn flawed(&self) -> bool {
        let empty = |v: &[String]| v.is_empty() || v.iter().any(String::is_empty);
        match self {
            Tree::AllScopes(v) | Tree::AnyScope(v) => {
                empty(v) || v.iter().any(|s| s.ends_with('*'))
            }
            Tree::AllRoles(v) | Tree::AnyRole(v) | Tree::Acr(v) | Tree::Amr(v) => empty(v),
            Tree::AllOf(v) | Tree::AnyOf(v) => v.is_empty() || v.iter().any(Tree::flawed),
        }
    }

    fn holds(&self, held: &Held) -> bool {
        let scope = |required: &String| {
            held.scopes.iter().any(|granted| {
                granted == required
                    || granted
                        .strip_suffix(":*")
                        .is_some_and(|ns| required == ns || required.starts_with(&format!("{ns}:")))
            })
        };
        let role = |required: &String| held.roles.contains(required);
        match self {
            Tree::AllScopes(v) => v.iter().all(scope),
            Tree::AnyScope(v) => v.iter().any(scope),
            Tree::AllRoles(v) => v.iter().all(role),
            Tree::AnyRole(v) => v.iter().any(role),
            Tree::Acr(v) => held.acr.as_ref().is_some_and(|acr| v.contains(acr)),
            Tree::Amr(v) => v.iter().all(|m| held.amr.contains(m)),
            Tree::AllOf(v) => v.iter().all(|t| t.holds(held)),
            Tree::AnyOf(v) => v.iter().any(|t| t.holds(held)),
        }
    }
}

fn roles_authx() -> AuthX {
    AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .permissions(tower_authx::Idp::authx()),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// For random rule trees and random tokens, the guard decides as the
    /// plain evaluation above does; a flawed tree refuses everyone (and
    /// `AuthX::guard` will not build it); no tree lets a request without a
    /// credential in.
    #[test]
    fn composed_rules_decide_as_the_plain_evaluation(tree in tree(), held in held()) {
        let authx = roles_authx();
        let mut token = authx
            .access_token("u")
            .scopes(held.scopes.clone())
            .amr(held.amr.clone())
            .extra(&json!({"roles": held.roles}));
        if let Some(acr) = &held.acr {
            token = token.acr(acr.clone());
        }
        let token = token.issue().unwrap();
        let requirement = Requirement::access().rule(tree.rule());
        let expected = !tree.flawed() && tree.holds(&held);
        let decided = ready_now(authx.verify::<NoExtra>(&token, &requirement));
        prop_assert_eq!(decided.is_ok(), expected, "{:?}", decided.err());
        prop_assert_eq!(authx.guard(requirement.clone()).is_ok(), !tree.flawed());
        if let Ok(guard) = authx.guard(requirement) {
            prop_assert!(!anonymous_reaches_inner(guard));
        }
    }
}

/// Issue 39, one core check: every entry point reads a token through the
/// same stages, so the guard (a layer, over a request), `authenticate` (a
/// request's head), `verify` and `verify_offline` (the token alone) give
/// the same verdict for the same token and requirement: admitted by all, or
/// refused by all with the same error.
mod every_entry_point {
    use super::*;

    /// The verdict of each entry point: `Ok`, or the refusal's status and text.
    pub fn verdicts(
        authx: &AuthX,
        token: &str,
        requirement: &Requirement,
    ) -> Vec<Result<(), (u16, String)>> {
        let refusal = |e: AuthError| (e.status().as_u16(), e.to_string());
        let request = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let head = RequestHead::of(&request);
        let authenticated = ready_now(authx.authenticate::<NoExtra>(head, requirement))
            .map(drop)
            .map_err(refusal);
        let verified = ready_now(authx.verify::<NoExtra>(token, requirement))
            .map(drop)
            .map_err(refusal);
        let offline = authx
            .verify_offline::<NoExtra>(token, requirement)
            .map(drop)
            .map_err(refusal);
        let guard = authx.guard(requirement.clone()).unwrap();
        let service = guard.layer(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
        let response = ready_now(service.oneshot(request)).unwrap();
        let layered = match response.extensions().get::<AuthError>() {
            None => {
                assert_eq!(response.status(), 200);
                Ok(())
            }
            Some(e) => {
                assert_eq!(response.status(), e.status());
                Err(refusal(e.clone()))
            }
        };
        vec![layered, authenticated, verified, offline]
    }
}

proptest! {
    // Cheap cases (no network): many of them, so every refusal is met.
    #![proptest_config(ProptestConfig { cases: 2048, ..config() })]

    #[test]
    fn every_entry_point_gives_the_same_verdict(
        sub in prop_oneof![6 => Just(json!("user1")), 1 => Just(json!(1)), 1 => Just(json!(""))],
        token_type in prop_oneof![2 => Just(None), 3 => Just(Some(json!("access"))), 3 => Just(Some(json!("refresh"))), 1 => Just(Some(json!(7)))],
        fresh in prop_oneof![2 => Just(None), 3 => Just(Some(json!(true))), 3 => Just(Some(json!(false))), 1 => Just(Some(json!("yes")))],
        exp_offset in prop_oneof![1 => Just(None), 2 => (-100i64..0).prop_map(Some), 6 => (1i64..1000).prop_map(Some)],
        nbf_offset in prop_oneof![4 => Just(None), 1 => (-100i64..100).prop_map(Some)],
        scopes in prop_oneof![2 => Just(None), 3 => Just(Some(json!(["read"]))), 1 => Just(Some(json!(["write"]))), 1 => Just(Some(json!("read")))],
        header in prop_oneof![
            6 => Just(json!({"alg": "HS256", "typ": "JWT"})),
            2 => Just(json!({"alg": "HS256"})),
            1 => Just(json!({"alg": "HS256", "kid": "unknown"})),
            1 => Just(json!({"alg": "HS384", "typ": "JWT"})),
            1 => Just(json!({"alg": "none"})),
            1 => Just(json!({"alg": "HS256", "crit": ["exp"]})),
        ],
        tamper in prop_oneof![8 => Just(0u8), 1 => Just(1), 1 => Just(2)],
        requirement in 0usize..5,
    ) {
        let t = now() as i64;
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), sub);
        if let Some(v) = token_type { claims.insert("type".into(), v); }
        if let Some(v) = fresh { claims.insert("fresh".into(), v); }
        if let Some(o) = exp_offset { claims.insert("exp".into(), json!(t + o)); }
        if let Some(o) = nbf_offset { claims.insert("nbf".into(), json!(t + o)); }
        if let Some(v) = scopes { claims.insert("scopes".into(), v); }
        claims.insert("iat".into(), json!(t - 10));
        claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        let token = support::forge(&header.to_string(), &Value::Object(claims).to_string(), SECRET.as_bytes());
        let token = match tamper {
            // The signature of another key.
            1 => support::forge(&header.to_string(), &support::payload_of(&token).to_string(), b"another secret of thirty-two bytes!!"),
            // A segment cut off.
            2 => token.rsplit_once('.').unwrap().0.to_owned(),
            _ => token,
        };
        let requirement = [
            Requirement::access(),
            Requirement::fresh(),
            Requirement::refresh(),
            Requirement::any_type(),
            Requirement::access().all_scopes(["read"]),
        ][requirement].clone();
        let verdicts = every_entry_point::verdicts(&authx(), &token, &requirement);
        for (name, verdict) in ["authenticate", "verify", "verify_offline"].iter().zip(&verdicts[1..]) {
            prop_assert_eq!(verdict, &verdicts[0], "the guard and {} differ on {}", name, token);
        }
    }
}
