//! The differential oracle shared by `dev/tests/differential.rs` and the fuzz
//! target `fuzz/fuzz_targets/differential.rs`: jsonwebtoken 12 and this
//! crate configured alike for one key of one algorithm, and the documented
//! strictnesses (SECURITY.md) our refusals may name where jsonwebtoken
//! accepts.
#![allow(dead_code)]

use tower_authx::{Algorithm, AuthX, AuthXConfig, Key};

pub const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/keys/");
pub const SECRET: [u8; 64] = [7; 64];

/// The algorithms compared, each with its key.
pub const ALGS: [Algorithm; 8] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub fn pem(file: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}{file}")).unwrap()
}

pub fn private_file(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ec256_private.pem",
        Algorithm::ES384 => "ec384_private.pem",
        Algorithm::EdDSA => "ed25519_private.pem",
        _ => "rsa_private.pem",
    }
}

pub fn our_key(alg: Algorithm) -> Key {
    if alg.is_hmac() {
        Key::hmac(alg, SECRET).unwrap()
    } else {
        Key::signing_pem(alg, &pem(private_file(alg))).unwrap()
    }
}

pub fn their_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    alg.as_str().parse().unwrap()
}

pub fn encoding(alg: Algorithm) -> jsonwebtoken::EncodingKey {
    use jsonwebtoken::EncodingKey as E;
    match alg {
        a if a.is_hmac() => E::from_secret(&SECRET).unwrap(),
        Algorithm::ES256 | Algorithm::ES384 => E::from_ec_pem(&pem(private_file(alg))).unwrap(),
        Algorithm::EdDSA => E::from_ed_pem(&pem(private_file(alg))).unwrap(),
        _ => E::from_rsa_pem(&pem(private_file(alg))).unwrap(),
    }
}

/// jsonwebtoken's key for `alg`: the public half, as it reads it.
pub fn decoding(alg: Algorithm) -> jsonwebtoken::DecodingKey {
    use jsonwebtoken::DecodingKey as D;
    match alg {
        a if a.is_hmac() => D::from_secret(&SECRET).unwrap(),
        Algorithm::ES256 => D::from_ec_pem(&pem("ec256_public.pem")).unwrap(),
        Algorithm::ES384 => D::from_ec_pem(&pem("ec384_public.pem")).unwrap(),
        Algorithm::EdDSA => D::from_ed_pem(&pem("ed25519_public.pem")).unwrap(),
        _ => D::from_rsa_pem(&pem("rsa_public.pem")).unwrap(),
    }
}

/// The two verifiers, configured alike: one key for one algorithm, no
/// leeway, `exp` required and `nbf` checked, and the issuer and audience
/// when configured (then required, as ours requires them).
pub struct Pair {
    pub ours: AuthX,
    pub theirs: (jsonwebtoken::DecodingKey, jsonwebtoken::Validation),
}

pub fn pair(alg: Algorithm, iss: Option<&str>, aud: Option<&str>) -> Pair {
    let mut config = AuthXConfig::new(our_key(alg));
    let mut validation = jsonwebtoken::Validation::new(their_alg(alg));
    validation.leeway = 0;
    validation.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(iss) = iss {
        config = config.issuer(iss);
        validation.set_issuer(&[iss]);
        required.push("iss");
    }
    if let Some(aud) = aud {
        config = config.audience(aud);
        validation.set_audience(&[aud]);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    Pair {
        ours: AuthX::new(config).unwrap(),
        theirs: (decoding(alg), validation),
    }
}

/// The documented strictness our refusal `error` names, if any.
pub fn strictness_of(error: &str) -> Option<&'static str> {
    [
        ("duplicate", "a member named twice"),
        ("twice", "a member named twice"),
        ("claim 'sub'", "sub is required, a string"),
        ("unknown signing key (kid)", "a kid names one of our keys"),
        ("critical", "crit names an extension we do not understand"),
        ("header's typ", "typ other than JWT or at+jwt"),
        ("claim 'iss' must be a string", "iss is one string"),
        (
            "NumericDate",
            "NumericDates are numbers up to the year 9999",
        ),
        ("not yet valid (iat)", "iat not in the future"),
        ("'nonce' marks an ID token", "an ID token's nonce"),
    ]
    .into_iter()
    .find(|(said, _)| error.contains(said))
    .map(|(_, strictness)| strictness)
}
