//! The few PEM and DER shapes keys arrive in, read strictly (RFC 7468 armour,
//! X.690 DER): SubjectPublicKeyInfo alone or inside an X.509 certificate, and
//! PKCS#1's RSAPublicKey. Private keys go to the crypto backend whole.

use base64::Engine;

use crate::error::ConfigError;

/// One PEM block: its label and its DER.
pub(super) struct Pem {
    pub(super) label: String,
    pub(super) der: Vec<u8>,
}

/// The first PEM block of `text` (text before it is allowed, RFC 7468 5.2).
/// Encrypted PEM (with headers) is refused: the crate holds no passphrases.
pub(super) fn pem(text: &[u8]) -> Result<Pem, ConfigError> {
    let bad = |why: &str| ConfigError::unusable_key(format!("not a PEM key: {why}"));
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|line| line.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| bad("no BEGIN line"))?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            let der = base64::engine::general_purpose::STANDARD
                .decode(&body)
                .map_err(|_| bad("the body is not base64"))?;
            return Ok(Pem { label, der });
        }
        if line.contains(':') {
            return Err(bad("encrypted PEM is not supported"));
        }
        body.push_str(line);
    }
    Err(bad("no END line matching the BEGIN line"))
}

/// A public key's material, as the backend and a JWK take it.
pub(crate) enum PublicDer<'a> {
    /// Modulus and exponent, big-endian, without leading zeros.
    Rsa { n: &'a [u8], e: &'a [u8] },
    /// An uncompressed point (`04 || x || y`) on P-256 or P-384.
    Ec { p384: bool, point: &'a [u8] },
    /// The 32-byte encoded point.
    Ed25519(&'a [u8]),
}

const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const EXPLICIT_0: u8 = 0xa0;

fn malformed() -> ConfigError {
    ConfigError::unusable_key("the key's DER is malformed")
}

/// A SubjectPublicKeyInfo (RFC 5280 4.1.2.7), or the one inside a certificate.
pub(super) fn public_key(pem: &Pem) -> Result<PublicDer<'_>, ConfigError> {
    match pem.label.as_str() {
        "PUBLIC KEY" => spki(&pem.der),
        "RSA PUBLIC KEY" => rsa_public_key(&pem.der),
        "CERTIFICATE" => certificate_spki(&pem.der),
        other => Err(ConfigError::unusable_key(format!(
            "a public key is a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM, not {other}"
        ))),
    }
}

/// The DER of a SubjectPublicKeyInfo, whole.
pub(super) fn spki(der: &[u8]) -> Result<PublicDer<'_>, ConfigError> {
    let mut outer = Reader::whole(der, SEQUENCE)?;
    let mut algorithm = Reader::new(outer.read(SEQUENCE)?);
    let oid = algorithm.read(OID)?;
    let key = bit_string(outer.read(BIT_STRING)?)?;
    outer.end()?;
    let unsupported = || ConfigError::unusable_key("the public key's algorithm is not supported");
    let parsed = if oid == RSA_ENCRYPTION {
        // The parameters are NULL, or absent in some writers.
        if !algorithm.is_empty() && !algorithm.read(NULL)?.is_empty() {
            // DER's NULL has no content (X.690 8.8.2).
            return Err(malformed());
        }
        rsa_public_key(key)?
    } else if oid == EC_PUBLIC_KEY {
        let curve = algorithm.read(OID)?;
        let p384 = match curve {
            c if c == P256 => false,
            c if c == P384 => true,
            _ => return Err(unsupported()),
        };
        PublicDer::Ec { p384, point: key }
    } else if oid == ED25519 {
        PublicDer::Ed25519(key)
    } else {
        return Err(unsupported());
    };
    algorithm.end()?;
    Ok(parsed)
}

/// The SubjectPublicKeyInfo of an X.509 certificate (its signature is not
/// checked: the certificate only carries the key the configuration trusts).
fn certificate_spki(der: &[u8]) -> Result<PublicDer<'_>, ConfigError> {
    let mut certificate = Reader::whole(der, SEQUENCE)?;
    let mut tbs = Reader::new(certificate.read(SEQUENCE)?);
    if tbs.peek() == Some(EXPLICIT_0) {
        tbs.read(EXPLICIT_0)?;
    }
    tbs.read(INTEGER)?; // serialNumber
    for _ in ["signature", "issuer", "validity", "subject"] {
        tbs.read(SEQUENCE)?;
    }
    let spki = tbs.read_whole(SEQUENCE)?;
    self::spki(spki)
}

/// PKCS#1's RSAPublicKey: `SEQUENCE { n INTEGER, e INTEGER }`.
pub(super) fn rsa_public_key(der: &[u8]) -> Result<PublicDer<'_>, ConfigError> {
    let mut key = Reader::whole(der, SEQUENCE)?;
    let n = positive(key.read(INTEGER)?)?;
    let e = positive(key.read(INTEGER)?)?;
    key.end()?;
    Ok(PublicDer::Rsa { n, e })
}

/// PKCS#1's RSAPublicKey of `n` and `e` (big-endian, no leading zeros).
pub(super) fn write_rsa_public_key(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    for int in [n, e] {
        let pad = int.first().is_some_and(|b| b & 0x80 != 0);
        body.push(INTEGER);
        push_len(&mut body, int.len() + usize::from(pad));
        if pad {
            body.push(0);
        }
        body.extend_from_slice(int);
    }
    let mut der = vec![SEQUENCE];
    push_len(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    let bytes = len.to_be_bytes();
    let significant = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

/// A BIT STRING's bytes; keys are whole bytes (no unused bits).
fn bit_string(content: &[u8]) -> Result<&[u8], ConfigError> {
    match content.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => Err(malformed()),
    }
}

/// A non-negative INTEGER's magnitude, minimally encoded.
fn positive(content: &[u8]) -> Result<&[u8], ConfigError> {
    match content {
        [] => Err(malformed()),
        [first, ..] if first & 0x80 != 0 => Err(malformed()),
        [0, next, ..] if next & 0x80 == 0 => Err(malformed()),
        [0, rest @ ..] if !rest.is_empty() => Ok(rest),
        all => Ok(all),
    }
}

/// Reads TLVs in order; one-byte tags, definite minimal lengths (DER).
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(content: &'a [u8]) -> Reader<'a> {
        Reader { rest: content }
    }

    /// The content of a `tag` that is all of `der`.
    fn whole(der: &'a [u8], tag: u8) -> Result<Reader<'a>, ConfigError> {
        let mut outer = Reader::new(der);
        let content = outer.read(tag)?;
        outer.end()?;
        Ok(Reader::new(content))
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn end(&self) -> Result<(), ConfigError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(malformed())
        }
    }

    /// The next element's content, which must be a `tag`.
    fn read(&mut self, tag: u8) -> Result<&'a [u8], ConfigError> {
        let (header, len) = self.header(tag)?;
        let content = &self.rest[header..header + len];
        self.rest = &self.rest[header + len..];
        Ok(content)
    }

    /// The next element whole (tag, length and content), which must be a `tag`.
    fn read_whole(&mut self, tag: u8) -> Result<&'a [u8], ConfigError> {
        let (header, len) = self.header(tag)?;
        let element = &self.rest[..header + len];
        self.rest = &self.rest[header + len..];
        Ok(element)
    }

    /// The header's size and the content's length, checked to fit.
    fn header(&self, tag: u8) -> Result<(usize, usize), ConfigError> {
        let (&found, after) = self.rest.split_first().ok_or_else(malformed)?;
        let (&first, after) = after.split_first().ok_or_else(malformed)?;
        if found != tag {
            return Err(malformed());
        }
        let (header, len) = match first {
            0..=0x7f => (2, usize::from(first)),
            0x81..=0x83 => {
                let count = usize::from(first & 0x7f);
                let bytes = after.get(..count).ok_or_else(malformed)?;
                let len = bytes
                    .iter()
                    .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
                // Minimal: the long form only past 127, no leading zero byte.
                if len < 0x80 || bytes[0] == 0 {
                    return Err(malformed());
                }
                (2 + count, len)
            }
            _ => return Err(malformed()),
        };
        if self
            .rest
            .len()
            .checked_sub(header)
            .is_none_or(|room| room < len)
        {
            return Err(malformed());
        }
        Ok((header, len))
    }
}
