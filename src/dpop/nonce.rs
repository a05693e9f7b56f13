//! Server nonces (RFC 9449 8 and 9) that every instance accepts without
//! shared state: a nonce is its time slice and a keyed MAC of it, so any
//! instance holding the same secret makes and checks the same nonces. They
//! rotate with the slice; the current and the previous one are accepted, so a
//! nonce lives between one and two periods.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::claims::NumericDate;

/// The bytes of a nonce: the slice (8) and the truncated MAC (16).
const NONCE_LEN: usize = 24;

/// Makes and checks nonces with one secret.
#[derive(Clone)]
pub(crate) struct Nonces {
    secret: Vec<u8>,
    period: u64,
}

impl Nonces {
    pub(crate) fn new(secret: Vec<u8>, period: Duration) -> Nonces {
        Nonces {
            secret,
            period: period.as_secs().max(1),
        }
    }

    fn slice(&self, now: NumericDate) -> u64 {
        now.as_secs_f64() as u64 / self.period
    }

    fn mac(&self, slice: u64) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(b"tower-authx DPoP nonce\0");
        mac.update(&slice.to_be_bytes());
        mac
    }

    /// The nonce to hand out now.
    pub(crate) fn current(&self, now: NumericDate) -> String {
        let slice = self.slice(now);
        let tag = self.mac(slice).finalize().into_bytes();
        let mut raw = [0u8; NONCE_LEN];
        raw[..8].copy_from_slice(&slice.to_be_bytes());
        raw[8..].copy_from_slice(&tag[..NONCE_LEN - 8]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `nonce` is one of ours, of this slice or the previous one.
    pub(crate) fn accepts(&self, nonce: &str, now: NumericDate) -> bool {
        if nonce.len() != NONCE_LEN.div_ceil(3) * 4 {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Ok(slice) = <[u8; 8]>::try_from(&raw[..8]) else {
            return false;
        };
        let slice = u64::from_be_bytes(slice);
        let current = self.slice(now);
        (slice == current || slice.checked_add(1) == Some(current))
            && self.mac(slice).verify_truncated_left(&raw[8..]).is_ok()
    }
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("period_secs", &self.period)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> NumericDate {
        NumericDate::from_system_time(std::time::UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn a_nonce_lives_one_to_two_periods_on_every_instance_with_the_secret() {
        let a = Nonces::new(vec![1; 32], Duration::from_secs(60));
        let b = Nonces::new(vec![1; 32], Duration::from_secs(60));
        let nonce = a.current(at(6000));
        assert!(b.accepts(&nonce, at(6000)));
        assert!(b.accepts(&nonce, at(6119)));
        assert!(!b.accepts(&nonce, at(6120)), "two periods on");
        assert!(!b.accepts(&nonce, at(5999)), "from the future");
        let other = Nonces::new(vec![2; 32], Duration::from_secs(60));
        assert!(!other.accepts(&nonce, at(6000)), "another secret");
    }

    #[test]
    fn forged_or_malformed_nonces_are_refused() {
        let n = Nonces::new(vec![1; 32], Duration::from_secs(60));
        let good = n.current(at(6000));
        let mut raw = URL_SAFE_NO_PAD.decode(&good).unwrap();
        raw[23] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(&raw);
        for bad in [
            "",
            "x",
            &good[..31],
            &format!("{good}A"),
            &tampered,
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert!(!n.accepts(bad, at(6000)), "{bad}");
        }
    }
}
