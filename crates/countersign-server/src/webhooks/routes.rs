//! The webhook routes: the delivery log (`GET /v1/webhooks/deliveries`, admins and
//! auditors) and redelivering dead notifications (`POST /v1/webhooks/redeliver`, admins).
//! They read and requeue outbox rows; delivering is the worker's.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::body::Body;
use crate::error::{ApiError, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
}

/// The most attempts one page lists.
const MAX_PAGE: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// At most this many attempts, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only attempts with an id below this: the previous page's `next_before`.
    pub before: Option<i64>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    /// The notification id receivers deduplicate on.
    pub notification: String,
    pub target: String,
    /// The target's scheme, host and port (paths often hold secrets).
    pub url: String,
    /// From 1.
    pub attempt: u32,
    /// RFC 3339 UTC with milliseconds, the delivering worker's clock.
    pub started_at: String,
    pub duration_ms: u64,
    /// The response's status; absent when none came back.
    pub status: Option<u16>,
    /// Why the attempt failed.
    pub error: Option<String>,
    /// delivered, retry (scheduled again) or dead (no attempts left).
    pub outcome: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveriesView {
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `before` for the next, older page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Recent webhook delivery attempts (admin and auditor).
#[utoipa::path(
    get, path = "/v1/webhooks/deliveries", params(DeliveriesQuery),
    responses(
        (status = 200, body = DeliveriesView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveriesView>, ApiError> {
    caller.require(&[Role::Auditor], "read the webhook delivery log")?;
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit: {limit} is not between 1 and {MAX_PAGE}"
        )));
    }
    let rows = state.store.deliveries(limit, query.before).await?;
    let next_before = (rows.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| rows.last().map(|d| d.id))
        .flatten();
    let deliveries = rows
        .into_iter()
        .map(|d| {
            let started = UNIX_EPOCH
                + Duration::from_millis(u64::try_from(d.attempt.started_at_ms).unwrap_or(0));
            DeliveryView {
                id: d.id,
                notification: d.attempt.notification,
                target: d.attempt.target,
                url: d.attempt.url,
                attempt: d.attempt.attempt,
                started_at: humantime::format_rfc3339_millis(started).to_string(),
                duration_ms: d.attempt.duration_ms,
                status: d.attempt.status,
                error: d.attempt.error,
                outcome: d.outcome,
            }
        })
        .collect();
    Ok(Json(DeliveriesView {
        deliveries,
        next_before,
    }))
}

/// What to send again: the dead notifications of one target, or one of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    /// A configured target's name.
    pub target: String,
    /// Only this notification (its id, `ntf-…`); every dead one of the target when absent.
    pub notification: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RedeliverView {
    /// The outbox rows queued again (`<notification>/<target>`), sorted; empty when the target
    /// had no dead notification.
    pub requeued: Vec<String>,
}

/// Queue dead notifications again (admin): after a receiver's outage outlasted the retries.
/// They are due at once and get a fresh `max_attempts`, their attempts counted from 1 again
/// (`X-Countersign-Attempt`); receivers deduplicate on the notification id as always.
#[utoipa::path(
    post, path = "/v1/webhooks/redeliver", request_body = RedeliverRequest,
    responses(
        (status = 200, body = RedeliverView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<RedeliverRequest>,
) -> Result<Json<RedeliverView>, ApiError> {
    caller.require(&[], "redeliver webhook notifications")?;
    let configured = state
        .webhooks
        .as_ref()
        .is_some_and(|config| config.targets.iter().any(|t| t.name == body.target));
    if !configured {
        // Its notifications would only die again: the worker dead-letters a row whose
        // target is gone.
        return Err(ApiError::Invalid(format!(
            "target: {:?} is not a configured webhook target",
            body.target
        )));
    }
    let notification = body.notification.as_deref();
    let requeued = state.store.redeliver(&body.target, notification).await?;
    if let (Some(notification), true) = (notification, requeued.is_empty()) {
        return Err(
            match state
                .store
                .notification_state(notification, &body.target)
                .await?
            {
                None => ApiError::NotFound(format!(
                    "no notification {notification} for target {:?}",
                    body.target
                )),
                Some(other) => ApiError::Conflict(format!(
                    "notification {notification} for target {:?} is {other}, not dead",
                    body.target
                )),
            },
        );
    }
    tracing::info!(
        principal = %caller.principal,
        target = %body.target,
        count = requeued.len(),
        "dead webhook notifications queued again"
    );
    Ok(Json(RedeliverView { requeued }))
}
