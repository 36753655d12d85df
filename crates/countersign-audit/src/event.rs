//! The audit event: the versioned wire type every log leaf holds, and its leaf bytes (the
//! RFC 8785 canonical JSON of the event).
//!
//! This module does not say what goes into `data` for each kind (the recorder in the binary
//! and the store decide) and does not read the clock: `at` is given by the caller.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{self, CanonicalError};

/// The only event format version so far.
pub const EVENT_VERSION: u32 = 1;

/// What happened to a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Proposed,
    EvidenceAccepted,
    EvidenceRefused,
    Decided,
    Notified,
    Approved,
    Rejected,
    /// A person's standing verdict ended without a new one, withdrawn where it was given (a
    /// GitHub review dismissed): `data.approver`'s verdict on `data.head`.
    VerdictWithdrawn,
    Authorized,
    Merged,
    Verified,
    /// A proposal's head moved: which verdicts lapsed and which a trivial rebase carried.
    HeadMoved,
    /// A proposal was closed (or closed as superseded) before being merged.
    Closed,
    /// An API token was revoked; the subject is the token's id (`t-…`), never a proposal.
    TokenRevoked,
    /// A runner of the fleet leased a run (a work item) and started it; the subject is the
    /// run's id (`r-…`).
    RunStarted,
    /// A run ended: passed, failed, errored, timed out or cancelled; the subject is the run's id.
    RunFinished,
    /// A runner gave a run back unfinished (it is queued again); the subject is the run's id.
    RunReturned,
    /// A failed test or reachable vulnerability on a protected branch opened a finding; the
    /// subject is the finding's id (`F-…`).
    FindingOpened,
    /// A live finding was seen failing again (another run, a later commit).
    FindingObserved,
    /// A proposal said it fixes the finding (`fixes`).
    FindingLinked,
    /// A merged fix's reproducing run passed on the protected branch: the finding is closed.
    FindingVerified,
    /// A merged fix's reproducing run failed (or did not run the test): the finding is live
    /// again and its owners are notified.
    FindingReopened,
}

/// One log entry, as it is canonicalized into a leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Format version, [`EVENT_VERSION`].
    pub v: u32,
    pub kind: EventKind,
    /// RFC 3339 date-time, from the caller's clock.
    pub at: String,
    /// The proposal id the event is about (a token id for [`EventKind::TokenRevoked`]).
    pub subject: String,
    /// The principal that caused the event.
    pub actor: String,
    /// Kind-specific payload.
    pub data: Value,
    /// The chain of entries about one subject: the log index of the previous entry about
    /// the same subject, `null` (`Some(None)`) for the first. The store that appends the
    /// event sets it, inside the transaction that orders the log; an event built with
    /// [`Event::new`] starts as the first. Absent (`None`) only in events written before the
    /// chain existed: a bundle of those cannot be shown complete (see `bundle`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub prev: Option<Option<u64>>,
}

/// A field that is present, `null` included, is `Some`: what tells a first entry (`null`)
/// from an event written before the chain (no field).
fn present<'de, D>(deserializer: D) -> Result<Option<Option<u64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<u64>::deserialize(deserializer).map(Some)
}

/// Why bytes or fields do not make an event. `field` names the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("event field {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("event is not JSON of the expected shape: {0}")]
    Json(String),
    #[error("event bytes are not in canonical form (RFC 8785)")]
    NotCanonical,
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

impl Event {
    /// A version-1 event, with its fields checked.
    pub fn new(
        kind: EventKind,
        at: &str,
        subject: &str,
        actor: &str,
        data: Value,
    ) -> Result<Event, EventError> {
        let event = Event {
            v: EVENT_VERSION,
            kind,
            at: at.to_owned(),
            subject: subject.to_owned(),
            actor: actor.to_owned(),
            data,
            prev: Some(None),
        };
        event.validate()?;
        Ok(event)
    }

    /// Parses leaf bytes back into an event, refusing bytes that are not exactly the
    /// canonical form: two encodings of one event must never both be accepted as leaves.
    pub fn from_leaf(bytes: &[u8]) -> Result<Event, EventError> {
        let event: Event =
            serde_json::from_slice(bytes).map_err(|e| EventError::Json(e.to_string()))?;
        event.validate()?;
        if leaf_bytes(&event)? != bytes {
            return Err(EventError::NotCanonical);
        }
        Ok(event)
    }

    /// Checks the fields a leaf must have valid (version, time, subject, actor): what
    /// [`Event::new`] checks, for an event whose public fields were set directly.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.v != EVENT_VERSION {
            return Err(EventError::Invalid {
                field: "v",
                reason: format!("version {} is not {EVENT_VERSION}", self.v),
            });
        }
        if !is_rfc3339(&self.at) {
            return Err(EventError::Invalid {
                field: "at",
                reason: format!("{:?} is not an RFC 3339 date-time", self.at),
            });
        }
        if self.subject.is_empty() {
            return Err(EventError::Invalid {
                field: "subject",
                reason: "is empty".to_owned(),
            });
        }
        if self.actor.is_empty() {
            return Err(EventError::Invalid {
                field: "actor",
                reason: "is empty".to_owned(),
            });
        }
        Ok(())
    }
}

/// The leaf data of `event` in the log: its RFC 8785 canonical JSON.
pub fn leaf_bytes(event: &Event) -> Result<Vec<u8>, CanonicalError> {
    // Serializing this struct cannot fail: every field is a string, number, enum or Value.
    let value = serde_json::to_value(event).unwrap_or(Value::Null);
    canonical::canonicalize(&value)
}

/// RFC 3339 §5.6 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, with field ranges
/// checked (a leap second 60 is allowed; days are not checked against the month).
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let fixed = (|| {
        let (_year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        let separators = b.get(4) == Some(&b'-')
            && b.get(7) == Some(&b'-')
            && matches!(b.get(10), Some(b'T' | b't'))
            && b.get(13) == Some(&b':')
            && b.get(16) == Some(&b':');
        let ranges = (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second <= 60;
        Some(separators && ranges)
    })();
    if fixed != Some(true) {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return false;
        }
        rest = &fraction[len..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let all_digits = [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit());
            all_digits && (h1 - b'0') * 10 + (h2 - b'0') < 24 && (m1 - b'0') * 10 + (m2 - b'0') < 60
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_shapes() {
        for ok in [
            "2026-11-27T02:40:23Z",
            "1985-04-12T23:20:50.52Z",
            "1996-12-19T16:39:57-08:00",
            "1990-12-31T23:59:60z",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27 02:40:23Z",
            "2026-13-01T00:00:00Z",
            "2026-11-27T02:40:23",
            "2026-11-27T02:40:23.Z",
            "2026-11-27T02:40:23+0100",
            "2026-11-27T24:00:00Z",
            "２026-11-27T02:40:23Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
