//! base64url as JWS writes it (RFC 7515 2): no padding, canonical (no stray
//! bits), decoded on every request, so by a SIMD decoder, onto the caller's
//! stack buffer when it fits.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use base64_simd::{Out, URL_SAFE_NO_PAD};

/// Stack room to decode into, left uninitialized: zeroing the 2.5 KB a
/// request's header and payload buffers hold cost more than decoding them.
pub(crate) fn stack<const N: usize>() -> [MaybeUninit<u8>; N] {
    [MaybeUninit::uninit(); N]
}

/// `input` decoded into `stack` when it fits (the common case: no
/// allocation), else onto the heap; `None` for anything not canonical
/// base64url without padding. Only the decoded bytes are ever read.
pub(crate) fn decode<'a>(input: &str, stack: &'a mut [MaybeUninit<u8>]) -> Option<Cow<'a, [u8]>> {
    let input = input.as_bytes();
    let len = URL_SAFE_NO_PAD.decoded_length(input).ok()?;
    match stack.get_mut(..len) {
        Some(out) => URL_SAFE_NO_PAD
            .decode(input, Out::from_uninit_slice(out))
            .ok()
            .map(|decoded| Cow::Borrowed(&*decoded)),
        None => URL_SAFE_NO_PAD.decode_to_vec(input).ok().map(Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as REFERENCE;

    /// The same answers as the `base64` crate's strict decoder, on every
    /// length and on every kind of flaw, in the stack buffer and beyond it.
    #[test]
    fn agrees_with_the_base64_crate() {
        let mut inputs: Vec<String> = [
            "",
            "e",
            "eyA",
            "eyB",
            "eyAx",
            "eyA=",
            "ey A",
            "ey+A",
            "ey/A",
            "ey-A",
            "ey_A",
            "YQ",
            "YR",
            "YWI",
            "YWJ",
            "YQ==",
            "ab\ncd",
            "é",
            "eyJhIjoxfQ",
            "eyJhIjoxfR",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let good = REFERENCE.encode(&bytes);
            inputs.push(good.clone());
            // One character changed at each of a few places, to every kind of byte.
            for (at, byte) in [
                (0, b'.'),
                (good.len() / 2, b'='),
                (good.len().saturating_sub(1), b'B'),
            ] {
                if at < good.len() {
                    let mut bad = good.clone().into_bytes();
                    bad[at] = byte;
                    inputs.push(String::from_utf8(bad).unwrap());
                }
            }
            inputs.push(format!("{good}="));
            inputs.push(format!("{good}A"));
        }
        for input in &inputs {
            let expected = REFERENCE.decode(input).ok();
            for stack_len in [0, 64, 2048] {
                let mut stack = vec![std::mem::MaybeUninit::uninit(); stack_len];
                let got = super::decode(input, &mut stack).map(|d| d.into_owned());
                assert_eq!(got, expected, "{input:?} with a stack of {stack_len}");
            }
        }
    }
}
