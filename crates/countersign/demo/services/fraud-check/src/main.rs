#[tokio::main]
async fn main() {
    acme_telemetry::init("fraud-check");
    tracing::info!("fraud-check gRPC server starting");
}
