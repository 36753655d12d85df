mod posting;

#[tokio::main]
async fn main() {
    acme_telemetry::init("ledger-service");
    tracing::info!("ledger gRPC server starting");
}
