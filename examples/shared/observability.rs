//! Logs for the examples: to stderr, filtered by `RUST_LOG` (`target=level`
//! pairs, e.g. `info,tower_authx=debug`; default `warn`). `GET /metrics` is
//! `prometheus.rs`, for the examples in `dev/` alone.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Starts the logs.
pub fn init() -> Result<(), Box<dyn std::error::Error>> {
    let filter: Targets = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => spec.parse()?,
        _ => "warn".parse()?,
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init()?;
    Ok(())
}
