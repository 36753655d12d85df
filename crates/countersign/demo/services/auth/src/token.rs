use std::time::Duration;

/// How long an access token is valid.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token is valid.
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Whether a token issued at `issued_at` (seconds) is still valid at `now`.
pub fn is_valid(issued_at: u64, now: u64) -> bool {
    now.saturating_sub(issued_at) < ACCESS_TOKEN_TTL.as_secs()
}
