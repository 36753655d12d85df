//! Logging and tracing set-up shared by every Rust service.

use tracing_subscriber::EnvFilter;

/// Installs a JSON subscriber filtered by `RUST_LOG` (default `info`).
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().json().with_env_filter(filter).init();
    tracing::info!(service, "telemetry initialised");
}
