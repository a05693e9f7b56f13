//! Arbitrary bytes as a JWKS document (configured with `KeySet::from_jwks`, or
//! fetched: the same parser), then tokens of every algorithm naming its kids.
//! Never a panic, never a token accepted: the keys are the fuzzer's, the
//! signatures are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_authx::{AuthX, AuthXConfig, KeySet, NoExtra, Requirement};

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fuzz_target!(|data: &[u8]| {
    let Ok(document) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(keys) = KeySet::from_jwks(document) else {
        return;
    };
    let Ok(authx) = AuthX::new(AuthXConfig::new(keys)) else {
        return;
    };
    let kids: Vec<String> = serde_json::from_str::<serde_json::Value>(document)
        .ok()
        .and_then(|d| d["keys"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .chain([String::new()])
        .collect();
    let payload = b64(br#"{"sub":"u","type":"access","exp":99999999999}"#);
    for alg in ["HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA"] {
        for kid in &kids {
            let header = if kid.is_empty() {
                format!(r#"{{"alg":"{alg}"}}"#)
            } else {
                format!(r#"{{"alg":"{alg}","kid":{}}}"#, serde_json::json!(kid))
            };
            for signature in [vec![], vec![0u8; 64], vec![1u8; 64], vec![0u8; 96], vec![7u8; 256]] {
                let token = format!("{}.{payload}.{}", b64(header.as_bytes()), b64(&signature));
                assert!(authx.verify_offline::<NoExtra>(&token, &Requirement::any_type()).is_err());
            }
        }
    }
});
