//! AuthX-style JWT authentication for every Tower stack: hyper, axum and tonic.
//!
//! Issue access and refresh tokens the way [AuthX] and flask-jwt-extended do
//! (same claim names and types, so tokens cross between the Python services and
//! yours), and guard routes with layers that verify the bearer token, put its
//! [`Claims`] into the request's extensions, and answer `401` with an RFC 6750
//! challenge when they cannot.
//!
//! Freshness is the heart of it: login issues a *fresh* access token, refresh a
//! non-fresh one, and [`RequireFreshLayer`] guards sensitive routes (password
//! change, payment) with the RFC 9470 step-up challenge.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_authx::{AuthX, AuthXConfig, Claims, RequireAuthLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let authx = AuthX::new(AuthXConfig::from_secret("a secret of at least 32 bytes!!!")?)?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(RequireAuthLayer::new(authx.clone()))
//!     .service_fn(|req: Request<Full<Bytes>>| async move {
//!         let claims = req.extensions().get::<Claims>().expect("set by RequireAuth");
//!         Ok::<_, Infallible>(Response::new(Full::from(format!("hello {}", claims.sub))))
//!     });
//!
//! let token = authx.access_token("user1").fresh(true).issue()?;
//! let req = Request::get("/").header("authorization", format!("Bearer {token}")).body(Full::default())?;
//! let res = service.clone().oneshot(req).await?;
//! assert_eq!(res.status(), 200);
//!
//! let res = service.oneshot(Request::get("/").body(Full::default())?).await?;
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer");
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | feature | what it adds | what it builds |
//! | --- | --- | --- |
//! | `aws-lc-rs` (default) | public-key algorithms (RS*, PS*, ES*, EdDSA) at OpenSSL's speed; HMAC needs no backend | aws-lc (a C library: about 24 s of CPU, once) |
//! | `ring` | the same on ring, when aws-lc cannot build | ring (about 5 s); RSA and P-384 verify slower |
//! | `axum` | `Claims`, `Option<Claims>` and `User` extractors; `AuthError` as a response | axum-core |
//! | `tonic` | gRPC refusals, tonic's `NamedService` kept through the layers | tonic |
//! | `remote-keys` | issuers' JWKS over HTTPS, OIDC discovery, several issuers, introspection | hyper's client, rustls |
//! | `redis` | revocations, rotation and DPoP replay shared through Redis (and Redis Cluster) | redis, tokio |
//! | `mcp` | MCP servers as OAuth protected resources: per-tool scopes from the JSON-RPC body | tokio's timer |
//! | `metrics` | a span per guarded request and counters through the `metrics` facade | metrics |
//! | `streams` | SSE, gRPC streams and WebSockets that end with their credential (expiry, revocation); in-band renewal | tokio |
//! | `test-util` | `testing`: a mock OpenID Provider, tokens on demand, claims without tokens (dev-dependencies only) | `remote-keys`, hyper's server |
//!
//! # Where things are
//!
//! - [`AuthX`] and [`AuthXConfig`]: the handle that issues and verifies, and
//!   how it is configured; [`AuthX::rules`] shows what it checks, per issuer.
//! - [`layer`]: the guards ([`RequireAuthLayer`], [`RequireFreshLayer`],
//!   [`RequireScopesLayer`], [`OptionalAuthLayer`]) and every layer that
//!   works beside them (loading a user, a JSON body's token, implicit
//!   refresh, MCP tool scopes, streams that end with their credential).
//! - [`Claims`], [`Requirement`] and [`Rule`]: what a verified token says,
//!   and what a route requires of it.
//! - [`Key`], [`KeySet`] and, with `remote-keys`, `RemoteJwks` and `Issuer`:
//!   where verification keys come from.
//! - [`MemoryStore`], `RedisStore` ([`RevocationStore`]) and [`MemoryReplay`]
//!   ([`ReplayStore`]): logout, rotation and DPoP replay.
//! - [`Dpop`], [`ClientCertificate`]: sender-constrained tokens (RFC 9449,
//!   RFC 8705); [`ProtectedResource`]: RFC 9728 metadata.
//! - [`AuthError`], [`Refusal`] and [`Reject`]: why a request is refused, and
//!   how the answer is shaped.
//! - `extract` (axum), `introspection` (RFC 7662) and `metrics`: one module
//!   each, behind their features; MCP's `ToolScopesLayer` is in [`layer`].
//! - `exchange` (feature `remote-keys`): calling other services on the
//!   caller's behalf with an exchanged token (RFC 8693).
//! - `testing` (feature `test-util`): what your tests need.
//! - [`guide`]: the longer pages: DPoP, certificate-bound tokens, Redis and
//!   Redis Cluster, and where each AuthX setting went.
//!
//! [AuthX]: https://pypi.org/project/authx/
#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs link to items of the features they mention (docs.rs builds them
// all); without those features such a link has nothing to point at.
#![cfg_attr(
    not(all(
        feature = "remote-keys",
        feature = "redis",
        feature = "axum",
        feature = "tonic"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod authx;
mod base64url;
mod claims;
#[cfg(feature = "test-util")]
mod clock;
mod config;
mod cookie;
mod csrf;
mod dpop;
mod error;
#[cfg(feature = "remote-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote-keys")))]
pub mod exchange;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
pub mod guide;
#[cfg(feature = "remote-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote-keys")))]
pub mod introspection;
mod issue;
#[cfg(feature = "remote-keys")]
mod issuer;
mod json;
mod keys;
pub mod layer;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod mtls;
mod observe;
mod pipeline;
mod policy;
mod reject;
mod request;
mod resource;
mod session;
mod source;
mod store;
#[cfg(feature = "streams")]
mod stream;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod token;

pub use authx::AuthX;
pub use claims::{
    Actor, Audience, ClaimPath, Claims, Confirmation, Fresh, Idp, NoExtra, NumericDate,
    Permissions, TokenType,
};
pub use config::{AuthXConfig, DEFAULT_MAX_TOKEN_LEN};
pub use cookie::{CookieConfig, SameSite};
pub use dpop::{Dpop, DpopKey, DpopSigner};
pub use error::{
    AuthError, ConfigError, CsrfFailure, DpopError, FetchError, InvalidToken, IssueError,
};
#[cfg(feature = "remote-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote-keys")))]
pub use introspection::{ClientAuth, IntrospectedTokens, Introspection};
pub use issue::{PairBuilder, TokenBuilder, TokenPair};
#[cfg(feature = "remote-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote-keys")))]
pub use issuer::Issuer;
pub use keys::{Algorithm, Key, KeySet};
#[cfg(feature = "remote-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote-keys")))]
pub use keys::{KeysHealth, RemoteJwks};
pub use layer::{
    OptionalAuth, OptionalAuthLayer, RequireAuth, RequireAuthLayer, RequireFresh,
    RequireFreshLayer, RequireScopes, RequireScopesLayer,
};
pub use mtls::ClientCertificate;
pub use policy::{ClaimsView, Requirement, Rule, Scopes};
pub use reject::{Refusal, Reject};
pub use request::RequestHead;
pub use resource::{ProtectedResource, ResourceMetadata, ResourceMetadataService};
pub use source::TokenLocation;
pub use store::{
    DEFAULT_ENTRIES_PER_SUBJECT, DEFAULT_PROOFS_PER_KEY, DEFAULT_PROOFS_PER_SUBJECT,
    DEFAULT_REPLAY_CAPACITY, MemoryReplay, MemoryStore, ProofUse, RefreshUse, ReplayStore,
    RevocationChanges, RevocationStore, SessionInfo, StoreError, StoreFuture, TokenRecord,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{DEFAULT_VIEW_CAPACITY, RedisStore};
pub use token::IssuerRules;
