//! The tests that run in this process: the layers, sources, keys, DPoP,
//! the stores (a real redis-server where a test says so), the attack
//! battery, Wycheproof and the interop fixtures. One binary, so the crate is
//! linked once.

#[path = "../support/mod.rs"]
mod support;

mod attacks;
mod authz;
mod cache;
mod dpop;
mod implicit_refresh;
mod interop_fixtures;
mod introspection;
mod json_body;
mod keys;
mod layer;
mod load_user;
mod mtls;
mod resource;
mod revocation;
mod sources;
mod spans;
mod streams;
#[cfg(feature = "test-util")]
mod testing;
mod wycheproof;
