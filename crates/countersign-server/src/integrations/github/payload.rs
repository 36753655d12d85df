//! The parts of GitHub's webhook payloads the integration reads (`pull_request`,
//! `pull_request_review`, `push`; shapes as in GitHub's "Webhook events and payloads" and
//! `@octokit/webhooks-types`). Unknown fields are ignored, since GitHub adds them; a missing
//! or mistyped field the integration needs is a 422 naming it (`parse`).
//!
//! Only shapes: what a payload means for a proposal is `pulls`' and `push`'s.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A payload of `event`, or a 422 naming the field that did not fit.
pub(crate) fn parse<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, ApiError> {
    axum::Json::<T>::from_bytes(body)
        .map(|axum::Json(value)| value)
        .map_err(|rejection| {
            ApiError::Invalid(format!(
                "the {event} payload: {}",
                rejection.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                )
            ))
        })
}

/// What every event carries: which repository, and the App installation that sent it.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub repository: Option<Repository>,
    pub installation: Option<Installation>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Repository {
    /// `owner/name`.
    pub full_name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Installation {
    pub id: u64,
}

/// A GitHub account.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct User {
    pub login: String,
    pub id: u64,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl User {
    /// A bot account (`dependabot[bot]`, an App's account): never a person, whatever a
    /// catalog says.
    pub fn is_bot(&self) -> bool {
        !self.kind.eq_ignore_ascii_case("User")
    }
}

/// The `head` or `base` of a pull request.
#[derive(Debug, Deserialize)]
pub(crate) struct Tip {
    /// The branch name (without `refs/heads/`).
    #[serde(rename = "ref")]
    pub branch: String,
    pub sha: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PullRequest {
    pub number: u64,
    /// `open` or `closed`.
    #[serde(default)]
    pub state: Option<String>,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    pub user: User,
    pub head: Tip,
    pub base: Tip,
    #[serde(default)]
    pub merged: Option<bool>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
}

/// `X-GitHub-Event: pull_request`.
#[derive(Debug, Deserialize)]
pub(crate) struct PullRequestEvent {
    pub action: String,
    pub pull_request: PullRequest,
    /// `edited`: what changed; a `base` entry means the pull request now targets another
    /// branch.
    #[serde(default)]
    pub changes: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Review {
    pub id: u64,
    /// Absent for a deleted account ("ghost").
    pub user: Option<User>,
    /// The commit the review is of; absent on very old reviews.
    pub commit_id: Option<String>,
    /// `approved`, `changes_requested`, `commented` or `dismissed` (any case).
    pub state: String,
    #[serde(default)]
    pub body: Option<String>,
}

/// The pull request of a review event (a smaller object than `pull_request`'s).
#[derive(Debug, Deserialize)]
pub(crate) struct ReviewedPull {
    pub number: u64,
}

/// `X-GitHub-Event: pull_request_review`.
#[derive(Debug, Deserialize)]
pub(crate) struct ReviewEvent {
    pub action: String,
    pub review: Review,
    pub pull_request: ReviewedPull,
}

/// `X-GitHub-Event: push`.
#[derive(Debug, Deserialize)]
pub(crate) struct PushEvent {
    /// `refs/heads/main`, `refs/tags/v1`.
    #[serde(rename = "ref")]
    pub reference: String,
    pub before: String,
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub forced: bool,
    /// Who pushed (`name` is the GitHub login for a push over the API or git).
    #[serde(default)]
    pub pusher: Option<Pusher>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Pusher {
    pub name: String,
}

/// A full commit id as GitHub writes it: 40 lower-case hex digits (64 for SHA-256
/// repositories). Anything else is refused before it reaches git.
pub(crate) fn commit_id(field: &str, value: &str) -> Result<String, ApiError> {
    let ok = matches!(value.len(), 40 | 64)
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(ApiError::Invalid(format!(
            "{field}: {value:?} is not a full commit id"
        )));
    }
    Ok(value.to_owned())
}

/// The all-zeros id GitHub sends for "no commit" (a created or deleted ref).
pub(crate) fn is_zero(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b == b'0')
}

/// Text to store (a title, a body, a comment): U+0000 replaced (neither database stores
/// it) and cut to `max` bytes on a character boundary.
pub(crate) fn storable(text: &str, max: usize) -> String {
    let mut text = text.replace('\0', "\u{FFFD}");
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_missing_field_is_named() {
        let error = parse::<PushEvent>("push", br#"{"ref": "refs/heads/main", "before": "a"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("the push payload"), "{error}");
        assert!(error.contains("after"), "{error}");
        let error = parse::<PullRequestEvent>(
            "pull_request",
            br#"{"action": "opened", "pull_request": {"number": 1, "title": "t", "user": {"login": "a", "id": 1, "type": "User"}, "head": {"ref": "x", "sha": 7}, "base": {"ref": "main", "sha": "b"}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("pull_request.head.sha"), "{error}");
    }

    #[test]
    fn commit_ids_are_full_lower_case_hex() {
        let id = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
        assert_eq!(commit_id("after", id).unwrap(), id);
        for bad in [
            "",
            "ec26c3e",
            &id.to_uppercase(),
            "--upload-pack=x",
            &format!("{id} "),
        ] {
            assert!(commit_id("after", bad).is_err(), "{bad:?}");
        }
        assert!(is_zero(&"0".repeat(40)));
        assert!(!is_zero(id));
    }

    #[test]
    fn stored_text_has_no_nul_and_a_bound() {
        assert_eq!(storable("a\0b", 10), "a\u{FFFD}b");
        assert_eq!(storable("ééé", 3), "é…");
    }
}
