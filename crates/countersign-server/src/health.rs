//! Probes and documents: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//!
//! None of these needs a token: they say nothing about proposals.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::AppState;
use crate::error::ApiError;

pub fn router(openapi: Arc<utoipa::openapi::OpenApi>) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
}

/// Ready when the database answers; 503 otherwise, so a load balancer stops sending work.
async fn ready(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if let Err(cause) = state.store.ping().await {
        tracing::warn!(%cause, "not ready: the database does not answer");
        return Err(ApiError::Unavailable(
            "the database does not answer; the cause is in the server's log".into(),
        ));
    }
    Ok("ready\n")
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
