#[tokio::main]
async fn main() {
    acme_telemetry::init("refund-worker");
    tracing::info!(topic = acme_kafka::TOPIC, brokers = %acme_kafka::brokers(), "consuming refunds");
}
