//! DPoP proofs made in the tests: honest ones, and anything an attacker
//! would send (the header and claims are plain JSON, signed as given).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower_authx::{Algorithm, AuthX, AuthXConfig};

/// A client's key pair from the fixtures, signing with aws-lc-rs directly
/// (not through the crate under test).
pub struct ProofKey {
    pub alg: Algorithm,
    signing: Signing,
    /// The public JWK (kty and key members only).
    pub jwk: Value,
}

impl ProofKey {
    pub fn new(alg: Algorithm, file: &str) -> ProofKey {
        let pem = std::fs::read(super::key_fixture(file)).unwrap();
        // The public JWK as the crate publishes it, stripped to the key.
        let authx = AuthX::new(AuthXConfig::new(super::private_key(alg, file))).unwrap();
        let jwks: Value = serde_json::from_str(authx.jwks()).unwrap();
        let mut jwk = jwks["keys"][0].clone();
        for member in ["kid", "alg", "use", "key_ops"] {
            jwk.as_object_mut().unwrap().remove(member);
        }
        let pem = String::from_utf8(pem).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                pem.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        use aws_lc_rs::signature as s;
        let signing = match alg {
            Algorithm::ES256 => Signing::Ec(
                s::EcdsaKeyPair::from_pkcs8(&s::ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap(),
            ),
            Algorithm::ES384 => Signing::Ec(
                s::EcdsaKeyPair::from_pkcs8(&s::ECDSA_P384_SHA384_FIXED_SIGNING, &der).unwrap(),
            ),
            Algorithm::EdDSA => {
                Signing::Ed(s::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap())
            }
            Algorithm::RS256 => Signing::Rsa(s::RsaKeyPair::from_pkcs8(&der).unwrap()),
            other => panic!("no proof key for {other}"),
        };
        ProofKey { alg, signing, jwk }
    }

    /// A new ES256 key pair, never seen before (a client that makes one
    /// key per login).
    pub fn new_es256() -> ProofKey {
        use aws_lc_rs::signature::{self as s, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 =
            s::EcdsaKeyPair::generate_pkcs8(&s::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = s::EcdsaKeyPair::from_pkcs8(&s::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .unwrap();
        // The uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        ProofKey {
            alg: Algorithm::ES256,
            signing: Signing::Ec(pair),
            jwk,
        }
    }

    pub fn es256() -> ProofKey {
        ProofKey::new(Algorithm::ES256, "ec256_private.pem")
    }

    pub fn ed25519() -> ProofKey {
        ProofKey::new(Algorithm::EdDSA, "ed25519_private.pem")
    }

    pub fn rs256() -> ProofKey {
        ProofKey::new(Algorithm::RS256, "rsa_private.pem")
    }

    /// The honest header.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg.as_str(), "jwk": self.jwk})
    }

    /// An honest proof for `method` on `url`, with `ath` for `token`.
    pub fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        self.sign(&self.header(), &claims(method, url, token))
    }

    /// Signs `header` and `claims` as given.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    /// Signs the JSON texts as given (duplicate members and all).
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = match &self.signing {
            Signing::Ec(pair) => pair
                .sign(&rng, message.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Signing::Ed(pair) => pair.sign(message.as_bytes()).as_ref().to_vec(),
            Signing::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message.as_bytes(),
                    &mut signature,
                )
                .unwrap();
                signature
            }
        };
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

enum Signing {
    Ec(aws_lc_rs::signature::EcdsaKeyPair),
    Ed(aws_lc_rs::signature::Ed25519KeyPair),
    Rsa(aws_lc_rs::signature::RsaKeyPair),
}

/// Honest claims: a fresh `jti`, `iat` now.
pub fn claims(method: &str, url: &str, token: Option<&str>) -> Value {
    let mut claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": url,
        "iat": super::now(),
    });
    if let Some(token) = token {
        claims["ath"] = ath(token).into();
    }
    claims
}

/// base64url(SHA-256(token)).
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// A DPoP client in another language, as a child process: `tests/oidc/dpop_proofs.mjs`
/// (panva's `dpop` on node) or `tests/interop/dpop_proofs.py` (PyJWT). It
/// holds its own key; we only ever see its proofs and its thumbprint.
pub struct ProofClient {
    pub name: String,
    /// The thumbprint the client computed itself.
    pub jkt: String,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    _child: tokio::process::Child,
}

impl ProofClient {
    /// panva's `dpop` with `alg`; `None` (a visible skip) without node or the
    /// npm packages, which CI does not allow.
    pub async fn node(alg: &str) -> Option<ProofClient> {
        let Some(dir) = super::oidc_packages() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs node and `npm ci --prefix tests/oidc` (see .ci/run)"
            );
            super::skipped("no node to run tests/oidc's packages");
            return None;
        };
        let mut command = tokio::process::Command::new("node");
        command.arg(dir.join("dpop_proofs.mjs")).env("ALG", alg);
        Some(ProofClient::spawn(format!("panva's dpop ({alg})"), command).await)
    }

    /// PyJWT (ES256); `None` (a visible skip) without the interop Python.
    pub async fn python() -> Option<ProofClient> {
        let python = super::python()?;
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/dpop_proofs.py");
        let mut command = tokio::process::Command::new(python);
        command.arg(script);
        Some(ProofClient::spawn("PyJWT (ES256)".to_owned(), command).await)
    }

    async fn spawn(name: String, mut command: tokio::process::Command) -> ProofClient {
        use tokio::io::AsyncBufReadExt;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the proof client");
        let stdin = child.stdin.take().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next_line()
            .await
            .unwrap()
            .expect("the client's thumbprint");
        let jkt = serde_json::from_str::<Value>(&first).unwrap()["jkt"]
            .as_str()
            .unwrap()
            .to_owned();
        ProofClient {
            name,
            jkt,
            stdin,
            lines,
            _child: child,
        }
    }

    /// A proof for `htm` on `htu`, with `ath` for `token` and `nonce`.
    pub async fn proof(
        &mut self,
        htm: &str,
        htu: &str,
        token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        use tokio::io::AsyncWriteExt;
        let request = json!({"htm": htm, "htu": htu, "token": token, "nonce": nonce});
        self.stdin
            .write_all(format!("{request}\n").as_bytes())
            .await
            .unwrap();
        self.lines.next_line().await.unwrap().expect("a proof")
    }
}
