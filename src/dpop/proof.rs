//! A DPoP proof (RFC 9449 4.2) read and checked against the request it came
//! with (4.3). Every part is hostile until checked: the proof's length is
//! capped before anything is decoded, members are read strictly (a member
//! named twice is refused), and the cheap comparisons come before the
//! signature: [`check`] gives an [`Unsigned`] proof, whose signature
//! [`Unsigned::verify`] checks only once the access token it came with was
//! verified and is bound to the proof's key, so that a request with a
//! garbage token costs no more than a bad token, whatever key it names.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

use super::htu;
use super::keys::ProofKeys;
use super::nonce::Nonces;
use crate::claims::NumericDate;
use crate::error::DpopError;
use crate::json::unique_members;
use crate::keys::{Algorithm, Key};

/// The longest proof read: an RS512 proof with a 4096-bit key fits twice over.
pub(crate) const MAX_PROOF_LEN: usize = 8 * 1024;

/// The longest `jti` accepted (a UUID is 36 bytes).
const MAX_JTI_LEN: usize = 256;

/// What a proof is checked by (from the configuration).
#[derive(Debug)]
pub(crate) struct Rules {
    pub(crate) algorithms: Vec<Algorithm>,
    /// How old a proof's `iat` may be.
    pub(crate) max_age: Duration,
    /// How far in the future a proof's `iat` may be (clock skew).
    pub(crate) skew: Duration,
    pub(crate) nonces: Option<Nonces>,
}

/// What the request the proof came with looks like.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The request's URI as the client addressed it, normalized (see `htu`).
    pub(crate) htu: &'a str,
    /// The access token presented with the proof (then `ath` must hash it).
    pub(crate) token: Option<&'a str>,
    pub(crate) now: NumericDate,
}

/// A proof whose claims fit the request, its key and signature not yet
/// checked: what [`check`] gives, to be verified once its token is.
#[derive(Debug)]
pub(crate) struct Unsigned {
    /// The RFC 7638 thumbprint of the proof's key, for the binding check.
    pub(crate) jkt: String,
    alg: Algorithm,
    jwk: ProofJwk,
    signing_input: String,
    signature: String,
    id: [u8; 32],
    expires: NumericDate,
}

impl Unsigned {
    /// Checks the proof's key (its type fits `alg`, its material is sound,
    /// RSA of 2048 to 4096 bits with e = 65537) and its signature. A key
    /// already checked is taken from `keys`; a new one is added to them when
    /// `remember` (a proof whose key a verified token is bound to) and its
    /// signature verifies.
    pub(crate) fn verify(self, keys: &ProofKeys, remember: bool) -> Result<Proof, DpopError> {
        if !declared_for(self.alg, &self.jwk) {
            return Err(invalid(
                "the proof's jwk is not for its alg or not for signatures",
            ));
        }
        let (key, new) = match keys.get(self.alg, &self.jkt) {
            Some(key) => (key, false),
            None => (Arc::new(public_key(self.alg, &self.jwk)?), true),
        };
        if !key.verify_signature(self.signing_input.as_bytes(), &self.signature) {
            return Err(invalid("the proof's signature does not verify"));
        }
        if new && remember {
            keys.remember(self.alg, &self.jkt, key);
        }
        Ok(Proof {
            jkt: self.jkt,
            id: self.id,
            expires: self.expires,
        })
    }
}

/// A proof that passed every check but the replay store's.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Proof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub(crate) jkt: String,
    /// What must be unique: SHA-256 of the thumbprint and the `jti`.
    pub(crate) id: [u8; 32],
    /// When the proof could no longer be accepted anyway.
    pub(crate) expires: NumericDate,
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<ProofJwk>,
    crit: Option<IgnoredAny>,
}

/// The public members of a JWK we use; private ones are read only to refuse them.
#[derive(Debug, Deserialize)]
struct ProofJwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    d: bool,
    #[serde(default, deserialize_with = "present")]
    p: bool,
    #[serde(default, deserialize_with = "present")]
    q: bool,
    #[serde(default, deserialize_with = "present")]
    dp: bool,
    #[serde(default, deserialize_with = "present")]
    dq: bool,
    #[serde(default, deserialize_with = "present")]
    qi: bool,
    #[serde(default, deserialize_with = "present")]
    oth: bool,
    #[serde(default, deserialize_with = "present")]
    k: bool,
}

/// Whether a member is there, whatever its value.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<NumericDate>,
    ath: Option<String>,
    nonce: Option<String>,
}

fn invalid(why: &'static str) -> DpopError {
    DpopError::InvalidProof(why)
}

/// Checks `proof` (one `DPoP` header's value) against `request`, all but its
/// key's material and its signature (see [`Unsigned::verify`]).
pub(crate) fn check(
    proof: &str,
    request: &Request<'_>,
    rules: &Rules,
) -> Result<Unsigned, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(invalid("the proof is too long"));
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("the proof is not a JWS in compact form"));
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| invalid("the proof is not base64url"))
    };
    let (header_json, claims_json) = (decode(header_b64)?, decode(claims_b64)?);
    // serde refuses a known member named twice, not an unknown one: checked
    // here for every member at every depth.
    if !unique_members(&header_json) || !unique_members(&claims_json) {
        return Err(invalid("the proof names a member twice"));
    }
    let header: Header = serde_json::from_slice(&header_json)
        .map_err(|_| invalid("the proof's header is not a valid JOSE header"))?;
    let claims: Claims = serde_json::from_slice(&claims_json)
        .map_err(|_| invalid("the proof's claims are not valid"))?;

    // The header (4.3 steps 4 to 7, the signature aside).
    let typ_ok = header.typ.as_deref().is_some_and(|typ| {
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        typ.eq_ignore_ascii_case("dpop+jwt")
    });
    if !typ_ok {
        return Err(invalid("typ must be dpop+jwt"));
    }
    if header.crit.is_some() {
        return Err(invalid(
            "the proof has critical header parameters we do not know",
        ));
    }
    let alg: Algorithm = header
        .alg
        .as_deref()
        // RFC 9864's fully specified name for EdDSA with Ed25519 (panva's `dpop`).
        .map(|alg| if alg == "Ed25519" { "EdDSA" } else { alg })
        .and_then(|alg| alg.parse().ok())
        .filter(|alg: &Algorithm| !alg.is_hmac() && rules.algorithms.contains(alg))
        .ok_or(invalid("the proof's alg is not one we accept"))?;
    let jwk = header.jwk.ok_or(invalid("the proof has no jwk"))?;
    let private = [jwk.d, jwk.p, jwk.q, jwk.dp, jwk.dq, jwk.qi, jwk.oth, jwk.k];
    if private.iter().any(|present| *present) {
        return Err(invalid("the proof's jwk holds private key material"));
    }

    // The claims against the request (steps 3 and 8 to 12), before any crypto.
    let (Some(jti), Some(htm), Some(htu_claim), Some(iat)) =
        (claims.jti, claims.htm, claims.htu, claims.iat)
    else {
        return Err(invalid("the proof lacks jti, htm, htu or iat"));
    };
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(invalid("the proof's jti is empty or too long"));
    }
    if htm != request.method {
        return Err(invalid("htm does not match the request's method"));
    }
    if htu::normalize(&htu_claim).as_deref() != Some(request.htu) {
        return Err(invalid("htu does not match the request's URI"));
    }
    if let Some(nonces) = &rules.nonces
        && !claims
            .nonce
            .is_some_and(|nonce| nonces.accepts(&nonce, request.now))
    {
        return Err(DpopError::UseNonce);
    }
    let now = request.now.as_secs_f64();
    let iat = iat.as_secs_f64();
    if iat > now + rules.skew.as_secs_f64() {
        return Err(invalid("the proof's iat is in the future"));
    }
    let lifetime = rules.max_age.as_secs_f64() + rules.skew.as_secs_f64();
    if iat < now - lifetime {
        return Err(invalid("the proof is too old"));
    }
    if let Some(token) = request.token
        && claims.ath.as_deref() != Some(URL_SAFE_NO_PAD.encode(Sha256::digest(token)).as_str())
    {
        return Err(invalid("ath does not match the access token"));
    }

    // The key and the signature (steps 5 to 7) wait for the token.
    let jkt = thumbprint(&jwk).ok_or(invalid("the proof's jwk has no thumbprint"))?;
    let mut id = Sha256::new();
    id.update(jkt.as_bytes());
    id.update([0]);
    id.update(jti.as_bytes());
    Ok(Unsigned {
        jkt,
        alg,
        jwk,
        signing_input: proof[..header_b64.len() + 1 + claims_b64.len()].to_owned(),
        signature: signature.to_owned(),
        id: id.finalize().into(),
        expires: NumericDate::from_secs_f64(iat + lifetime),
    })
}

/// The largest RSA modulus a proof key may have (4096 bits): a client picks
/// its proof key, and a larger one would only make every proof cost more.
const MAX_PROOF_RSA_BYTES: usize = 512;

/// The proof's public key, checked like any key we verify with: the key type
/// fits `alg`, the material has the right size and shape; an RSA key has 2048
/// to 4096 bits and the exponent 65537 (RFC 9449 leaves the key to the
/// client: these bounds keep a proof's cost near a token's). The jwk's `alg`,
/// `use` and `key_ops` were checked by `declared_for` already.
fn public_key(alg: Algorithm, jwk: &ProofJwk) -> Result<Key, DpopError> {
    if jwk.kty == "RSA" {
        let modulus = jwk.n.as_deref().unwrap_or_default();
        // Unpadded base64url: 4 characters for 3 bytes.
        if modulus.len() * 3 / 4 > MAX_PROOF_RSA_BYTES || jwk.e.as_deref() != Some("AQAB") {
            return Err(invalid(
                "the proof's RSA key must have at most 4096 bits and the exponent 65537",
            ));
        }
    }
    let mut members = serde_json::Map::new();
    members.insert("kty".into(), jwk.kty.clone().into());
    for (name, value) in [
        ("crv", &jwk.crv),
        ("x", &jwk.x),
        ("y", &jwk.y),
        ("n", &jwk.n),
        ("e", &jwk.e),
    ] {
        if let Some(value) = value {
            members.insert(name.into(), value.clone().into());
        }
    }
    Key::verifying_jwk_value(alg, &serde_json::Value::Object(members))
        .map_err(|_| invalid("the proof's jwk is not a usable public key for its alg"))
}

/// Whether the jwk's optional members allow it for `alg`: a declared `alg`
/// that is `alg`, no `use` but `sig`, `key_ops` naming `verify` (checked per
/// proof: they are not part of the thumbprint the key is remembered by).
fn declared_for(alg: Algorithm, jwk: &ProofJwk) -> bool {
    jwk.alg
        .as_deref()
        .is_none_or(|declared| declared == alg.as_str())
        && jwk.use_.as_deref().is_none_or(|use_| use_ == "sig")
        && jwk
            .key_ops
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|op| op == "verify"))
}

/// The RFC 7638 SHA-256 thumbprint: the required members in lexical order, no
/// whitespace. The members were checked to be base64url (or a curve name) by
/// `public_key`, so they need no escaping.
fn thumbprint(jwk: &ProofJwk) -> Option<String> {
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.crv.as_ref()?,
            jwk.x.as_ref()?,
            jwk.y.as_ref()?
        ),
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk.e.as_ref()?,
            jwk.n.as_ref()?
        ),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            jwk.crv.as_ref()?,
            jwk.x.as_ref()?
        ),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}
