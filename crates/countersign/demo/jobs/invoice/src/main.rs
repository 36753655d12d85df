#[tokio::main]
async fn main() {
    acme_telemetry::init("invoice-job");
    tracing::info!("rendering yesterday's invoices");
}
