mod capture;

#[tokio::main]
async fn main() {
    acme_telemetry::init("payments-service");
    tracing::info!(port = acme_config::port(), "payments listening");
}
