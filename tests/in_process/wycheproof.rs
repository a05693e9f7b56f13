//! Wycheproof's vectors (tests/fixtures/wycheproof/, unchanged) through our
//! verification path: whole JWS and JWK sets through `KeySet::from_jwks` and
//! `AuthX::verify`, and every signature vector of the algorithms we verify
//! through `Key::verify_signature`, the check every token goes through.
//!
//! "valid" must verify (or, for a JWS, pass the signature: the vectors sign
//! `foo`-like payloads, not claims), "invalid" must be refused. Our documented
//! choices: ES512 (P-521) is not supported, so its vectors are refused; a key
//! serves only the algorithm its JWK declares (RFC 7517 4.4), so a PS384 JWS
//! under a key declared PS256 is refused; HS256 takes full 32-byte tags only
//! (JWS has no truncated MACs); "acceptable" vectors are counted, either way.
//! Four JWS vectors of this copy contradict the rest and RFC 7515, and are
//! checked the other way (see `CONTRADICTORY`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tower_authx::{
    Algorithm, AuthError, AuthX, AuthXConfig, InvalidToken, Key, KeySet, NoExtra, Requirement,
};

fn vectors(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/wycheproof/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn groups(file: &Value) -> &Vec<Value> {
    file["testGroups"].as_array().unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Tallies, and the line a reader sees in the test output.
#[derive(Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable_accepted: usize,
    acceptable_refused: usize,
    unsupported: usize,
    contradictory: usize,
}

impl Tally {
    /// Checks one vector's verdict against its label and counts it. A vector
    /// labelled valid that one of our documented choices refuses
    /// (`refused_by_choice`) must be refused.
    fn record(&mut self, result: &str, passed: bool, refused_by_choice: bool, what: &str) {
        match result {
            "valid" if refused_by_choice => {
                assert!(!passed, "{what}: passed, though our choice refuses it");
                self.unsupported += 1;
            }
            "valid" => {
                assert!(passed, "{what}: refused");
                self.valid += 1;
            }
            "invalid" => {
                assert!(!passed, "{what}: passed");
                self.invalid += 1;
            }
            _ if passed => self.acceptable_accepted += 1,
            _ => self.acceptable_refused += 1,
        }
    }

    fn report(&self, file: &str, expected: u64) {
        let total = self.valid
            + self.invalid
            + self.acceptable_accepted
            + self.acceptable_refused
            + self.unsupported
            + self.contradictory;
        println!(
            "wycheproof {file}: {total} vectors: {} valid verified, {} invalid refused, \
             acceptable {} accepted / {} refused, {} refused by our documented choices, \
             {} contradictory vectors checked the other way",
            self.valid,
            self.invalid,
            self.acceptable_accepted,
            self.acceptable_refused,
            self.unsupported,
            self.contradictory
        );
        assert_eq!(total as u64, expected, "{file}: every vector checked");
    }
}

/// A JWS against a key set: whether it passed the signature (a vector's
/// payload is no claim set, so passing means stopping at the claims).
fn passes_signature(authx: &AuthX, jws: &str) -> bool {
    match authx.verify_offline::<NoExtra>(jws, &Requirement::any_type()) {
        Ok(_) => panic!("a Wycheproof payload was accepted as claims: {jws}"),
        Err(AuthError::InvalidToken(InvalidToken::Claims(_))) => true,
        Err(_) => false,
    }
}

/// JWS vectors whose label cannot be right, with what we do instead:
/// - 367 and 370 ("invalidBase64Padding") are byte for byte tcId 357
///   ("ValidMac"): the padding they were about is gone from the copy, and the
///   same input gets the same answer: it verifies.
/// - 372 and 373 insert `?` into the header or payload and are labelled valid:
///   `?` is no base64url character (RFC 7515 2), so they are refused.
const CONTRADICTORY: [(u64, bool); 4] = [(367, true), (370, true), (372, false), (373, false)];

/// Runs a JWS file whose groups hold a key (`public`/`private`: one JWK, or a
/// JWKS in `keys`).
fn jws_file(name: &str, unsupported: &[&str]) {
    let file = vectors(name);
    let mut tally = Tally::default();
    for group in groups(&file) {
        let key = group.get("public").unwrap_or(&group["private"]);
        let jwks = if key.get("keys").is_some() {
            key.clone()
        } else {
            serde_json::json!({ "keys": [key] })
        };
        let authx = KeySet::from_jwks(&jwks.to_string())
            .and_then(|keys| AuthX::new(AuthXConfig::new(keys)));
        let key_alg = key["alg"].as_str();
        for test in group["tests"].as_array().unwrap() {
            let (id, comment) = (&test["tcId"], &test["comment"]);
            let jws = test["jws"].as_str().expect("compact JWS");
            let jws_alg = jws
                .split('.')
                .next()
                .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
                .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
                .and_then(|h| h["alg"].as_str().map(str::to_owned));
            let is_unsupported = key_alg.is_some_and(|alg| unsupported.contains(&alg))
                || key_alg.zip(jws_alg.as_deref()).is_some_and(|(k, j)| k != j);
            let passed = authx.as_ref().is_ok_and(|a| passes_signature(a, jws));
            if let Some((_, expected)) = CONTRADICTORY
                .iter()
                .find(|(tc, _)| name == "json_web_signature_test.json" && id == tc)
            {
                assert_eq!(passed, *expected, "tcId {id} ({comment})");
                tally.contradictory += 1;
                continue;
            }
            let what = format!("{name} tcId {id} ({comment}), keys {authx:?}");
            tally.record(
                test["result"].as_str().unwrap(),
                passed,
                is_unsupported,
                &what,
            );
        }
    }
    tally.report(name, file["numberOfTests"].as_u64().unwrap());
}

#[test]
fn json_web_signatures() {
    jws_file("json_web_signature_test.json", &["ES521", "ES512"]);
}

#[test]
fn json_web_key_sets() {
    jws_file("json_web_key_test.json", &[]);
}

/// Runs a raw signature file: each group's public JWK (member `jwk_member`,
/// or its DER SubjectPublicKeyInfo where the group has no JWK) as a key for
/// `alg`, each vector's `msg` and `sig` through `verify_signature`.
fn signature_file(name: &str, alg: Algorithm, jwk_member: &str) {
    let file = vectors(name);
    let mut tally = Tally::default();
    for group in groups(&file) {
        let key = match group.get(jwk_member) {
            Some(jwk) => Key::verifying_jwk(alg, &jwk.to_string()),
            None => Key::verifying_der(alg, &hex(group["publicKeyDer"].as_str().unwrap())),
        }
        .ok();
        for test in group["tests"].as_array().unwrap() {
            let (id, comment) = (&test["tcId"], &test["comment"]);
            let message = hex(test["msg"].as_str().unwrap());
            let signature = URL_SAFE_NO_PAD.encode(hex(test["sig"].as_str().unwrap()));
            let verified = key
                .as_ref()
                .is_some_and(|key| key.verify_signature(&message, &signature));
            let what = format!("{name} tcId {id} ({comment})");
            tally.record(test["result"].as_str().unwrap(), verified, false, &what);
        }
    }
    tally.report(name, file["numberOfTests"].as_u64().unwrap());
}

#[test]
fn es256_signatures() {
    signature_file(
        "ecdsa_secp256r1_sha256_p1363_test.json",
        Algorithm::ES256,
        "publicKeyJwk",
    );
}

#[test]
fn es384_signatures() {
    signature_file(
        "ecdsa_secp384r1_sha384_p1363_test.json",
        Algorithm::ES384,
        "publicKeyJwk",
    );
}

#[test]
fn eddsa_signatures() {
    signature_file("ed25519_test.json", Algorithm::EdDSA, "publicKeyJwk");
}

#[test]
fn rs256_signatures() {
    signature_file(
        "rsa_signature_2048_sha256_test.json",
        Algorithm::RS256,
        "keyJwk",
    );
}

#[test]
fn ps256_signatures() {
    signature_file(
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        Algorithm::PS256,
        "publicKeyJwk",
    );
}

#[test]
fn hs256_macs() {
    let name = "hmac_sha256_test.json";
    let file = vectors(name);
    let mut tally = Tally::default();
    for group in groups(&file) {
        let full_tags = group["tagSize"] == 256;
        for test in group["tests"].as_array().unwrap() {
            let (id, comment) = (&test["tcId"], &test["comment"]);
            let key = Key::hmac(Algorithm::HS256, hex(test["key"].as_str().unwrap())).unwrap();
            let message = hex(test["msg"].as_str().unwrap());
            let tag = URL_SAFE_NO_PAD.encode(hex(test["tag"].as_str().unwrap()));
            let verified = key.verify_signature(&message, &tag);
            let what = format!("{name} tcId {id} ({comment})");
            tally.record(
                test["result"].as_str().unwrap(),
                verified,
                !full_tags,
                &what,
            );
        }
    }
    tally.report(name, file["numberOfTests"].as_u64().unwrap());
}

#[test]
fn jwks_must_fit_the_algorithm() {
    let ec = r#"{"kty":"EC","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}"#;
    use tower_authx::Algorithm::*;
    assert!(Key::verifying_jwk(ES256, ec).is_ok());
    for wrong in [HS256, RS256, ES384, EdDSA] {
        assert!(Key::verifying_jwk(wrong, ec).is_err(), "{wrong}");
    }
    let declared_es384 = ec.replace(r#""kty""#, r#""alg":"ES384","kty""#);
    assert!(Key::verifying_jwk(ES256, &declared_es384).is_err());
    let for_encryption = ec.replace(r#""kty""#, r#""use":"enc","kty""#);
    assert!(Key::verifying_jwk(ES256, &for_encryption).is_err());
    assert!(Key::verifying_jwk(HS256, r#"{"kty":"oct"}"#).is_err());
    assert!(Key::verifying_jwk(HS256, "not json").is_err());
}
