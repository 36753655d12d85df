use acme_money::Money;

/// One side of a double-entry posting.
pub struct Entry {
    pub account: String,
    pub amount: Money,
}

/// A posting balances when its entries sum to zero.
pub fn balances(entries: &[Entry]) -> bool {
    entries.iter().map(|e| e.amount.minor).sum::<i64>() == 0
}
