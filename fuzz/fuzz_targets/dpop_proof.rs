//! Arbitrary DPoP proofs: the whole `DPoP` header from the input, or one
//! assembled from the input's JOSE header JSON, claims JSON and signature
//! (so the parser is reached past base64). Through a login's proof check and
//! a guard's (with a bound token). Never a panic, never an accepted proof:
//! nobody but the key's holder can sign one.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tower_authx::{AuthX, AuthXConfig, Dpop, NoExtra, RequestHead, Requirement};

static AUTHX: LazyLock<AuthX> = LazyLock::new(|| {
    let config = AuthXConfig::from_secret("fuzzing-secret-of-at-least-32-bytes")
        .unwrap()
        .dpop(Dpop::new("https://api.example.com"));
    AuthX::new(config).unwrap()
});

/// A token bound to a key nobody has (its thumbprint is made up).
static BOUND: LazyLock<String> = LazyLock::new(|| {
    let mut claims = serde_json::json!({"sub": "u", "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}});
    claims["exp"] = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .into();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"fuzzing-secret-of-at-least-32-bytes").unwrap();
        mac.update(message.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    };
    format!("{message}.{signature}")
});

fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the memory replay store answers at once"),
    }
}

fuzz_target!(|data: &[u8]| {
    let proofs = {
        let mut fields = data.split(|b| *b == 0xff);
        let (header, claims, signature) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        let assembled = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            String::from_utf8_lossy(signature)
        );
        [data.to_vec(), assembled.into_bytes()]
    };
    for proof in proofs {
        let Ok(value) = HeaderValue::from_bytes(&proof) else {
            continue;
        };
        let mut headers = HeaderMap::new();
        headers.insert("dpop", value);
        let uri = Uri::from_static("/login");
        let head = RequestHead {
            method: &Method::POST,
            uri: &uri,
            headers: &headers,
            extensions: None,
        };
        assert!(ready(AUTHX.dpop_key(head)).is_err(), "a forged login proof passed");
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("DPoP {}", *BOUND)).unwrap(),
        );
        let uri = Uri::from_static("/protected");
        let head = RequestHead {
            method: &Method::GET,
            uri: &uri,
            headers: &headers,
            extensions: None,
        };
        let verdict = ready(AUTHX.authenticate::<NoExtra>(head, &Requirement::access()));
        assert!(verdict.is_err(), "a forged proof passed");
    }
});
