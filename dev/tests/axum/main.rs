//! axum in front of the guards: every public way to build a guard under
//! `route_layer` and per-route `layer` (in process), the extractors, optional
//! auth and the CORS pass-through over real TCP, and `dev/examples/axum.rs`
//! (here, like axum itself: the seed example's first build needs neither).
#![cfg(feature = "axum")]

#[path = "../../../tests/support/mod.rs"]
mod support;

mod dpop_builders;
mod e2e_axum;
mod e2e_streams;
mod guards;
mod implicit_refresh;
mod json_body;
