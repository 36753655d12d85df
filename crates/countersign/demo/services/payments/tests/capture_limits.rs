use acme_money::Money;

#[test]
fn amounts_are_kept_in_minor_units() {
    assert_eq!(Money::eur(1999).minor, 1999);
    assert_eq!(Money::eur(1999).checked_add(Money::eur(1)), Some(Money::eur(2000)));
}
