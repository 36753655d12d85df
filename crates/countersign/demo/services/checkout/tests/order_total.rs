use acme_money::Money;

#[test]
fn money_of_one_currency_adds_up() {
    assert_eq!(Money::eur(150).checked_add(Money::eur(250)), Some(Money::eur(400)));
}
