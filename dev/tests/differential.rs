//! jsonwebtoken 12 as the differential oracle: generated and mutated tokens
//! (headers, claims, signatures; keys of every algorithm) verified by this
//! crate and by `jsonwebtoken::decode` under the equivalent `Validation`.
//! Every difference must be one of this crate's documented strictnesses
//! (SECURITY.md, "Stricter than jsonwebtoken, on purpose"): anything else is
//! a bug, in one or the other. The fuzz target `fuzz/fuzz_targets/
//! differential.rs` explores the same comparison for longer.

#[path = "oracle/mod.rs"]
mod oracle;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oracle::{ALGS, encoding, pair, strictness_of, their_alg};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::now;
use tower_authx::{Algorithm, Requirement};

/// What a generated token is made of, kept to name a difference's reason.
#[derive(Debug, Clone)]
struct Made {
    header: String,
    claims: String,
    signature: u8,
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn token(alg: Algorithm, made: &Made) -> String {
    let message = format!("{}.{}", b64(&made.header), b64(&made.claims));
    let signature = match made.signature {
        // Signed by the configured key.
        0 => {
            jsonwebtoken::crypto::sign(message.as_bytes(), &encoding(alg), their_alg(alg)).unwrap()
        }
        // Signed by another algorithm's key.
        1 => {
            let other = ALGS[(ALGS.iter().position(|a| *a == alg).unwrap() + 3) % ALGS.len()];
            jsonwebtoken::crypto::sign(message.as_bytes(), &encoding(other), their_alg(other))
                .unwrap()
        }
        // No signature.
        2 => String::new(),
        // One character changed.
        _ => {
            let mut signature =
                jsonwebtoken::crypto::sign(message.as_bytes(), &encoding(alg), their_alg(alg))
                    .unwrap();
            let last = signature.pop().unwrap();
            signature.push(if last == 'A' { 'B' } else { 'A' });
            signature
        }
    };
    format!("{message}.{signature}")
}

/// Why this crate may refuse what jsonwebtoken accepts: the documented
/// strictnesses that `made` shows, in SECURITY.md's words.
fn strictnesses(made: &Made, header: &Value, claims: &Value) -> Vec<&'static str> {
    let mut why = Vec::new();
    let duplicates = |text: &str| {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
            return false;
        };
        map.keys()
            .any(|k| text.matches(&format!("\"{k}\":")).count() > 1)
    };
    if duplicates(&made.header) || duplicates(&made.claims) {
        why.push("a member named twice");
    }
    if !claims.get("sub").is_some_and(Value::is_string) {
        why.push("sub is required, a string");
    }
    if header.get("kid").is_some() {
        why.push("a kid names one of our keys");
    }
    if header.get("crit").is_some() {
        why.push("crit names an extension we do not understand");
    }
    if header
        .get("typ")
        .is_some_and(|typ| !matches!(typ.as_str(), Some("JWT" | "at+jwt")))
    {
        why.push("typ other than JWT or at+jwt");
    }
    if claims.get("iss").is_some_and(|iss| !iss.is_string()) {
        why.push("iss is one string");
    }
    for date in ["exp", "nbf", "iat"] {
        if claims.get(date).is_some_and(|d| {
            !d.as_f64()
                .is_some_and(|d| (0.0..253_402_300_800.0).contains(&d))
        }) {
            why.push("NumericDates are numbers up to the year 9999");
        }
    }
    if claims
        .get("iat")
        .and_then(Value::as_f64)
        .is_some_and(|iat| iat > now() as f64)
    {
        why.push("iat not in the future");
    }
    if claims.get("nonce").is_some() {
        why.push("an ID token's nonce");
    }
    why
}

fn headers() -> impl Strategy<Value = String> {
    let alg = prop_oneof![
        8 => Just(None),
        1 => Just(Some("none")),
        1 => Just(Some("HS256")),
        1 => Just(Some("RS256")),
        1 => Just(Some("ES256")),
    ];
    let typ = prop_oneof![
        4 => Just(None),
        4 => Just(Some(json!("JWT"))),
        1 => Just(Some(json!("at+jwt"))),
        1 => Just(Some(json!("dpop+jwt"))),
        1 => Just(Some(json!(7))),
    ];
    let extra = prop_oneof![
        8 => Just(""),
        1 => Just(r#","crit":["exp"]"#),
        1 => Just(r#","kid":"k1""#),
        1 => Just(r#","alg":"none""#),
    ];
    (alg, typ, extra).prop_map(|(alg, typ, extra)| {
        let alg = alg.map_or_else(|| "\u{0}".to_owned(), |a| format!("\"{a}\""));
        let typ = typ.map_or_else(String::new, |t| format!(r#","typ":{t}"#));
        format!(r#"{{"alg":{alg}{typ}{extra}}}"#)
    })
}

fn claims() -> impl Strategy<Value = String> {
    let t = now() as i64;
    let sub = prop_oneof![8 => Just(Some(json!("u"))), 1 => Just(Some(json!(7))), 1 => Just(None)];
    let exp = prop_oneof![
        1 => Just(None),
        2 => Just(Some(json!(t - 100))),
        6 => Just(Some(json!(t + 100))),
        1 => Just(Some(json!(t as f64 + 100.5))),
        1 => Just(Some(json!("9999999999"))),
        1 => Just(Some(json!(1e20))),
    ];
    let nbf = prop_oneof![6 => Just(None), 1 => Just(Some(json!(t - 100))), 1 => Just(Some(json!(t + 100))), 1 => Just(Some(json!("0")))];
    let iat = prop_oneof![4 => Just(Some(json!(t - 10))), 2 => Just(None), 1 => Just(Some(json!(t + 1000)))];
    let iss = prop_oneof![
        3 => Just(None),
        3 => Just(Some(json!("https://a"))),
        1 => Just(Some(json!("https://b"))),
        1 => Just(Some(json!(["https://a"]))),
    ];
    let aud = prop_oneof![
        3 => Just(None),
        3 => Just(Some(json!("api"))),
        1 => Just(Some(json!(["api", "x"]))),
        1 => Just(Some(json!(["x"]))),
        1 => Just(Some(json!(7))),
    ];
    let extra = prop_oneof![
        8 => Just(""),
        1 => Just(r#","sub":"v""#),
        1 => Just(r#","x":1,"x":2"#),
        1 => Just(r#","nonce":"n""#),
    ];
    (sub, exp, nbf, iat, iss, aud, extra).prop_map(|(sub, exp, nbf, iat, iss, aud, extra)| {
        let mut map = serde_json::Map::new();
        for (name, value) in [
            ("sub", sub),
            ("exp", exp),
            ("nbf", nbf),
            ("iat", iat),
            ("iss", iss),
            ("aud", aud),
        ] {
            if let Some(value) = value {
                map.insert(name.into(), value);
            }
        }
        let text = Value::Object(map).to_string();
        format!("{}{extra}}}", &text[..text.len() - 1])
    })
}

/// The differences seen, by reason, for the summary printed at the end.
static SEEN: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_difference_from_jsonwebtoken_is_a_documented_strictness(
        alg in prop::sample::select(ALGS.to_vec()),
        header in headers(),
        claims in claims(),
        signature in prop_oneof![8 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3)],
        iss in prop_oneof![Just(None), Just(Some("https://a"))],
        aud in prop_oneof![Just(None), Just(Some("api"))],
    ) {
        // The header's alg, when the strategy left it to the key.
        let header = header.replace('\u{0}', &format!("\"{}\"", alg.as_str()));
        let made = Made { header, claims, signature };
        let token = token(alg, &made);
        let pair = pair(alg, iss, aud);
        let ours = pair.ours.verify_offline::<Value>(&token, &Requirement::any_type());
        let theirs = jsonwebtoken::decode::<Value>(&token, &pair.theirs.0, &pair.theirs.1);
        let header: Value = serde_json::from_str(&made.header).unwrap_or(Value::Null);
        let claims: Value = serde_json::from_str(&made.claims).unwrap_or(Value::Null);
        match (&ours, &theirs) {
            (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
            (Err(e), Ok(_)) => {
                // Our refusal names the strictness, and the token shows it.
                let named = strictness_of(&e.to_string());
                let shown = strictnesses(&made, &header, &claims);
                prop_assert!(
                    named.is_some_and(|named| shown.contains(&named)),
                    "we refuse ({e}) what jsonwebtoken accepts, for no documented reason \
                     ({named:?}; the token shows {shown:?}): {made:?}"
                );
                *SEEN.lock().unwrap().entry(named.unwrap_or_default().to_owned()).or_default() += 1;
            }
            (Ok(_), Err(e)) => {
                prop_assert!(false, "we accept what jsonwebtoken refuses ({e:?}): {made:?}");
            }
        }
    }
}

/// Runs after the property (tests in one binary run in name order on one
/// thread when asked; here it only prints, so order does not matter).
#[test]
fn zz_the_differences_seen() {
    for (why, count) in SEEN.lock().unwrap().iter() {
        println!("differs ({count}): {why}");
    }
}
