//! jsonwebtoken 12 as the oracle (issue 39): arbitrary header and claims
//! texts, signed honestly (or not) for a key of one of three algorithms, are
//! verified by this crate and by `jsonwebtoken::decode` under the equivalent
//! `Validation`. We never accept what jsonwebtoken refuses, and where we
//! refuse what it accepts our refusal names a documented strictness
//! (SECURITY.md, "Stricter than jsonwebtoken, on purpose").
//!
//! Input: one selector byte (algorithm, signature, issuer and audience
//! settings), then the header text, a 0xFF byte, the claims text.
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_authx::{Algorithm, Requirement};

#[path = "../../dev/tests/oracle/mod.rs"]
mod oracle;

/// Fast to sign: HMAC, ECDSA, EdDSA (RSA signing would slow every run).
const ALGS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA];

/// Every (algorithm, issuer, audience) pair, made once.
static PAIRS: LazyLock<Vec<oracle::Pair>> = LazyLock::new(|| {
    let mut pairs = Vec::new();
    for alg in ALGS {
        for iss in [None, Some("https://a")] {
            for aud in [None, Some("api")] {
                pairs.push(oracle::pair(alg, iss, aud));
            }
        }
    }
    pairs
});

static KEYS: LazyLock<Vec<jsonwebtoken::EncodingKey>> =
    LazyLock::new(|| ALGS.iter().map(|alg| oracle::encoding(*alg)).collect());

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(2, |b| *b == 0xFF);
    let (header, claims) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let which = usize::from(selector) % 12;
    let alg = ALGS[which / 4];
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = match (selector / 12) % 3 {
        0 => jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &KEYS[which / 4],
            oracle::their_alg(alg),
        )
        .unwrap(),
        1 => String::new(),
        _ => "AAAA".to_owned(),
    };
    let token = format!("{message}.{signature}");
    let pair = &PAIRS[which];
    let ours = pair
        .ours
        .verify_offline::<Value>(&token, &Requirement::any_type());
    let theirs = jsonwebtoken::decode::<Value>(&token, &pair.theirs.0, &pair.theirs.1);
    match (ours, theirs) {
        (Ok(_), Err(e)) => panic!("we accept what jsonwebtoken refuses ({e:?}): {token}"),
        (Err(e), Ok(_)) => assert!(
            oracle::strictness_of(&e.to_string()).is_some(),
            "we refuse ({e}) what jsonwebtoken accepts, for no documented reason: {token}"
        ),
        _ => {}
    }
});
