//! Nothing to use: this crate holds tower-authx's checks that need heavy
//! dependencies (see Cargo.toml). `tests/fixtures` here is a link to the
//! repository's, so the README's snippets find the key files they read.

/// The README's Rust examples, compiled and run as doctests here, where tonic's
/// transport, tonic-health and rmcp are at hand (with `--all-features`, as the
/// README's test command says).
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "tonic",
    feature = "redis",
    feature = "remote-keys",
    feature = "mcp",
    feature = "test-util"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
