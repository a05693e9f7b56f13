//! What an operator can alert on, through the `metrics` facade, so any
//! exporter works: every name is a constant here.
//!
#![doc = include_str!("guide/metrics.md")]

use crate::error::AuthError;

/// Token exchanges (RFC 8693) by result: `cached`, `issued`, `refused`,
/// `error`, `caller_expired`.
pub const EXCHANGES: &str = "authx_exchanges_total";
/// Guarded requests by layer kind, outcome, reason and issuer.
pub const REQUESTS: &str = "authx_requests_total";
/// Seconds a guard spent deciding (everything but a network store's wait),
/// for one guarded request in 8 per thread (a sample: a clock read costs
/// about 1% of a verified HS256 request on some machines).
pub const VERIFY_DURATION: &str = "authx_verify_duration_seconds";
/// Seconds a network store (Redis) took to answer a guarded request.
pub const STORE_DURATION: &str = "authx_store_duration_seconds";
/// JWKS fetches by issuer and result.
pub const JWKS_FETCHES: &str = "authx_jwks_fetches_total";
/// Keys held for an issuer after its last successful fetch.
pub const JWKS_KEYS: &str = "authx_jwks_keys";
/// When an issuer's keys were last fetched successfully (Unix seconds):
/// `time() - authx_jwks_last_success_timestamp_seconds` is their age.
pub const JWKS_LAST_SUCCESS: &str = "authx_jwks_last_success_timestamp_seconds";
/// Verified-token cache lookups by result.
pub const VERIFIED_CACHE: &str = "authx_verified_cache_total";
/// Introspection calls by issuer and result; `shed` counts the requests
/// answered 503 without a call because the calls were at their bound.
pub const INTROSPECTIONS: &str = "authx_introspections_total";
/// Introspection cache lookups by result.
pub const INTROSPECTION_CACHE: &str = "authx_introspection_cache_total";
/// Streams (server-sent events, gRPC streams, WebSockets) ended with their
/// credential, by reason: `expired`, `revoked`, `renewal_refused`.
pub const STREAMS_ENDED: &str = "authx_streams_ended_total";
/// Streams open behind `EndWithCredentialLayer` now.
pub const STREAMS_OPEN: &str = "authx_streams_open";
/// Writes a Redis primary counted without a replica to copy them to (a
/// shard running alone after a failover: alert on any increase).
pub const UNREPLICATED_WRITES: &str = "authx_store_unreplicated_writes_total";

/// Registers every metric's unit and description with the installed
/// recorder (the `# HELP` lines of a Prometheus scrape). Call it once after
/// installing your exporter; the metrics work without it.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "Guarded requests by layer, outcome, reason and issuer"
    );
    describe_histogram!(
        VERIFY_DURATION,
        Unit::Seconds,
        "Time a guard spent deciding"
    );
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Time a network store took to answer"
    );
    describe_counter!(JWKS_FETCHES, "JWKS fetches by issuer and result");
    describe_gauge!(JWKS_KEYS, "Keys held per issuer");
    describe_gauge!(
        JWKS_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the last successful JWKS fetch"
    );
    describe_counter!(VERIFIED_CACHE, "Verified-token cache lookups by result");
    describe_counter!(
        INTROSPECTIONS,
        "Introspection calls by issuer and result (shed: refused at the bound)"
    );
    describe_counter!(INTROSPECTION_CACHE, "Introspection cache lookups by result");
    describe_counter!(EXCHANGES, "Token exchanges (RFC 8693) by result");
    describe_counter!(
        STREAMS_ENDED,
        "Streams ended with their credential, by reason"
    );
    describe_gauge!(STREAMS_OPEN, "Streams open behind EndWithCredentialLayer");
    describe_counter!(
        UNREPLICATED_WRITES,
        "Writes a Redis primary counted without a replica (a shard running alone)"
    );
}

/// The `reason` label of a refusal: its kind, from a fixed list
/// ([`AuthError::kind`]).
pub fn reason(error: &AuthError) -> &'static str {
    error.kind()
}
