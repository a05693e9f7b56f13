//! An MCP server that the official MCP clients find their way into on their
//! own: rmcp's Streamable HTTP transport inside axum, guarded by tower-authx
//! as an OAuth protected resource (RFC 9728, RFC 8707).
//!
//! ```sh
//! OIDC_ISSUER=https://sso.example/realms/agents PUBLIC_URL=https://tools.example/mcp \
//!     cargo run --example mcp_server --features mcp,remote-keys
//! ```
//!
//! A client that knows only `PUBLIC_URL` gets a 401 whose challenge names the
//! metadata (`/.well-known/oauth-protected-resource/mcp`), reads from it the
//! authorization servers, gets a token for this resource, and calls:
//! - tool `whoami` (scope `mcp:tools`, which every MCP request needs): the
//!   token's subject and scopes, read from the verified claims of the
//!   request it serves;
//! - tool `admin_reset` (scopes `mcp:tools mcp:admin`): without `mcp:admin`,
//!   a 403 `insufficient_scope` challenge names both, and the client steps up.
//!
//! The standalone GET stream (server-to-client messages) ends when its token
//! does (expiry, or a logout shared through `REDIS_URL`) with a last SSE
//! event `credential-ended`; the client authenticates again and reconnects.
//!
//! Tokens must name `PUBLIC_URL` in `aud` (RFC 8707: another resource's token
//! is refused) and come in `Authorization: Bearer`, or `DPoP` with a proof.
//!
//! `OIDC_ISSUER` (one or more issuers, comma-separated; discovered over
//! HTTPS), `PUBLIC_URL` (the resource identifier, default
//! `http://127.0.0.1:8002/mcp`), `HOST` (127.0.0.1), `PORT` (8002),
//! `SSL_CERT_FILE` (a root to trust besides the platform's), `REDIS_URL`
//! (revocations and DPoP proofs shared by every instance), `RUST_LOG`.
//!
//! Outside this repository: copy this file into a new crate as `src/main.rs`,
//! and `examples/shared/` as `src/shared/`, with these lines in its `Cargo.toml`
//! (`dev/copy-out-examples` builds it exactly so; until tower-authx is
//! published, `path` names a checkout of it):
//!
//! ```toml
//! [dependencies]
//! tower-authx = { path = "../tower-authx", features = ["mcp", "remote-keys", "streams"] }
//! axum = { version = "0.8", default-features = false, features = ["tokio", "http1", "json"] }
//! rmcp = { version = "3.11", default-features = false, features = ["server", "macros", "transport-streamable-http-server"] }
//! bytes = "1"
//! http = "1"
//! http-body = "1"
//! http-body-util = "0.1"
//! hyper = { version = "1", features = ["server", "http1"] }
//! hyper-util = { version = "0.1", features = ["tokio", "server", "http1"] }
//! pin-project-lite = "0.2"
//! serde = { version = "1", features = ["derive"] }
//! serde_json = { version = "1", features = ["preserve_order"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread", "net", "time", "signal"] }
//! tower = { version = "0.5", features = ["util"] }
//! tracing-subscriber = { version = "0.3", default-features = false, features = ["fmt", "std"] }
//!
//! [features]
//! redis = ["tower-authx/redis"]
//! ```

use std::sync::Arc;

use axum::Router;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use tower::ServiceBuilder;
use tower_authx::layer::{EndWithCredentialLayer, ToolScopesLayer};
use tower_authx::{AuthX, AuthXConfig, Claims, Issuer, ProtectedResource, RequireScopesLayer};

#[path = "shared/mod.rs"]
mod shared;

/// What every MCP request needs, and what `admin_reset` needs.
const TOOLS: &str = "mcp:tools";
const ADMIN: &str = "mcp:admin";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::observability::init()?;
    let (host, port) = shared::address(8002)?;
    let resource_id =
        std::env::var("PUBLIC_URL").unwrap_or_else(|_| "http://127.0.0.1:8002/mcp".into());
    let issuers = std::env::var("OIDC_ISSUER")
        .map_err(|_| "set OIDC_ISSUER: the authorization servers' issuer URLs")?;
    let mut trusted = Vec::new();
    for iss in issuers.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        trusted.push(
            Issuer::discover(iss)
                .await
                .map_err(|e| format!("OIDC_ISSUER {iss}: {e}"))?,
        );
    }
    // The resource is `origin` + `path`: DPoP proofs name the origin and the
    // request's path; the MCP endpoint is served at `path`.
    let (origin, path) = split_resource(&resource_id)?;
    let config = AuthXConfig::from_issuers(trusted).protected_resource(
        ProtectedResource::new(&resource_id)
            .name("tower-authx MCP example")
            .scopes([TOOLS, ADMIN]),
    );
    let config = shared::with_dpop(shared::shared_settings(config).await?, origin).await?;
    let authx = AuthX::new(config)?;

    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    let mcp = StreamableHttpService::new(
        || Ok(Tools::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts(origin)),
    );
    let guarded = ServiceBuilder::new()
        .layer(RequireScopesLayer::all(authx.clone(), [TOOLS]))
        // What the guard admitted: its connection keeps its place under pressure.
        .map_request(shared::server::marked)
        // The GET stream (and a tool call's event stream) ends with the
        // token: a last `credential-ended` event, then the client signs in
        // again and reconnects.
        .layer(EndWithCredentialLayer::new(&authx))
        .layer(
            ToolScopesLayer::new(authx.clone())
                .tool("whoami", [TOOLS])
                .tool("admin_reset", [TOOLS, ADMIN]),
        )
        .service(mcp);
    let metadata = authx
        .resource_metadata_service()
        .ok_or("a protected resource has metadata")?;
    let router = Router::new()
        .route_service(metadata.path(), metadata.clone())
        .route_service(path, guarded);

    println!("listening on http://{}", listener.local_addr()?);
    let service = hyper_util::service::TowerToHyperService::new(router);
    shared::server::serve(listener, service).await;
    Ok(())
}

/// `https://host:port` and the path the MCP endpoint is served at.
fn split_resource(resource: &str) -> Result<(&str, &str), String> {
    let after_scheme = resource
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| format!("PUBLIC_URL {resource:?} is not a URL"))?;
    Ok(match resource[after_scheme..].find('/') {
        Some(i) => resource.split_at(after_scheme + i),
        None => (resource, "/"),
    })
}

/// rmcp answers only requests whose `Host` is this server's (DNS rebinding):
/// the resource's host, and loopback.
fn allowed_hosts(origin: &str) -> Vec<String> {
    let authority = origin.split("://").nth(1).unwrap_or(origin);
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    vec![
        authority.to_owned(),
        host.to_owned(),
        "127.0.0.1".into(),
        "localhost".into(),
    ]
}

#[derive(Clone)]
struct Tools {
    // Read by the code `#[tool_handler]` writes.
    #[allow(dead_code)]
    tool_router: ToolRouter<Self>,
}

impl Tools {
    fn new() -> Self {
        Tools {
            tool_router: Self::tool_router(),
        }
    }
}

/// The verified claims of the request a tool serves (the guard put them
/// into the request's extensions; rmcp hands the tool the request's parts).
fn claims(parts: &http::request::Parts) -> Result<&Claims, ErrorData> {
    parts.extensions.get::<Claims>().ok_or_else(|| {
        ErrorData::internal_error("no verified claims: is the guard in place?", None)
    })
}

#[tool_router]
impl Tools {
    #[tool(description = "Who is calling: the token's subject (the client) and scopes.")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let claims = claims(&parts)?;
        let answer = serde_json::json!({
            "sub": claims.sub,
            "scopes": claims.granted_scopes().collect::<Vec<_>>(),
        });
        Ok(CallToolResult::success(vec![ContentBlock::text(
            answer.to_string(),
        )]))
    }

    #[tool(description = "Resets the demo state. Needs scope mcp:admin.")]
    async fn admin_reset(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        // ToolScopes refused calls without the scope before they got here;
        // checked again where it matters.
        if !claims(&parts)?.has_scope(ADMIN) {
            return Err(ErrorData::invalid_request(
                "scope mcp:admin is required",
                None,
            ));
        }
        Ok(CallToolResult::success(vec![ContentBlock::text("reset")]))
    }
}

#[tool_handler]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}
