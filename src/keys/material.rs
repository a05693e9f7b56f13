//! Key material checked before any crypto library sees it: key types and
//! point sizes, RSA moduli and exponents (and the ROCA fingerprint), Ed25519
//! points of small order or not canonical.

use super::Algorithm;
use super::der::PublicDer;
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

/// A public key's material fit for `alg`, checked before any crypto library
/// sees it, whatever it came from (a JWK, a PEM, a DER, a private key): the
/// key type and curve of the algorithm, exact point sizes (a 3-byte Ed25519
/// key once made a backend panic at the first token naming it), sound RSA
/// numbers, no Ed25519 point of small order.
pub(super) fn check_public(alg: Algorithm, public: &PublicDer<'_>) -> Result<(), ConfigError> {
    let wrong_type = || ConfigError::unusable_key(format!("the key's type does not fit {alg}"));
    match (alg, public) {
        (Algorithm::EdDSA, PublicDer::Ed25519(x)) => check_ed25519_point(x),
        (Algorithm::ES256 | Algorithm::ES384, PublicDer::Ec { p384, point }) => {
            if *p384 != (alg == Algorithm::ES384) {
                return Err(wrong_type());
            }
            let coordinate = if *p384 { 48 } else { 32 };
            match point.split_first() {
                Some((4, xy)) if xy.len() == 2 * coordinate => Ok(()),
                _ => Err(ConfigError::unusable_key(format!(
                    "the {alg} key is not an uncompressed point of {coordinate}-byte coordinates"
                ))),
            }
        }
        (a, PublicDer::Rsa { n, e }) if a.is_rsa() => check_rsa(n, e),
        _ => Err(wrong_type()),
    }
}

/// An RSA public key fit to verify: a modulus of 2048 to 8192 bits (RFC 7518
/// 3.3), odd, and not made by the ROCA-flawed generator (CVE-2017-15361: its
/// private key can be computed); an odd exponent from 3 to 2^33 - 1 (the
/// bound both backends verify with).
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), ConfigError> {
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    let e = &e[e.iter().take_while(|b| **b == 0).count()..];
    // Leading zeros stripped, the first byte (if any) is not zero: no
    // underflow, even for an empty or all-zero modulus (0 bits, refused).
    let bits = n.first().map_or(0, |first| {
        n.len().saturating_mul(8) - first.leading_zeros() as usize
    });
    if !(2048..=8192).contains(&bits) || n.last().is_none_or(|b| b % 2 == 0) {
        return Err(ConfigError::unusable_key(
            "the RSA key's modulus must be odd and have 2048 to 8192 bits",
        ));
    }
    let exponent = (e.len() <= 8).then(|| e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)));
    if !exponent.is_some_and(|e| (3..1 << 33).contains(&e) && e % 2 == 1) {
        return Err(ConfigError::unusable_key(
            "the RSA key's exponent must be odd, at least 3 and below 2^33",
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
