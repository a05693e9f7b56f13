//! A protected resource (RFC 9728, RFC 8707) in process: the configuration
//! checks, the metadata document and its service, the challenges that point
//! at it, the audience that must be the resource, and `mcp`'s per-tool scopes.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
#[cfg(feature = "mcp")]
use tower_authx::layer::ToolScopesLayer;
use tower_authx::{
    AuthX, AuthXConfig, Dpop, ProtectedResource, RequireAuthLayer, RequireScopesLayer,
    ResourceMetadata, TokenLocation,
};

const SECRET: &[u8] = b"resource-tests-secret-of-32-byte";
const AS: &str = "https://as.example";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA_URL: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn config() -> AuthXConfig {
    AuthXConfig::from_secret(SECRET).unwrap().issuer(AS)
}

fn resource() -> ProtectedResource {
    ProtectedResource::new(RESOURCE)
        .name("Example tools")
        .documentation("https://mcp.example.com/docs")
        .scopes(["mcp:tools", "mcp:admin"])
}

fn authx() -> AuthX {
    AuthX::new(config().protected_resource(resource())).unwrap()
}

/// An inner service that counts its calls and echoes the body it got.
fn echo(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    service_fn(move |req: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(Response::new(Full::new(body)))
        }
    })
}

fn request(token: Option<&str>) -> http::request::Builder {
    let builder = Request::post("/mcp").header("content-type", "application/json");
    match token {
        Some(token) => builder.header("authorization", format!("Bearer {token}")),
        None => builder,
    }
}

fn challenges(res: &Response<impl Sized>) -> Vec<String> {
    res.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_resource_mode_refuses_configurations_that_would_mix_or_drift() {
    let refused = |config: AuthXConfig, because: &str| {
        let error = AuthX::new(config).unwrap_err().to_string();
        assert!(error.contains(because), "{error}");
    };
    refused(
        config().protected_resource(ProtectedResource::new("https://MCP.example.com/mcp/")),
        "write \"https://mcp.example.com/mcp\"",
    );
    refused(
        config().protected_resource(ProtectedResource::new("https://mcp.example.com/mcp#x")),
        "fragment",
    );
    refused(
        config().protected_resource(ProtectedResource::new("http://mcp.example.com/mcp")),
        "loopback",
    );
    for locations in [
        vec![TokenLocation::Headers, TokenLocation::Query],
        vec![TokenLocation::Cookies],
        vec![TokenLocation::Headers, TokenLocation::Cookies],
    ] {
        refused(
            config()
                .token_location(locations)
                .protected_resource(resource()),
            "Authorization: Bearer",
        );
    }
    refused(
        config()
            .header_name(http::HeaderName::from_static("x-token"))
            .protected_resource(resource()),
        "Authorization: Bearer",
    );
    refused(
        config()
            .audience("https://other.example")
            .protected_resource(resource()),
        "audience other than the protected resource",
    );
    refused(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .protected_resource(resource()),
        "authorization servers",
    );
    // The resource named as the audience too is the same rule, said twice.
    AuthX::new(config().audience(RESOURCE).protected_resource(resource())).unwrap();
}

#[test]
fn the_metadata_says_what_the_guard_enforces() {
    let with_dpop = AuthX::new(
        config()
            .dpop(Dpop::new("https://mcp.example.com").required(true))
            .protected_resource(resource()),
    )
    .unwrap();
    let metadata = with_dpop.resource_metadata().unwrap();
    // RFC 9728 3.3: `resource` is the identifier, byte for byte.
    assert_eq!(metadata.resource, RESOURCE);
    assert_eq!(metadata.authorization_servers, [AS]);
    assert_eq!(metadata.scopes_supported, ["mcp:tools", "mcp:admin"]);
    assert_eq!(metadata.bearer_methods_supported, ["header"]);
    assert_eq!(metadata.resource_name.as_deref(), Some("Example tools"));
    assert_eq!(metadata.dpop_bound_access_tokens_required, Some(true));
    assert!(
        metadata
            .dpop_signing_alg_values_supported
            .iter()
            .any(|a| a == "ES256")
    );
    // Without DPoP, the DPoP members are absent.
    let plain = authx().resource_metadata().unwrap().clone();
    assert!(plain.dpop_signing_alg_values_supported.is_empty());
    assert_eq!(plain.dpop_bound_access_tokens_required, None);
    // A resource at the host's root has no path to insert.
    let root = AuthX::new(config().protected_resource(ProtectedResource::new("https://h.example")))
        .unwrap();
    let service = root.resource_metadata_service().unwrap();
    assert_eq!(service.path(), "/.well-known/oauth-protected-resource");
    assert_eq!(
        service.url(),
        "https://h.example/.well-known/oauth-protected-resource"
    );
    assert!(
        AuthX::new(config())
            .unwrap()
            .resource_metadata_service()
            .is_none()
    );
}

#[tokio::test]
async fn the_metadata_service_serves_the_document_at_its_well_known_path() {
    let authx = authx();
    let service = authx.resource_metadata_service().unwrap();
    assert_eq!(service.path(), "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(service.url(), METADATA_URL);
    let call = |method: Method, path: &str| {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::<Bytes>::default())
            .unwrap();
        service.clone().oneshot(request)
    };
    let res = call(Method::GET, service.path()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let body = res.into_body();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let document: ResourceMetadata = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(&document, authx.resource_metadata().unwrap());
    // Required by RFC 9728 2: `resource`; empty lists are left out, not `[]`.
    assert_eq!(json["resource"], RESOURCE);
    assert!(json.get("dpop_signing_alg_values_supported").is_none());

    let head = call(Method::HEAD, service.path()).await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.body().is_empty());
    assert_eq!(head.headers()["content-length"], body.len().to_string());
    assert_eq!(
        call(Method::OPTIONS, service.path())
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let post = call(Method::POST, service.path()).await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET, HEAD, OPTIONS");
    for other in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp/",
        "/mcp",
    ] {
        assert_eq!(
            call(Method::GET, other).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn every_refusal_points_at_the_metadata_and_a_scoped_401_names_the_scopes() {
    let authx = authx();
    let calls = Arc::new(AtomicUsize::new(0));
    let guard = RequireScopesLayer::all(authx.clone(), ["mcp:tools"]).layer(echo(calls.clone()));
    let pointer = format!("resource_metadata=\"{METADATA_URL}\"");

    // No token: 401, the route's scope, the metadata.
    let res = guard
        .clone()
        .oneshot(request(None).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&res),
        [format!("Bearer {pointer}, scope=\"mcp:tools\"")]
    );

    // A token in the query string is not taken: the same 401.
    let token = authx
        .access_token("agent")
        .scopes(["mcp:tools"])
        .issue()
        .unwrap();
    let query = Request::post(format!("/mcp?token={token}"))
        .body(Full::default())
        .unwrap();
    let res = guard.clone().oneshot(query).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(challenges(&res)[0].contains(&pointer));

    // A bad token: invalid_token and the pointer.
    let res = guard
        .clone()
        .oneshot(request(Some("a.b.c")).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = &challenges(&res)[0];
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains(&pointer), "{challenge}");

    // Too few scopes: 403 insufficient_scope, scope and pointer.
    let weak = authx
        .access_token("agent")
        .scopes(["other"])
        .issue()
        .unwrap();
    let res = guard
        .clone()
        .oneshot(request(Some(&weak)).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = &challenges(&res)[0];
    for part in [
        "error=\"insufficient_scope\"",
        "scope=\"mcp:tools\"",
        &pointer,
    ] {
        assert!(challenge.contains(part), "{challenge} lacks {part}");
    }

    // A gRPC call keeps its gRPC answer, with the challenge in its header.
    let grpc = Request::post("/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(Full::default())
        .unwrap();
    let res = guard.clone().oneshot(grpc).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "16");
    assert!(challenges(&res)[0].contains(&pointer));

    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let res = guard
        .oneshot(request(Some(&token)).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A custom answer starts from the default: the pointer stays.
    let hooked = AuthX::new(config().protected_resource(resource()).on_reject(
        |refusal: tower_authx::Refusal<'_>| {
            refusal.with_body(http::HeaderValue::from_static("text/plain"), "no")
        },
    ))
    .unwrap();
    let res = RequireScopesLayer::all(hooked, ["mcp:tools"])
        .layer(echo(calls.clone()))
        .oneshot(request(None).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(
        challenges(&res),
        [format!("Bearer {pointer}, scope=\"mcp:tools\"")]
    );

    // A route without scopes names none; DPoP's challenge points too.
    let with_dpop = AuthX::new(
        config()
            .dpop(Dpop::new("https://mcp.example.com"))
            .protected_resource(resource()),
    )
    .unwrap();
    let res = RequireAuthLayer::new(with_dpop)
        .layer(echo(calls.clone()))
        .oneshot(request(None).body(Full::default()).unwrap())
        .await
        .unwrap();
    let both = challenges(&res);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both[0].starts_with("Bearer ") && both[1].starts_with("DPoP "));
    for challenge in &both {
        assert!(challenge.contains(&pointer), "{challenge}");
        assert!(!challenge.contains("scope="), "{challenge}");
    }
}

#[tokio::test]
async fn only_tokens_issued_for_the_resource_are_taken() {
    let authx = authx();
    let status = |token: String| {
        let authx = authx.clone();
        async move { crate::support::guarded_status(&authx, &token).await }
    };
    // Ours carry the resource as their audience.
    let ours = authx.access_token("agent").issue().unwrap();
    assert_eq!(crate::support::payload_of(&ours)["aud"], RESOURCE);
    assert_eq!(status(ours).await, StatusCode::OK);
    let issuer_for = |audience: Option<&str>| {
        let config = match audience {
            Some(aud) => config().audience(aud),
            None => config(),
        };
        AuthX::new(config)
            .unwrap()
            .access_token("agent")
            .issue()
            .unwrap()
    };
    // Another resource's token, one for a prefix of ours, one in another
    // case, and one without any audience: refused (no token passthrough).
    for other in [
        Some("https://other.example/mcp"),
        Some("https://mcp.example.com/mcp/"),
        Some("https://mcp.example.com"),
        Some("https://MCP.example.com/mcp"),
        None,
    ] {
        let token = issuer_for(other);
        assert_eq!(
            status(token.clone()).await,
            StatusCode::UNAUTHORIZED,
            "{other:?}"
        );
        // `AuthX::verify` applies the same audience.
        let error = authx
            .verify::<tower_authx::NoExtra>(&token, &tower_authx::Requirement::access())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), "audience", "{other:?}");
    }
}

#[cfg(feature = "mcp")]
fn call(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

#[cfg(feature = "mcp")]
#[tokio::test]
async fn a_tool_call_without_the_tools_scopes_gets_the_scope_challenge() {
    let authx = authx();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = tower::ServiceBuilder::new()
        .layer(RequireScopesLayer::all(authx.clone(), ["mcp:tools"]))
        .layer(
            ToolScopesLayer::new(authx.clone())
                .tool("whoami", ["mcp:tools"])
                .tool("admin_reset", ["mcp:tools", "mcp:admin"])
                .max_body(4096),
        )
        .service(echo(calls.clone()));
    let tools = authx
        .access_token("agent")
        .scopes(["mcp:tools"])
        .issue()
        .unwrap();
    let admin = authx
        .access_token("agent")
        .scopes(["mcp:tools", "mcp:admin"])
        .issue()
        .unwrap();
    let send = |token: &str, body: String| {
        service.clone().oneshot(
            request(Some(token))
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
    };

    // Other tools and other methods pass, the body handed on byte for byte.
    for body in [
        call("whoami"),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_owned(),
    ] {
        let res = send(&tools, body.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), body);
    }
    let before = calls.load(Ordering::SeqCst);

    // admin_reset without mcp:admin: 403 with what the tool needs, alone or in a batch.
    let batch = format!("[{},{}]", call("whoami"), call("admin_reset"));
    for body in [call("admin_reset"), batch] {
        let res = send(&tools, body).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let challenge = &challenges(&res)[0];
        for part in [
            "error=\"insufficient_scope\"".to_owned(),
            "scope=\"mcp:tools mcp:admin\"".to_owned(),
            format!("resource_metadata=\"{METADATA_URL}\""),
        ] {
            assert!(challenge.contains(&part), "{challenge} lacks {part}");
        }
    }
    // A message that could be read as two tools, a body that is not JSON, a
    // body too large: refused before the server sees them.
    let twice = r#"{"method":"tools/call","params":{"name":"admin_reset","name":"whoami"}}"#;
    for (body, status) in [
        (twice.to_owned(), StatusCode::BAD_REQUEST),
        ("{not json".to_owned(), StatusCode::BAD_REQUEST),
        (
            format!("[{}]", vec![call("whoami"); 100].join(",")),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let res = send(&admin, body).await.unwrap();
        assert_eq!(res.status(), status);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "refused calls reached the server"
    );

    let res = send(&admin, call("admin_reset")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Without a guard outside there are no verified claims: refused, never let through.
    let unguarded = ToolScopesLayer::new(authx.clone())
        .tool("admin_reset", ["mcp:admin"])
        .layer(echo(calls.clone()));
    let res = unguarded
        .oneshot(
            request(Some(&admin))
                .body(Full::new(Bytes::from(call("admin_reset"))))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Issue 38, finding 6: a tool the layer does not list is refused (403 with
/// the challenge) unless the route opts in; an MCP session belongs to the
/// caller who opened it (another caller, or a session never seen, is 404).
#[cfg(feature = "mcp")]
#[tokio::test]
async fn unlisted_tools_are_refused_and_a_session_is_its_openers_alone() {
    use std::sync::atomic::AtomicU64;
    let authx = authx();
    let opened = Arc::new(AtomicU64::new(0));
    // An MCP server that opens a session for a request without one.
    let server = {
        let opened = opened.clone();
        service_fn(move |req: Request<Full<Bytes>>| {
            let opened = opened.clone();
            async move {
                let mut res = Response::new(Full::<Bytes>::default());
                if !req.headers().contains_key("mcp-session-id") {
                    let id = format!("session-{}", opened.fetch_add(1, Ordering::SeqCst));
                    res.headers_mut()
                        .insert("mcp-session-id", id.parse().unwrap());
                }
                Ok::<_, Infallible>(res)
            }
        })
    };
    let layer = ToolScopesLayer::new(authx.clone()).tool("whoami", ["mcp:tools"]);
    let service = tower::ServiceBuilder::new()
        .layer(RequireScopesLayer::all(authx.clone(), ["mcp:tools"]))
        .layer(layer.clone())
        .service(server.clone());
    let token = |sub: &str| {
        authx
            .access_token(sub)
            .scopes(["mcp:tools", "mcp:admin"])
            .issue()
            .unwrap()
    };
    let (alice, bob) = (token("alice"), token("bob"));
    let send = |token: &str, session: Option<&str>, method: &str, body: String| {
        let mut builder = request(Some(token)).method(method);
        if let Some(session) = session {
            builder = builder.header("mcp-session-id", session);
        }
        service
            .clone()
            .oneshot(builder.body(Full::new(Bytes::from(body))).unwrap())
    };
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;

    // A typo, or a tool the server gained later: refused with the challenge.
    let res = send(&alice, None, "POST", call("admin_reste"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!challenges(&res).is_empty(), "no challenge");
    let opted_in = tower::ServiceBuilder::new()
        .layer(RequireScopesLayer::all(authx.clone(), ["mcp:tools"]))
        .layer(layer.clone().unlisted_tools_need_only_the_guard())
        .service(server.clone());
    let res = opted_in
        .oneshot(
            request(Some(&alice))
                .body(Full::new(Bytes::from(call("admin_reste"))))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Alice opens a session; it is hers alone.
    let res = send(&alice, None, "POST", initialize.into()).await.unwrap();
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let res = send(&alice, Some(&session), "POST", call("whoami"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = send(&alice, Some(&session), "GET", String::new())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for method in ["POST", "GET", "DELETE"] {
        let res = send(&bob, Some(&session), method, call("whoami"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "Bob's {method}");
    }
    let res = send(&alice, Some("session-never-opened"), "POST", call("whoami"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Her DELETE ends it: then it is nobody's.
    let res = send(&alice, Some(&session), "DELETE", String::new())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = send(&alice, Some(&session), "POST", call("whoami"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Issue 43, item 6: a body sent a byte now and then cannot hold a tool
/// call open (and what it buffered): past the body timeout it is 408, and
/// the server never runs.
#[cfg(feature = "mcp")]
#[tokio::test]
async fn a_stalled_body_is_408_at_the_body_timeout() {
    use std::time::Duration;
    /// One chunk, then nothing more, ever.
    struct Stalled(bool);
    impl http_body::Body for Stalled {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            if std::mem::replace(&mut self.0, true) {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                    b"{\"jsonrpc\":",
                )))))
            }
        }
    }
    let authx = authx();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let server = service_fn(move |_req: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
    });
    let service = tower::ServiceBuilder::new()
        .layer(RequireScopesLayer::all(authx.clone(), ["mcp:tools"]))
        .layer(
            ToolScopesLayer::new(authx.clone())
                .tool("whoami", ["mcp:tools"])
                .body_timeout(Duration::from_millis(200)),
        )
        .service(server);
    let token = authx
        .access_token("agent")
        .scopes(["mcp:tools"])
        .issue()
        .unwrap();
    let request = Request::post("/mcp")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Stalled(false))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(30), service.oneshot(request))
        .await
        .expect("the stalled body was waited for without end")
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
