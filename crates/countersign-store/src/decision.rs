//! [`Decision`]: the stored row of a decision, pointing at the log entry that records it.
//!
//! What a decision contains (tier derivation, reasons, inputs) is the policy crate's and the
//! recorder's; the store keeps the record as JSON and indexes it by id and subject.

use serde_json::Value;

/// A recorded decision. `log_index` must name an entry appended in the same transaction
/// (or earlier): the schema's foreign key refuses a decision without its log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Unique id of the decision.
    pub id: String,
    /// The proposal the decision is about (the event's `subject`).
    pub subject: String,
    /// The approval tier.
    pub tier: countersign_policy::Tier,
    /// The full decision record.
    pub record: Value,
    /// Index of the log entry recording this decision.
    pub log_index: u64,
}
