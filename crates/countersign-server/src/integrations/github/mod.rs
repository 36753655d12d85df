//! The GitHub integration: `POST /v1/integrations/github/webhook` turns GitHub's deliveries
//! into the proposal lifecycle, and a worker reports each followed head back as the
//! `countersign` check (docs/github.md).
//!
//! Inbound, every delivery is authenticated by its `X-Hub-Signature-256` (HMAC-SHA256 of
//! the raw body under the webhook secret, compared in constant time) before anything is
//! read, and answered once: the answer is recorded by `X-GitHub-Delivery` in the
//! transaction of its effect, so a redelivery is answered alike and changes nothing.
//! - `pull_request` (`pulls`): opened or reopened → a proposal (its base the merge base of
//!   the pull request's base and head, its proposer the author's catalog User by
//!   `github.com/user-login`, else an agent), synchronize → a head move, closed → closed or
//!   merged, a new base → a new proposal superseding the old. The description's closing
//!   keywords (`Fixes F-12`, `fixes`) link findings, as `fixes` does for the API: read at
//!   open, at each synchronize and on an edited description; a link only adds suites.
//! - `pull_request_review` (`pulls`): approved or changes requested → a verdict of the
//!   reviewer's catalog User on the review's `commit_id`, through the lifecycle like any
//!   other (only people, never an author, only eligible ones, only on the current head).
//! - `push` to a protected branch (`push`): the server's branch follows (fast-forward only),
//!   the fleet runs the validation plan of the pushed change on the new tip (failures open
//!   findings), and the merges it lands get their fixes verified (post-merge runs of the
//!   reproducing suites, queued once with the merged pull request's).
//! - anything else is acknowledged (202) and ignored.
//!
//! Outbound (`checks`, `api`): check runs or commit statuses, as a GitHub App (an RS256 JWT
//! buys installation tokens, cached until they expire) or with a token.
//!
//! Not here: unlinking a finding (a description that stops naming it keeps the link: the
//! claim is logged, and its suites stay required).

mod api;
mod checks;
mod config;
mod fetch;
mod fixes;
mod payload;
mod people;
mod pulls;
mod push;
mod signature;
mod webhook;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use countersign_store::Tx;

pub use checks::CHECK_NAME;
pub(crate) use checks::spawn;
pub use config::{
    GithubAuth, GithubConfig, GithubConfigError, GithubRepository, MIN_SECRET_BYTES, Report,
};
pub use signature::hub_signature;
pub use webhook::{DeliveryAnswer, router};

use crate::AppState;
use crate::error::ApiError;

/// The principal of what GitHub causes (head moves, closes, merges): the events name the
/// delivery beside it.
pub const GITHUB_ACTOR: &str = "system:github";

/// The integration's state in a server: its configuration, the API client with its cached
/// installation tokens, the catalog logins of recent bases, one fetch at a time per
/// repository.
pub struct Github {
    pub config: GithubConfig,
    pub(crate) api: api::Api,
    pub(crate) people: people::Directory,
    fetching: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Github {
    pub(crate) fn new(config: GithubConfig) -> Result<Github, GithubConfigError> {
        let api = api::Api::new(&config).map_err(|reason| GithubConfigError::Invalid {
            at: "api".into(),
            reason,
        })?;
        Ok(Github {
            config,
            api,
            people: people::Directory::default(),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    /// The lock one repository's fetches take in turn: two fetches into one repository
    /// would race for its ref locks.
    fn fetch_lock(&self, path: &Path) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(
            self.fetching
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(path.to_owned())
                .or_default(),
        )
    }
}

/// Queues a report of proposal `id`'s check on `head`, in `tx` (the transaction of the
/// change): nothing when the integration is off or no pull request is followed by it.
pub(crate) async fn changed(
    state: &AppState,
    tx: &mut Tx,
    id: &str,
    head: &str,
) -> Result<(), ApiError> {
    if state.github.is_some() {
        tx.touch_github_check(id, head).await?;
    }
    Ok(())
}
