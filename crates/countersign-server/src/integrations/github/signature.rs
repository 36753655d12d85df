//! `X-Hub-Signature-256`: GitHub signs each delivery's raw body with HMAC-SHA256 keyed with
//! the webhook secret and sends `sha256=` and the lower-case hex. Verified over the bytes as
//! received (before any parsing), compared in constant time (`Mac::verify_slice`).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a delivery's signature was refused; the text is the 401's detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "no X-Hub-Signature-256 header: GitHub signs every delivery when the webhook has a secret"
    )]
    Missing,
    #[error("X-Hub-Signature-256 is not sha256= and 64 hex digits")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body under this server's webhook secret")]
    Mismatch,
}

impl SignatureError {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed => "malformed",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

/// The `X-Hub-Signature-256` value GitHub sends for `body` under `secret`.
pub fn hub_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `header` (the `X-Hub-Signature-256` value, if sent) against `body` under `secret`.
pub fn verify(secret: &[u8], header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digits = header
        .strip_prefix(b"sha256=")
        .filter(|h| h.len() == 64)
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_digits).map_err(|_| SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries"): secret "It's a Secret
    /// to Everybody", payload "Hello, World!".
    const GITHUB_EXAMPLE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_own_example_verifies() {
        let secret = b"It's a Secret to Everybody";
        assert_eq!(hub_signature(secret, b"Hello, World!"), GITHUB_EXAMPLE);
        assert_eq!(
            verify(secret, Some(GITHUB_EXAMPLE.as_bytes()), b"Hello, World!"),
            Ok(())
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let upper = GITHUB_EXAMPLE
            .to_ascii_uppercase()
            .replacen("SHA256", "sha256", 1);
        for (header, expect) in [
            (None, SignatureError::Missing),
            (Some(""), SignatureError::Malformed),
            (
                Some("sha1=757107ea0eb2509fc211221cce984b8a37570b6d"),
                SignatureError::Malformed,
            ),
            (Some(&GITHUB_EXAMPLE[..70]), SignatureError::Malformed),
            (
                Some("sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
                SignatureError::Malformed,
            ),
            (
                Some("sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
                SignatureError::Mismatch,
            ),
        ] {
            assert_eq!(
                verify(secret, header.map(str::as_bytes), body),
                Err(expect),
                "{header:?}"
            );
        }
        // Upper-case hex is the same bytes.
        assert_eq!(verify(secret, Some(upper.as_bytes()), body), Ok(()));
        // Another secret, another body.
        assert_eq!(
            verify(b"another secret", Some(GITHUB_EXAMPLE.as_bytes()), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(secret, Some(GITHUB_EXAMPLE.as_bytes()), b"Hello, World"),
            Err(SignatureError::Mismatch)
        );
    }
}
