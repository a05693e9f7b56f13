//! Arbitrary bytes as the claims of a correctly signed token: whatever the JSON
//! says, the verdict must match a plain model of the rules (types never coerced,
//! `exp` in the future, freshness), and nothing may panic. Read again through
//! Keycloak's claim paths, the roles must be the model's, and a wrongly typed
//! path must refuse the token.
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_authx::{AuthX, AuthXConfig, Idp, NoExtra, NumericDate, Requirement};

const SECRET: &[u8] = b"fuzzing-secret-of-at-least-32-bytes";

static AUTHX: LazyLock<AuthX> =
    LazyLock::new(|| AuthX::new(AuthXConfig::from_secret(SECRET).unwrap()).unwrap());

static KEYCLOAK: LazyLock<AuthX> = LazyLock::new(|| {
    let config = AuthXConfig::from_secret(SECRET)
        .unwrap()
        .permissions(Idp::keycloak("c"));
    AuthX::new(config).unwrap()
});

/// The roles Keycloak's paths hold in `claims`, or `None` where a value on
/// the way has the wrong type.
fn model_roles(claims: &serde_json::Map<String, Value>) -> Option<Vec<String>> {
    let mut roles = Vec::new();
    for path in [&["realm_access", "roles"][..], &["resource_access", "c", "roles"]] {
        let mut value = match claims.get(path[0]) {
            Some(v) => v,
            None => continue,
        };
        let mut found = true;
        for name in &path[1..] {
            match value.as_object()?.get(*name) {
                Some(inner) => value = inner,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        match value {
            Value::String(one) => roles.push(one.clone()),
            Value::Array(items) => {
                for item in items {
                    roles.push(item.as_str()?.to_owned());
                }
            }
            _ => return None,
        }
    }
    Some(roles)
}

fn sign(payload: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(message.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    };
    format!("{message}.{signature}")
}

fn date(v: &Value) -> Option<f64> {
    v.as_f64().filter(|d| (0.0..=253_402_300_799.0).contains(d))
}

/// Whether the model accepts `claims` as a fresh access token now.
fn model_accepts(claims: &serde_json::Map<String, Value>, now: f64) -> Option<bool> {
    let string_or_absent = |name: &str| claims.get(name).is_none_or(Value::is_string);
    let date_or_absent = |name: &str| claims.get(name).is_none_or(|v| date(v).is_some());
    // Shapes the model does not cover precisely: leave those to "no panic".
    if claims.contains_key("aud")
        || claims.contains_key("scopes")
        || claims.contains_key("auth_time")
    {
        return None;
    }
    let well_typed = claims.get("sub").is_some_and(Value::is_string)
        && string_or_absent("jti")
        && string_or_absent("csrf")
        && string_or_absent("iss")
        && string_or_absent("fam")
        && string_or_absent("scope")
        && string_or_absent("acr")
        && claims
            .get("amr")
            .is_none_or(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
        && claims.get("scp").is_none_or(|v| {
            v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        })
        && date_or_absent("iat")
        && date_or_absent("nbf")
        && claims.get("exp").and_then(date).is_some()
        && claims
            .get("type")
            .is_none_or(|t| t == "access" || t == "refresh")
        && claims
            .get("fresh")
            .is_none_or(|f| f.is_boolean() || date(f).is_some());
    if !well_typed {
        return Some(false);
    }
    let exp = date(&claims["exp"]).unwrap();
    let in_time = exp > now + 1.0
        && claims
            .get("nbf")
            .and_then(date)
            .is_none_or(|nbf| nbf < now - 1.0)
        && claims
            .get("iat")
            .and_then(date)
            .is_none_or(|iat| iat < now - 1.0);
    let near_edge = (exp - now).abs() <= 1.0
        || claims
            .get("nbf")
            .and_then(date)
            .is_some_and(|d| (d - now).abs() <= 1.0)
        || claims
            .get("iat")
            .and_then(date)
            .is_some_and(|d| (d - now).abs() <= 1.0)
        || claims
            .get("fresh")
            .and_then(date)
            .is_some_and(|d| (d - now).abs() <= 1.0);
    if near_edge {
        return None; // the clock moves between the model and the check
    }
    let access = claims.get("type").is_none_or(|t| t == "access");
    let fresh = claims
        .get("fresh")
        .is_some_and(|f| f == &Value::Bool(true) || date(f).is_some_and(|until| until > now));
    Some(in_time && access && fresh)
}

fuzz_target!(|data: &[u8]| {
    let token = sign(data);
    let verdict = AUTHX.verify_offline::<NoExtra>(&token, &Requirement::fresh());
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(data) else {
        assert!(verdict.is_err(), "a non-object payload was accepted");
        return;
    };
    // serde_json::Value keeps the last of duplicated members; we refuse them.
    let now = NumericDate::now().as_secs_f64();
    // Through Keycloak's paths: the model's roles, or a refusal where a value
    // on a path has the wrong type.
    let with_roles = KEYCLOAK.verify_offline::<NoExtra>(&token, &Requirement::fresh());
    match (&verdict, model_roles(&claims), &with_roles) {
        (Ok(_), Some(roles), Ok(read)) => {
            assert_eq!(read.permissions().iter().collect::<Vec<_>>(), roles);
        }
        (Ok(_), Some(_), Err(e)) if !has_duplicates(data) => {
            panic!("refused through the paths ({e:?}), the model reads them: {claims:?}");
        }
        (Ok(_), None, Ok(_)) => panic!("a wrongly typed path was accepted: {claims:?}"),
        (Err(_), _, Ok(_)) => panic!("accepted only through the paths: {claims:?}"),
        _ => {}
    }
    if let Some(expected) = model_accepts(&claims, now) {
        if verdict.is_ok() {
            assert!(expected, "accepted, the model refuses: {claims:?}");
        } else if expected && !has_duplicates(data) {
            panic!(
                "refused ({:?}), the model accepts: {claims:?}",
                verdict.err()
            );
        }
    }
});

/// Whether the raw payload repeats a member name at the top level (a cheap
/// over-approximation: any repeated `"name":` counts).
fn has_duplicates(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let names: Vec<&str> = text.split('"').skip(1).step_by(2).collect();
    let mut seen = std::collections::HashSet::new();
    names.iter().any(|n| !seen.insert(*n))
}
