mod lookup;

#[tokio::main]
async fn main() {
    acme_telemetry::init("user-profile");
    tracing::info!("user-profile listening");
}
