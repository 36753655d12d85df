//! Service configuration read from the environment.

use std::env;

/// Reads `key`, falling back to `default` when it is unset or empty.
pub fn get_or(key: &str, default: &str) -> String {
    env::var(key).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// The port a service listens on (`PORT`, default 8080).
pub fn port() -> u16 {
    get_or("PORT", "8080").parse().unwrap_or(8080)
}
