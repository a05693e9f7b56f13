//! Testing an application that uses the crate (feature `test-util`; put it
//! in `[dev-dependencies]`, never in a production build).
//!
//! - [`MockIssuer`]: a real OpenID Provider on a loopback port (plain HTTP,
//!   which the crate takes on loopback only): discovery, a JWKS, a token
//!   endpoint (client credentials and the password grant), introspection of
//!   the opaque tokens it issued, DPoP-bound tokens (with nonces when asked).
//!   It rotates its keys, goes down and comes back, answers slowly, and
//!   counts what it was asked. Its tokens are ordinary ES256 JWTs
//!   (RFC 9068 `at+jwt`) that any verifier accepts.
//! - [`MockToken`]: any token a test needs, from the issuer's keys: valid,
//!   expired, not yet valid, of another issuer or audience, without a claim,
//!   of another type, not fresh, with roles where each identity provider puts
//!   them, DPoP- or certificate-bound, signed by a key nobody publishes.
//! - [`with_claims`]: verified claims put into a request without any token,
//!   for a handler's unit test. A guard never takes them: they carry no
//!   guard's mark, so a guarded route still asks for a token.
//! - A clock moved by tokio's paused time: with this feature every check
//!   (and the mock issuer) reads the current runtime's clock, so in a test run
//!   with `#[tokio::test(start_paused = true)]`, `tokio::time::advance` ages
//!   tokens and freshness windows without sleeping ([`skew`] says by how much).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tower_authx::testing::MockIssuer;
//! use tower_authx::{AuthX, AuthXConfig, Requirement};
//!
//! let idp = MockIssuer::start("https://api.test").await?;
//! let authx = AuthX::new(AuthXConfig::from_issuers([idp.issuer()?]))?;
//! let token = idp.token().subject("alice").scope("read").issue();
//! let claims: tower_authx::Claims = authx.verify(&token, &Requirement::access()).await?;
//! assert_eq!(claims.sub, "alice");
//! assert!(authx.verify::<tower_authx::NoExtra>(&idp.token().expired().issue(), &Requirement::access()).await.is_err());
//! # Ok(()) }
//! ```

mod claims;
mod issuer;
mod state;
mod token;

pub use crate::clock::skew;
pub use claims::{test_claims, with_claims};
pub use issuer::MockIssuer;
pub use token::{MockToken, RolesIn};
