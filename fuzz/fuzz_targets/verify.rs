//! Arbitrary bytes as a token through the whole verify path. Never a panic,
//! never accepted.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tower_authx::{AuthX, AuthXConfig, NoExtra, Requirement};

static AUTHX: LazyLock<AuthX> = LazyLock::new(|| {
    AuthX::new(AuthXConfig::from_secret("fuzzing-secret-of-at-least-32-bytes").unwrap()).unwrap()
});

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    assert!(
        AUTHX
            .verify_offline::<NoExtra>(&token, &Requirement::any_type())
            .is_err()
    );
});
