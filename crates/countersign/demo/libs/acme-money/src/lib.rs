//! Money in minor units. Never a float.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Amount in the currency's minor unit (cents for EUR and USD).
    pub minor: i64,
    pub currency: [u8; 3],
}

impl Money {
    pub fn eur(minor: i64) -> Self {
        Money { minor, currency: *b"EUR" }
    }

    /// Adds two amounts of the same currency; `None` on a currency mismatch or overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        Some(Money { minor: self.minor.checked_add(other.minor)?, currency: self.currency })
    }
}
