//! `GET /metrics` for the examples in `dev/` (axum, resource_server): with
//! `--features metrics`, every tower-authx metric in Prometheus text. Apart
//! from `shared/mod.rs` so that the fresh-token example, which does not serve it,
//! never builds the exporter.

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::Full;

/// What renders `GET /metrics` (nothing without the `metrics` feature).
#[derive(Clone)]
pub struct Metrics {
    #[cfg(feature = "metrics")]
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

/// Installs the Prometheus recorder (with the feature).
pub fn install() -> Result<Metrics, Box<dyn std::error::Error>> {
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
