#[tokio::main]
async fn main() {
    acme_telemetry::init("consent-service");
    tracing::info!("consent listening");
}
