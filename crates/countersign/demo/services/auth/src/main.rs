mod token;

#[tokio::main]
async fn main() {
    acme_telemetry::init("auth-service");
    tracing::info!(port = acme_config::port(), "auth listening");
}
