mod templates;

#[tokio::main]
async fn main() {
    acme_telemetry::init("notification-service");
    tracing::info!(topic = acme_kafka::TOPIC, "sending order notifications");
}
