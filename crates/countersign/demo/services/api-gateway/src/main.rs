#[tokio::main]
async fn main() {
    acme_telemetry::init("api-gateway");
    tracing::info!(port = acme_config::port(), "gateway listening");
}
