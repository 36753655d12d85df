use acme_money::Money;

/// How many times a declined capture is retried before the order is failed.
pub const MAX_CAPTURE_ATTEMPTS: u32 = 2;

#[derive(Debug)]
pub enum CaptureError {
    Declined { code: String },
    ProviderUnavailable,
}

/// Captures an authorised payment with the card provider.
pub async fn capture(payment_id: &str, amount: Money) -> Result<(), CaptureError> {
    tracing::info!(payment_id, minor = amount.minor, "capturing");
    Err(CaptureError::ProviderUnavailable)
}
