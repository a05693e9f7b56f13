//! Arbitrary bytes as the request head an attacker controls: the
//! `Authorization`, `Cookie` and CSRF headers and the query. Never a panic, never
//! a pass, always a 400/401 refusal.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tower_authx::{AuthX, AuthXConfig, NoExtra, RequestHead, Requirement, TokenLocation};

static AUTHX: LazyLock<AuthX> = LazyLock::new(|| {
    let config = AuthXConfig::from_secret("fuzzing-secret-of-at-least-32-bytes")
        .unwrap()
        .token_location([
            TokenLocation::Headers,
            TokenLocation::Cookies,
            TokenLocation::Query,
        ]);
    AuthX::new(config).unwrap()
});

fuzz_target!(|data: &[u8]| {
    // Split the input into four fields at 0xFF bytes (never valid in a header).
    let mut fields = data.split(|b| *b == 0xff);
    let mut headers = HeaderMap::new();
    for name in ["authorization", "cookie", "x-csrf-token"] {
        if let Some(Ok(value)) = fields.next().map(HeaderValue::from_bytes) {
            headers.append(name, value);
        }
    }
    let query = fields
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let uri: Uri = format!("/?{query}")
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"));
    let method = if data.first().is_some_and(|b| b % 2 == 0) {
        Method::POST
    } else {
        Method::GET
    };
    let head = RequestHead {
        method: &method,
        uri: &uri,
        headers: &headers,
        extensions: None,
    };
    match ready_now(AUTHX.authenticate::<NoExtra>(head, &Requirement::any_type())) {
        Ok(_) => panic!("arbitrary bytes authenticated"),
        Err(e) => assert!(matches!(e.status().as_u16(), 400 | 401)),
    }
});

/// The output of a future that is ready at once (our own keys, in-memory stores).
fn ready_now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the future was not ready at once"),
    }
}
