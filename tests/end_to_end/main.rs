//! The tests over real TCP: the examples as processes, real clients (hyper,
//! Python's AuthX and flask-jwt-extended, node's dpop), a real redis-server
//! and Redis Cluster. One binary, so the crate is linked once.

#[path = "../support/mod.rs"]
mod support;

mod e2e_cluster;
mod e2e_dpop;
mod e2e_hardening;
mod e2e_interop_python;
mod e2e_keys;
mod e2e_metrics;
mod e2e_rejections;
mod e2e_revocation;
mod e2e_seed_walkthrough;
mod e2e_sessions;
mod e2e_test_util;
