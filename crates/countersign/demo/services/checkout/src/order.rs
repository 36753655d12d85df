use acme_money::Money;

pub struct Line {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: Money,
}

/// The order total; `None` when lines mix currencies or the sum overflows.
pub fn total(lines: &[Line]) -> Option<Money> {
    let mut sum = Money::eur(0);
    for line in lines {
        let amount = Money { minor: line.unit_price.minor * i64::from(line.quantity), ..line.unit_price };
        sum = sum.checked_add(amount)?;
    }
    Some(sum)
}
