//! Guides to what needs more than a rustdoc paragraph, one a page. (The
//! `introspection` and `metrics` modules hold their own.)

#[doc = include_str!("authx.md")]
pub mod authx {}

#[doc = include_str!("dpop.md")]
pub mod dpop {}

#[doc = include_str!("mtls.md")]
pub mod mtls {}

#[doc = include_str!("redis.md")]
pub mod redis {}
