//! Key material from anywhere (a PEM file, DER, a JWK from a fetched JWKS):
//! never a panic, whatever the bytes; a key that loads verifies without one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_authx::{Algorithm, Key};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let alg = Algorithm::ALL[usize::from(selector) % Algorithm::ALL.len()];
    let keys = [
        Key::verifying_der(alg, bytes),
        Key::signing_der(alg, bytes),
        Key::verifying_pem(alg, bytes),
        Key::signing_pem(alg, bytes),
        Key::verifying_jwk(alg, &String::from_utf8_lossy(bytes)),
    ];
    for key in keys.into_iter().flatten() {
        let _ = key.verify_signature(b"a.b", "c2lnbmF0dXJl");
    }
});
