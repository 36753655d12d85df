//! Typed access to the `order-events` topic.

use serde::{Deserialize, Serialize};

pub const TOPIC: &str = "order-events";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderEvent {
    Placed { order_id: String },
    Paid { order_id: String, payment_id: String },
    Refunded { order_id: String, refund_id: String },
}

/// The broker list, from `KAFKA_BROKERS`.
pub fn brokers() -> String {
    acme_config::get_or("KAFKA_BROKERS", "localhost:9092")
}
