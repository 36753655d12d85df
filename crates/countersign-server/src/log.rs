//! `/v1/log`: the audit log over HTTP, for auditors and monitors who do not trust the
//! server's database. Signed checkpoints, the verifier key, entries, and inclusion and
//! consistency proofs, in the formats of the CLI and of bundles (hashes base64, leaves as
//! the event's canonical JSON text).
//!
//! Readable by any valid token. A checkpoint needs the server's log key: without one,
//! `/checkpoint` and `/key` answer 503. Every other answer is checked by its reader against
//! a signed checkpoint, so nothing here needs to be trusted.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use countersign_audit::{Checkpoint, SignedCheckpoint, Signer};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};

/// The most entries one `/v1/log/entries` page holds.
pub const MAX_PAGE: u64 = 1000;

const TEXT: &str = "text/plain; charset=utf-8";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkpoint))
        .routes(routes!(key))
        .routes(routes!(entries))
        .routes(routes!(inclusion))
        .routes(routes!(consistency))
}

fn signer(state: &AppState) -> Result<&Signer, ApiError> {
    state.log_signer.as_deref().ok_or_else(|| {
        ApiError::Unavailable(
            "this server has no log key, so it signs no checkpoint (start it with --log-key)"
                .into(),
        )
    })
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::Invalid(e.body_text()))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, TEXT)], body).into_response()
}

/// The signed checkpoint of the whole log as it is now: the latest stored one when it is of
/// the current size and signed by `signer`, else a new one, stored (one per size). Should
/// another note hold that size already (a different key signed it), the new one is served
/// without being stored: it verifies with this server's key and describes the same tree.
async fn current_checkpoint(state: &AppState, signer: &Signer) -> Result<String, ApiError> {
    let size = state.store.log_size().await?;
    if let Some(latest) = state.store.latest_checkpoint().await?
        && latest.size == size
        && SignedCheckpoint::open(
            latest.signed_note.as_bytes(),
            std::slice::from_ref(&signer.verifier()),
        )
        .is_ok()
    {
        return Ok(latest.signed_note);
    }
    let root = state.store.tree_hash(size).await?;
    let body = Checkpoint::new(signer.name(), size, root)
        .map_err(|e| ApiError::Internal(format!("checkpoint: {e}")))?;
    let note = SignedCheckpoint::sign(&body, signer)
        .map_err(|e| ApiError::Internal(format!("signing a checkpoint: {e}")))?;
    match state.store.put_checkpoint(&note, size).await {
        Ok(()) => {}
        Err(countersign_store::Error::Duplicate { .. }) => {
            tracing::warn!(
                size,
                "a checkpoint of this size signed by another key is stored"
            );
        }
        Err(error) => return Err(error.into()),
    }
    Ok(note)
}

/// The current signed checkpoint: a C2SP tlog-checkpoint in a C2SP signed note, verifiable
/// with `/v1/log/key`. A new one is signed when the log grew since the last.
#[utoipa::path(
    get, path = "/v1/log/checkpoint",
    responses(
        (status = 200, content_type = "text/plain", body = String, description = "The signed note"),
        (status = 401, body = Problem), (status = 503, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn checkpoint(State(state): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    let signer = signer(&state)?;
    Ok(text(current_checkpoint(&state, signer).await?))
}

/// The log's verifier key (`<name>+<hex id>+<base64 key>`), what `countersign log verify`,
/// `log consistency` and `bundle verify` take as `--log-key`.
#[utoipa::path(
    get, path = "/v1/log/key",
    responses(
        (status = 200, content_type = "text/plain", body = String, description = "The note verifier key"),
        (status = 401, body = Problem), (status = 503, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn key(State(state): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    Ok(text(format!("{}\n", signer(&state)?.verifier())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// The first index, from 0 (default 0); at most the log's size.
    pub start: Option<u64>,
    /// One past the last index (default and cap: the log's size); at most 1000 entries per page.
    pub end: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    pub index: u64,
    /// The leaf: the event's canonical JSON (RFC 8785) as text, byte for byte what is hashed.
    pub leaf: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntriesPage {
    pub start: u64,
    /// One past the last entry returned.
    pub end: u64,
    /// The log's size when read.
    pub size: u64,
    pub entries: Vec<LogEntry>,
}

/// A page of log entries `[start, end)`.
#[utoipa::path(
    get, path = "/v1/log/entries", params(EntriesQuery),
    responses((status = 200, body = EntriesPage), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn entries(
    State(state): State<AppState>,
    _caller: Caller,
    q: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<EntriesPage>, ApiError> {
    let q = query(q)?;
    let size = state.store.log_size().await?;
    let start = q.start.unwrap_or(0);
    if start > size {
        return Err(ApiError::Invalid(format!(
            "start {start} is beyond the log, which has {size} entries"
        )));
    }
    let end = match q.end {
        Some(end) if end < start => {
            return Err(ApiError::Invalid(format!(
                "end {end} is before start {start}"
            )));
        }
        Some(end) if end - start > MAX_PAGE => {
            return Err(ApiError::Invalid(format!(
                "{start}..{end} is {} entries; a page holds at most {MAX_PAGE}",
                end - start
            )));
        }
        Some(end) => end.min(size),
        None => start.saturating_add(MAX_PAGE).min(size),
    };
    let entries = state
        .store
        .entries(start..end)
        .await?
        .into_iter()
        .map(|e| {
            String::from_utf8(e.leaf)
                .map(|leaf| LogEntry {
                    index: e.index,
                    leaf,
                })
                .map_err(|_| ApiError::Internal(format!("entry {} is not UTF-8", e.index)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(EntriesPage {
        start,
        end,
        size,
        entries,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The entry's index.
    pub index: u64,
    /// The tree size of the checkpoint the proof leads to; at most the log's size.
    pub size: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InclusionProofView {
    pub index: u64,
    pub size: u64,
    /// RFC 9162 audit path, sibling hashes from the leaf up, base64 (as in bundles).
    pub proof: Vec<String>,
}

/// Refuses a tree size the log does not have yet.
async fn within_log(state: &AppState, name: &str, size: u64) -> Result<(), ApiError> {
    let log = state.store.log_size().await?;
    if size > log {
        return Err(ApiError::Invalid(format!(
            "{name} {size} is beyond the log, which has {log} entries"
        )));
    }
    Ok(())
}

/// Proof that entry `index` is in the tree of the first `size` entries.
#[utoipa::path(
    get, path = "/v1/log/proofs/inclusion", params(InclusionQuery),
    responses((status = 200, body = InclusionProofView), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn inclusion(
    State(state): State<AppState>,
    _caller: Caller,
    q: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<InclusionProofView>, ApiError> {
    let InclusionQuery { index, size } = query(q)?;
    if index >= size {
        return Err(ApiError::Invalid(format!(
            "index {index} is not in a tree of size {size}"
        )));
    }
    within_log(&state, "size", size).await?;
    let proof = state.store.inclusion_proof(index, size).await?;
    Ok(Json(InclusionProofView {
        index,
        size,
        proof: proof.path.iter().map(|h| h.to_base64()).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size.
    pub old: u64,
    /// The newer tree size; at least `old`, at most the log's size.
    pub new: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProofView {
    pub old: u64,
    pub new: u64,
    /// RFC 9162 consistency proof, base64 hashes; empty when `old` is 0 or equals `new`.
    pub proof: Vec<String>,
}

/// Proof that the tree of `old` entries is a prefix of the tree of `new` entries.
#[utoipa::path(
    get, path = "/v1/log/proofs/consistency", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProofView), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn consistency(
    State(state): State<AppState>,
    _caller: Caller,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyProofView>, ApiError> {
    let ConsistencyQuery { old, new } = query(q)?;
    if old > new {
        return Err(ApiError::Invalid(format!(
            "old {old} is larger than new {new}"
        )));
    }
    within_log(&state, "new", new).await?;
    let proof = state.store.consistency_proof(old, new).await?;
    Ok(Json(ConsistencyProofView {
        old,
        new,
        proof: proof.path.iter().map(|h| h.to_base64()).collect(),
    }))
}

/// The server's own check of its log, recorded ([`countersign_store::LogCheck`]) and shown on
/// the console's audit page: the latest signed checkpoint must extend the one the previous
/// passing check saw (no rollback, no fork: what `countersign log monitor` checks with its
/// state file), and the whole stored log must verify against it ([`countersign_store::verify`]).
///
/// It is the server vouching for its own database, so it catches corruption and an edit made
/// without the log key, not an operator who also rewrites `log_checks`: a monitor that keeps
/// its own state elsewhere remains the independent check. `None` without a log key (there is
/// no checkpoint to check against, and nothing is recorded).
pub(crate) async fn check_own_log(
    state: &AppState,
    by: &str,
) -> Result<Option<countersign_store::LogCheck>, ApiError> {
    let Some(signer) = state.log_signer.as_deref() else {
        return Ok(None);
    };
    let verifiers = [signer.verifier()];
    let latest = state.store.latest_checkpoint().await?;
    let previous = state.store.last_log_check(true).await?;
    let mut check = countersign_store::LogCheck {
        checked_at_ms: crate::runs::millis(state.clock.now()),
        checked_by: by.to_owned(),
        size: latest.as_ref().map(|c| c.size),
        signed_note: latest.as_ref().map(|c| c.signed_note.clone()),
        previous_size: None,
        ok: false,
        detail: String::new(),
    };
    let extends = match (
        &latest,
        previous.as_ref().and_then(|p| p.signed_note.clone()),
    ) {
        (Some(latest), Some(seen)) => {
            let opened = SignedCheckpoint::open(seen.as_bytes(), &verifiers)
                .map_err(|e| format!("the checkpoint the last passing check saw no longer opens with the log key: {e}"))
                .and_then(|old| {
                    SignedCheckpoint::open(latest.signed_note.as_bytes(), &verifiers)
                        .map(|new| (old.checkpoint, new.checkpoint))
                        .map_err(|e| format!("the latest checkpoint is refused: {e}"))
                });
            match opened {
                Ok((old, new)) => {
                    check.previous_size = Some(old.size());
                    countersign_store::check_extends(&state.store, &old, &new)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(reason) => Err(reason),
            }
        }
        _ => Ok(()),
    };
    match extends {
        Err(reason) => check.detail = reason,
        Ok(()) => match countersign_store::verify(&state.store, &verifiers).await {
            Ok(verified) => {
                check.ok = true;
                check.detail = match check.previous_size {
                    Some(old) => format!(
                        "{} entries match the latest checkpoint, which extends the one of size {old} seen by the last passing check ({} entries after it, not yet covered)",
                        verified.size, verified.beyond_checkpoint
                    ),
                    None => format!(
                        "{} entries match the latest checkpoint ({} after it, not yet covered); the first check, so no earlier checkpoint to compare with",
                        verified.size, verified.beyond_checkpoint
                    ),
                };
            }
            Err(error) => check.detail = error.to_string(),
        },
    }
    state.store.record_log_check(&check).await?;
    Ok(Some(check))
}
