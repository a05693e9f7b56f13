//! Arbitrary bytes as an MCP request body behind `ToolScopes`, with a token
//! that lacks `admin_reset`'s scope. Never a panic; and whenever a plain JSON
//! reader (serde_json's `Value`: the last of two equal members wins) sees a
//! call of `admin_reset` anywhere in the body, the server is never reached.
#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower_authx::layer::ToolScopesLayer;
use tower_authx::{AuthX, AuthXConfig, Claims, ProtectedResource};
use tower_layer::Layer;
use tower_service::Service;

static AUTHX: LazyLock<AuthX> = LazyLock::new(|| {
    let config = AuthXConfig::from_secret("fuzzing-secret-of-at-least-32-bytes")
        .unwrap()
        .issuer("https://as.example")
        .protected_resource(ProtectedResource::new("https://mcp.example/mcp"));
    AuthX::new(config).unwrap()
});

/// The claims a guard outside would have put in: `mcp:tools` only.
static CLAIMS: LazyLock<Claims> = LazyLock::new(|| {
    let token = AUTHX.access_token("agent").scopes(["mcp:tools"]).issue().unwrap();
    AUTHX
        .verify_offline(&token, &tower_authx::Requirement::access())
        .unwrap()
});

static REACHED: AtomicBool = AtomicBool::new(false);

/// Whether a permissive reader sees `admin_reset` called.
fn calls_admin_reset(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let messages = match &value {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    messages.into_iter().any(|m| {
        m["method"] == "tools/call" && m["params"]["name"] == "admin_reset"
    })
}

fuzz_target!(|data: &[u8]| {
    let inner = tower::service_fn(|_req: Request<Full<Bytes>>| {
        REACHED.store(true, Ordering::SeqCst);
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())))
    });
    let mut service = ToolScopesLayer::new(AUTHX.clone())
        .tool("admin_reset", ["mcp:tools", "mcp:admin"])
        .layer(inner);
    let mut request = Request::post("/mcp")
        .body(Full::new(Bytes::copy_from_slice(data)))
        .unwrap();
    request.extensions_mut().insert(CLAIMS.clone());
    REACHED.store(false, Ordering::SeqCst);
    let future = pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("ready at once");
    };
    let reached = REACHED.load(Ordering::SeqCst);
    assert_eq!(reached, response.status() == 200);
    if calls_admin_reset(data) {
        assert!(!reached, "admin_reset reached the server");
    }
});
