#[tokio::main]
async fn main() {
    acme_telemetry::init("feature-flags");
    tracing::info!(port = acme_config::port(), "feature-flags listening");
}
