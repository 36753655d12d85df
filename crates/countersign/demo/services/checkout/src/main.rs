mod order;

#[tokio::main]
async fn main() {
    acme_telemetry::init("checkout-service");
    let port = acme_config::port();
    tracing::info!(port, "checkout listening");
}
