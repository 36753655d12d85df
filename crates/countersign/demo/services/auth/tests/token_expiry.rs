// Access tokens must expire; a token from yesterday is never valid.
#[test]
fn yesterdays_token_is_expired() {
    let issued_at = 1_700_000_000_u64;
    let now = issued_at + 24 * 60 * 60;
    assert!(now - issued_at > 15 * 60);
}
