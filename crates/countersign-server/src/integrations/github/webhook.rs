//! `POST /v1/integrations/github/webhook`: authenticate a delivery, answer it once, hand
//! it to what follows its event.
//!
//! The order is fixed: the integration must be configured (404 otherwise: no secret, no
//! delivery accepted), the signature must verify over the raw body (401, logged at `warn`,
//! before a byte is parsed), the delivery and event headers must be sane (422), then a
//! delivery answered before (by its id, or by its body: the id is not signed) is answered
//! alike ([`DeliveryAnswer`] as recorded) and nothing else happens. Otherwise the work runs in a task of its own, so GitHub hanging up (it waits
//! 10 s) does not cancel it halfway: the answer is recorded in the transaction of its effect.
//! An answer is recorded only when it is final (2xx): a 5xx (a fetch that failed, the
//! database) records nothing, and GitHub's redelivery does the work.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_store::{GithubDelivery, Tx};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::payload::{self, Envelope};
use super::{Github, pulls, push, signature};
use crate::AppState;
use crate::error::{ApiError, Problem};

/// The largest delivery accepted. GitHub caps payloads at 25 MB, but the events followed
/// here are far smaller (a push lists at most 20 commits in full); a larger one is a 413.
pub const WEBHOOK_BODY_LIMIT: usize = crate::EVIDENCE_BODY_LIMIT;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(webhook))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
}

/// How long a delivery that lost the race to record its answer waits for the winner's.
const RACE_WAITS: u32 = 40;
const RACE_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// What the server did with a delivery; the same answer for every redelivery of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAnswer {
    /// `X-GitHub-Delivery`.
    pub delivery: String,
    /// `X-GitHub-Event`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `proposed`, `head_moved`, `closed`, `merged`, `approved`, `rejected`, `unchanged`,
    /// `not_counted` (a review that gives no verdict: its reviewer is not an eligible
    /// person, or it is of another commit), `withdrawn`, `linked` (an edited description
    /// named findings the proposal now fixes too), `refused` (the proposal layer refused
    /// the change; `reason` says why), `recorded` (a push), `pong` or `ignored`.
    pub outcome: String,
    /// The proposal the delivery concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    /// The proposal's state afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Why, for anything but a plain success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A push: the runs queued for the fleet on the pushed commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<usize>,
    /// A merge (a merged pull request, or the push that landed one): the post-merge runs
    /// queued to verify the fixes of merged proposals (cause `merge:p-…`); 0 when another
    /// announcement of the same merge queued them already, or its commit is not on a
    /// protected branch yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_runs: Option<usize>,
}

/// One authenticated delivery being handled.
pub(crate) struct Delivery {
    pub id: String,
    /// SHA-256 of the signed body, lower-case hex.
    pub digest: String,
    pub event: String,
    pub action: Option<String>,
    /// The App installation that sent it.
    pub installation: Option<u64>,
}

impl Delivery {
    /// An answer to this delivery with `outcome`.
    pub(crate) fn answer(&self, outcome: &str) -> DeliveryAnswer {
        DeliveryAnswer {
            delivery: self.id.clone(),
            event: self.event.clone(),
            action: self.action.clone(),
            outcome: outcome.to_owned(),
            proposal: None,
            state: None,
            reason: None,
            runs: None,
            verification_runs: None,
        }
    }
}

impl DeliveryAnswer {
    pub(crate) fn about(mut self, proposal: &countersign_store::Proposal) -> DeliveryAnswer {
        self.proposal = Some(proposal.id.clone());
        self.state = Some(proposal.state.as_str().to_owned());
        self
    }

    pub(crate) fn because(mut self, reason: impl Into<String>) -> DeliveryAnswer {
        self.reason = Some(reason.into());
        self
    }
}

fn respond(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

fn replay(recorded: GithubDelivery) -> Response {
    let status = StatusCode::from_u16(recorded.status).unwrap_or(StatusCode::OK);
    respond(status, recorded.response)
}

/// Starts the transaction of a delivery's effect; `Err` with the recorded answer when
/// another request recorded this delivery meanwhile.
pub(crate) async fn begin(
    state: &AppState,
    delivery: &Delivery,
) -> Result<Result<Tx, Response>, ApiError> {
    let mut tx = state.store.begin().await?;
    if let Some(recorded) = tx.github_delivery(&delivery.id, &delivery.digest).await? {
        tx.rollback().await?;
        return Ok(Err(replay(recorded)));
    }
    Ok(Ok(tx))
}

/// Records `answer` (sent with `status`) in `tx` and commits: the delivery's effect and its
/// answer together. When another request recorded the delivery first, `tx` is dropped and
/// that request's answer given.
pub(crate) async fn commit(
    state: &AppState,
    mut tx: Tx,
    delivery: &Delivery,
    status: StatusCode,
    answer: &DeliveryAnswer,
) -> Result<Response, ApiError> {
    let body = serde_json::to_string(answer).map_err(|e| ApiError::Internal(e.to_string()))?;
    let recorded = GithubDelivery {
        status: status.as_u16(),
        response: body.clone(),
    };
    if !tx
        .put_github_delivery(&delivery.id, &delivery.digest, &delivery.event, &recorded)
        .await?
    {
        tx.rollback().await?;
        // The other request's answer becomes visible when its batch commits: wait for it a
        // little rather than send GitHub a failure it will not retry.
        for _ in 0..RACE_WAITS {
            if let Some(first) = state
                .store
                .github_delivery(&delivery.id, &delivery.digest)
                .await?
            {
                return Ok(replay(first));
            }
            tokio::time::sleep(RACE_WAIT).await;
        }
        return Err(ApiError::Conflict(
            "this delivery is being handled by another request".into(),
        ));
    }
    tx.commit().await?;
    tracing::info!(
        delivery = %delivery.id, event = %delivery.event, outcome = %answer.outcome,
        proposal = answer.proposal.as_deref().unwrap_or(""), "github: delivery handled"
    );
    Ok(respond(status, body))
}

/// Records an answer that changes nothing else.
pub(crate) async fn record(
    state: &AppState,
    delivery: &Delivery,
    status: StatusCode,
    answer: &DeliveryAnswer,
) -> Result<Response, ApiError> {
    match begin(state, delivery).await? {
        Ok(tx) => commit(state, tx, delivery, status, answer).await,
        Err(replayed) => Ok(replayed),
    }
}

/// Acknowledges and ignores: 202, recorded.
pub(crate) async fn ignore(
    state: &AppState,
    delivery: &Delivery,
    reason: impl Into<String>,
) -> Result<Response, ApiError> {
    let answer = delivery.answer("ignored").because(reason);
    record(state, delivery, StatusCode::ACCEPTED, &answer).await
}

/// A header that must be there, one of `allowed` characters, at most `max` long.
fn header<'h>(
    headers: &'h HeaderMap,
    name: &str,
    max: usize,
    allowed: fn(char) -> bool,
) -> Result<&'h str, ApiError> {
    let value = headers.get(name).ok_or_else(|| {
        ApiError::Invalid(format!(
            "{name}: missing: GitHub sends it with every delivery"
        ))
    })?;
    value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= max && v.chars().all(allowed))
        .ok_or_else(|| ApiError::Invalid(format!("{name}: not a value GitHub sends")))
}

/// A GitHub webhook delivery (`pull_request`, `pull_request_review`, `push`; any other event
/// is acknowledged and ignored). Authenticated by `X-Hub-Signature-256`, not a bearer token.
#[utoipa::path(
    post, path = "/v1/integrations/github/webhook",
    request_body(content = Object, description = "The delivery's payload, byte for byte as GitHub sent it (signed)", content_type = "application/json"),
    params(
        ("X-GitHub-Event" = String, Header, description = "The event: pull_request, pull_request_review, push, ping, ..."),
        ("X-GitHub-Delivery" = String, Header, description = "The delivery's id: a redelivery is answered as the first delivery was, and changes nothing"),
        ("X-Hub-Signature-256" = String, Header, description = "sha256= and the hex HMAC-SHA256 of the body under the webhook secret")
    ),
    responses(
        (status = 200, body = DeliveryAnswer, description = "Handled (see outcome), or a redelivery of a handled delivery"),
        (status = 202, body = DeliveryAnswer, description = "Acknowledged and ignored"),
        (status = 401, body = Problem, description = "No signature, or one that does not verify"),
        (status = 404, body = Problem, description = "The GitHub integration is not configured"),
        (status = 409, body = Problem, description = "The same delivery is being handled by another request"),
        (status = 503, body = Problem, description = "A commit could not be fetched or is not in the server's repository yet: nothing was recorded, redeliver")
    )
)]
async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(github) = state.github.clone() else {
        return Err(ApiError::NotFound(
            "the GitHub integration is not configured on this server".into(),
        ));
    };
    let signature_header = headers.get("x-hub-signature-256").map(|v| v.as_bytes());
    if let Err(why) = signature::verify(
        github.config.webhook_secret.bytes(),
        signature_header,
        &body,
    ) {
        // Only what GitHub's headers claim: nothing of the body is trusted or logged.
        let claimed = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(64).collect::<String>())
                .unwrap_or_default()
        };
        tracing::warn!(
            delivery = %claimed("x-github-delivery"), event = %claimed("x-github-event"),
            reason = why.as_str(), "github: delivery refused: its signature does not verify"
        );
        state.metrics.observe_github_refusal(why.as_str());
        return Err(ApiError::Unauthorized(why.to_string()));
    }
    let id = header(&headers, "x-github-delivery", 128, |c| {
        c.is_ascii_alphanumeric() || c == '-'
    })?
    .to_owned();
    let event = header(&headers, "x-github-event", 64, |c| {
        c.is_ascii_lowercase() || c == '_'
    })?
    .to_owned();
    // The delivery id is a header the signature does not cover: a signed body seen before
    // is that delivery again, whatever id it comes with (a captured approval sent again
    // must not overturn the reviewer's later verdict).
    let digest = hex::encode(Sha256::digest(&body));
    if let Some(recorded) = state.store.github_delivery(&id, &digest).await? {
        return Ok(replay(recorded));
    }
    // The work runs in a task of its own: a caller that hangs up must not cut a delivery in
    // half (its transaction would roll back, but a fetch or a decision would be wasted).
    let task = tokio::spawn(handle(state, github, id, digest, event, body));
    task.await
        .map_err(|e| ApiError::Internal(format!("the delivery's task: {e}")))?
}

#[derive(Deserialize)]
struct Action {
    action: Option<String>,
}

async fn handle(
    state: AppState,
    github: std::sync::Arc<Github>,
    id: String,
    digest: String,
    event: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    let envelope: Envelope = payload::parse(&event, &body)?;
    let action: Action = payload::parse(&event, &body)?;
    let delivery = Delivery {
        id,
        digest,
        event,
        action: action.action,
        installation: envelope.installation.as_ref().map(|i| i.id),
    };
    if delivery.event == "ping" {
        let answer = delivery.answer("pong");
        return record(&state, &delivery, StatusCode::OK, &answer).await;
    }
    if !matches!(
        delivery.event.as_str(),
        "pull_request" | "pull_request_review" | "push"
    ) {
        return ignore(
            &state,
            &delivery,
            format!("countersign does not follow {} events", delivery.event),
        )
        .await;
    }
    let repository = envelope.repository.ok_or_else(|| {
        ApiError::Invalid(format!(
            "the {} payload: repository: missing",
            delivery.event
        ))
    })?;
    let Some(followed) = github.config.repository(&repository.full_name).cloned() else {
        return ignore(
            &state,
            &delivery,
            format!(
                "repository {} is not followed by this server",
                repository.full_name
            ),
        )
        .await;
    };
    let path = state.repos.get(&followed.repo).cloned().ok_or_else(|| {
        ApiError::Internal(format!(
            "GitHub repository {} maps to {:?}, which is not a configured repository",
            followed.github, followed.repo
        ))
    })?;
    let target = pulls::Target {
        github: &github,
        followed: &followed,
        path: &path,
    };
    match delivery.event.as_str() {
        "pull_request" => pulls::pull_request(&state, &target, &delivery, &body).await,
        "pull_request_review" => pulls::review(&state, &target, &delivery, &body).await,
        _ => push::push(&state, &target, &delivery, &body).await,
    }
}
