//! Arbitrary bytes as the claims of a correctly signed token: whatever the JSON
//! says, the verdict must match a plain model of the rules (types never coerced,
//! `exp` in the future, freshness), and nothing may panic.
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_authx::{AuthX, AuthXConfig, NoExtra, NumericDate, Requirement};

const SECRET: &[u8] = b"fuzzing-secret-of-at-least-32-bytes";

static AUTHX: LazyLock<AuthX> =
    LazyLock::new(|| AuthX::new(AuthXConfig::from_secret(SECRET).unwrap()).unwrap());

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
