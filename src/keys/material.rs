//! Key material checked before any crypto library sees it: sizes and shapes
//! of a public JWK's members, RSA moduli and exponents (and the ROCA
//! fingerprint), Ed25519 points of small order or not canonical.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Algorithm;
use crate::error::ConfigError;

/// Whether a JWK may verify signatures: no `use` but `sig`, and `key_ops`, when
/// present, naming `verify`.
pub(crate) fn jwk_is_for_signatures(jwk: &serde_json::Value) -> bool {
    let use_ok = jwk.get("use").is_none_or(|u| u == "sig");
    let ops_ok = jwk.get("key_ops").is_none_or(|ops| {
        ops.as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"))
    });
    use_ok && ops_ok
}

/// The sizes and shapes of a public JWK's members, checked before any crypto
/// library sees them (a 3-byte Ed25519 key made jsonwebtoken panic at the first
/// token naming it).
pub(super) fn check_public_material<'a>(
    alg: Algorithm,
    member: &impl Fn(&str) -> Option<&'a str>,
) -> Result<(), ConfigError> {
    let bytes = |name: &str| -> Result<Vec<u8>, ConfigError> {
        member(name)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or_else(|| ConfigError::unusable_key(format!("the JWK has no base64url `{name}`")))
    };
    let exact = |name: &str, len: usize| -> Result<Vec<u8>, ConfigError> {
        let value = bytes(name)?;
        if value.len() != len {
            return Err(ConfigError::unusable_key(format!(
                "the {alg} JWK's `{name}` is {} bytes, not {len}",
                value.len()
            )));
        }
        Ok(value)
    };
    match alg {
        Algorithm::EdDSA => check_ed25519_point(&exact("x", 32)?),
        Algorithm::ES256 => exact("x", 32).and(exact("y", 32)).map(drop),
        Algorithm::ES384 => exact("x", 48).and(exact("y", 48)).map(drop),
        _ => check_rsa(&bytes("n")?, &bytes("e")?),
    }
}

/// An RSA public key fit to verify: a modulus of 2048 to 8192 bits (RFC 7518
/// 3.3), odd, and not made by the ROCA-flawed generator (CVE-2017-15361: its
/// private key can be computed); an odd exponent of at least 3 that fits 64 bits.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), ConfigError> {
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    let e = &e[e.iter().take_while(|b| **b == 0).count()..];
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) || n.last().is_none_or(|b| b % 2 == 0) {
        return Err(ConfigError::unusable_key(
            "the RSA key's modulus must be odd and have 2048 to 8192 bits",
        ));
    }
    let exponent = (e.len() <= 8).then(|| e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)));
    if !exponent.is_some_and(|e| e >= 3 && e % 2 == 1) {
        return Err(ConfigError::unusable_key(
            "the RSA key's exponent must be odd and at least 3",
        ));
    }
    if roca_fingerprint(n) {
        return Err(ConfigError::unusable_key(
            "the RSA key was made by a generator with the ROCA flaw (CVE-2017-15361)",
        ));
    }
    Ok(())
}

/// ROCA's test (Nemec et al., CCS 2017): a flawed modulus is, modulo each small
/// prime below, a power of 65537; a sound one almost never is for all of them.
fn roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u64; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n
            .iter()
            .fold(0u64, |acc, b| (acc * 256 + u64::from(*b)) % p);
        let generator = 65537 % p;
        let mut power = 1;
        for _ in 0..p {
            if power == residue {
                return true;
            }
            power = power * generator % p;
        }
        false
    })
}

/// Refuses an Ed25519 public key of small order (or a non-canonical encoding):
/// under such a key a forged signature (R = identity, S = 0) verifies.
fn check_ed25519_point(x: &[u8]) -> Result<(), ConfigError> {
    let mut y: [u8; 32] = x
        .try_into()
        .map_err(|_| ConfigError::unusable_key("an Ed25519 public key is 32 bytes"))?;
    y[31] &= 0x7f; // the sign of x does not change the order
    // p = 2^255 - 19: encodings of y >= p are non-canonical.
    let at_least_p = y[31] == 0x7f && y[1..31].iter().all(|b| *b == 0xff) && y[0] >= 0xed;
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    // The y of the points of order 8 (with either sign of x).
    const ORDER_8: [[u8; 32]; 2] = [
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
    ];
    let small = y == [0u8; 32] || y == one || y == minus_one || ORDER_8.contains(&y);
    if small || at_least_p {
        return Err(ConfigError::unusable_key(
            "the Ed25519 public key is of small order or not canonical",
        ));
    }
    Ok(())
}

/// The raw key of an Ed25519 SubjectPublicKeyInfo PEM, checked as a JWK's is.
pub(super) fn check_ed25519_pem(public_pem: &[u8]) -> Result<(), ConfigError> {
    const PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let text = String::from_utf8_lossy(public_pem);
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.trim().chars())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| ConfigError::unusable_key("the Ed25519 PEM is not base64"))?;
    match der.strip_prefix(&PREFIX[..]) {
        Some(x) if der.len() == 44 => check_ed25519_point(x),
        _ => Err(ConfigError::unusable_key(
            "the Ed25519 PEM is not a SubjectPublicKeyInfo of 32 bytes",
        )),
    }
}
