#[tokio::main]
async fn main() {
    acme_telemetry::init("cart-service");
    tracing::info!(port = acme_config::port(), "cart listening");
}
