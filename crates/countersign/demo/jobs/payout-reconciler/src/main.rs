#[tokio::main]
async fn main() {
    acme_telemetry::init("payout-reconciler");
    tracing::info!("reconciling payouts against the ledger");
}
