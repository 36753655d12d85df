/// Subject line of the order confirmation email.
pub fn order_confirmation_subject(order_id: &str) -> String {
    format!("Your Acme Shop order {order_id}")
}

/// Subject line of the refund email.
pub fn refund_subject(order_id: &str) -> String {
    format!("Refund for order {order_id}")
}
