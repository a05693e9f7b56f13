//! Arbitrary bytes as an authorization server's introspection answer. Never
//! a panic; an answer taken as active is one a plain JSON reader also reads
//! as `"active": true` from `https://as.example` (or naming no issuer), and
//! what it becomes is a claims payload the claims reader handles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_authx::Claims;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(payload)) = tower_authx::introspection::fuzz_answer(data) else {
        return;
    };
    let plain: Value = serde_json::from_slice(data).expect("taken, so it is JSON");
    assert_eq!(plain["active"], Value::Bool(true), "taken as active");
    assert!(
        plain.get("iss").is_none() || plain["iss"] == "https://as.example",
        "another issuer's answer taken"
    );
    let claims: Value = serde_json::from_slice(&payload).expect("a JSON payload");
    assert!(claims.get("active").is_none());
    assert_eq!(claims["iss"], "https://as.example");
    // Read as a token's claims would be: refused or taken, never a panic.
    let _ = serde_json::from_slice::<Claims<Value>>(&payload);
});
