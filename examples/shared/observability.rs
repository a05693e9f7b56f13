//! Logs and metrics for the examples: logs to stderr filtered by `RUST_LOG`
//! (`target=level` pairs, e.g. `info,tower_authx=debug`; default `warn`),
//! and, when built with `--features metrics`, every tower-authx metric in
//! Prometheus text at `GET /metrics`.

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::Full;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// What renders `GET /metrics` (nothing without the `metrics` feature).
#[derive(Clone)]
pub struct Metrics {
    #[cfg(feature = "metrics")]
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

/// Starts the logs, and the Prometheus recorder with the feature.
pub fn init() -> Result<Metrics, Box<dyn std::error::Error>> {
    let filter: Targets = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => spec.parse()?,
        _ => "warn".parse()?,
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init()?;
    #[cfg(feature = "metrics")]
    {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
        tower_authx::metrics::describe();
        // Histograms are drained into their buckets by the upkeep.
        let upkeep = handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        });
        Ok(Metrics { handle })
    }
    #[cfg(not(feature = "metrics"))]
    Ok(Metrics {})
}

impl Metrics {
    /// The Prometheus scrape, or `None` without the feature (the route is then 404).
    pub fn render(&self) -> Option<Response<Full<Bytes>>> {
        #[cfg(feature = "metrics")]
        {
            let mut res = Response::new(Full::new(Bytes::from(self.handle.render())));
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Some(res)
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = HeaderValue::from_static("");
            None
        }
    }
}
