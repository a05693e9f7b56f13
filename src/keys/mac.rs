//! HMAC (HS256, HS384, HS512): verification without allocating, with the
//! secret's inner and outer blocks hashed once per key (setting them up per
//! token cost as much as the hashing itself).

use hmac::{Hmac, KeyInit, Mac as _};
use sha2::{Sha256, Sha384, Sha512};

use super::Algorithm;
use crate::base64url;

/// A secret, ready to verify tags.
#[derive(Clone)]
pub(crate) enum Mac {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
}

impl Mac {
    pub(crate) fn new(alg: Algorithm, secret: &[u8]) -> Option<Mac> {
        Some(match alg {
            Algorithm::HS256 => Mac::Hs256(KeyInit::new_from_slice(secret).ok()?),
            Algorithm::HS384 => Mac::Hs384(KeyInit::new_from_slice(secret).ok()?),
            Algorithm::HS512 => Mac::Hs512(KeyInit::new_from_slice(secret).ok()?),
            _ => return None,
        })
    }

    /// The full tag of `message`.
    pub(crate) fn tag(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Mac::Hs256(mac) => mac
                .clone()
                .chain_update(message)
                .finalize()
                .into_bytes()
                .to_vec(),
            Mac::Hs384(mac) => mac
                .clone()
                .chain_update(message)
                .finalize()
                .into_bytes()
                .to_vec(),
            Mac::Hs512(mac) => mac
                .clone()
                .chain_update(message)
                .finalize()
                .into_bytes()
                .to_vec(),
        }
    }

    /// Whether `tag_b64` (base64url, canonical, no padding) is the full tag
    /// of `message`; compared in constant time. Truncated tags are refused.
    pub(crate) fn verify(&self, message: &[u8], tag_b64: &str) -> bool {
        // The longest tag (64 bytes) is 86 characters.
        let mut stack = base64url::stack::<64>();
        if tag_b64.len() > 86 {
            return false;
        }
        let Some(tag) = base64url::decode(tag_b64, &mut stack) else {
            return false;
        };
        match self {
            Mac::Hs256(mac) => mac.clone().chain_update(message).verify_slice(&tag).is_ok(),
            Mac::Hs384(mac) => mac.clone().chain_update(message).verify_slice(&tag).is_ok(),
            Mac::Hs512(mac) => mac.clone().chain_update(message).verify_slice(&tag).is_ok(),
        }
    }
}
