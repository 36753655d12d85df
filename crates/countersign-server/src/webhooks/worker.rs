//! The delivery worker: claims due notifications from the outbox under a lease (safe with
//! several server processes on one database), POSTs each body signed with HMAC-SHA256 over
//! `timestamp.body`, retries failures with capped exponential backoff and jitter,
//! dead-letters a row after its last attempt, records every attempt in the delivery log,
//! and prunes settled rows past their retention.
//!
//! The worker's own times (an attempt's start, the signature's timestamp, when to prune
//! next) come from the state's `Clock`. When a row is due again and when a lease expires
//! are the database's clock (see countersign-store's `outbox`), so that processes with
//! skewed clocks agree on them.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use countersign_store::{Attempt, Claimed, OutboxItem, Outcome, Store};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use super::config::{Target, WebhookConfig};
use crate::{AppState, Clock, Metrics};

/// The `X-Countersign-Signature` value for `body` sent at `timestamp` (Unix seconds):
/// `sha256=` and the lower-case hex HMAC-SHA256, keyed with the secret, of
/// `"{timestamp}.{body}"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The names of the delivery workers one `AppState` starts, for their leases: unique across
/// processes, restarts, the several servers one process may run and the several workers one
/// state may start (each [`crate::run`]).
#[derive(Debug)]
pub(crate) struct WorkerNames {
    /// Differs between states and processes.
    nonce: u64,
    /// Workers started with this state so far.
    started: AtomicU64,
}

impl WorkerNames {
    pub(crate) fn new() -> WorkerNames {
        // 64 random bits from the standard library's randomly keyed hasher: its keys come
        // from the OS once per thread and change with every `RandomState`, so two states
        // never draw the same one. Not the clock, which tests stop; and no dependency for
        // what only needs to differ.
        let nonce = RandomState::new().hash_one(std::process::id());
        WorkerNames {
            nonce,
            started: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> String {
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        format!("worker-{}-{:016x}-{n}", std::process::id(), self.nonce)
    }
}

fn unix_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What every delivery of one worker needs.
#[derive(Clone)]
struct Worker {
    store: Store,
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
    metrics: Arc<Metrics>,
    clock: Clock,
    /// The lease owner: this worker's name.
    owner: Arc<str>,
}

/// The delivery worker: claims due notifications, delivers them (up to `concurrency` at
/// once), and stops when `stop` turns true or its sender is dropped, after finishing the
/// deliveries in flight (each bounded by the timeout). A claimed row whose worker stopped
/// before settling it is claimed again when its lease expires.
async fn work(worker: Worker, mut stop: watch::Receiver<bool>) {
    let Worker {
        store,
        config,
        clock,
        owner,
        ..
    } = &worker;
    let lease = u64::try_from(config.delivery.lease().as_millis()).unwrap_or(u64::MAX);
    let retention = u64::try_from(config.delivery.retention.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(targets = config.targets.len(), %owner, "webhook delivery worker started");
    let mut pruned_at: Option<SystemTime> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        // Every process prunes; deleting what another already deleted is a no-op. A clock
        // set back counts as due: waiting for it to catch up could skip pruning for long.
        let now = clock.now();
        if pruned_at.is_none_or(|at| !now.duration_since(at).is_ok_and(|d| d < PRUNE_EVERY)) {
            pruned_at = Some(now);
            match store.prune_notifications(retention).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "webhooks: pruned settled notifications"),
                Err(e) => tracing::warn!(error = %e, "webhooks: pruning settled notifications"),
            }
        }
        match store
            .claim_notifications(owner, lease, config.delivery.concurrency)
            .await
        {
            Ok(claimed) if !claimed.is_empty() => {
                let mut deliveries = tokio::task::JoinSet::new();
                for claimed in claimed {
                    deliveries.spawn(deliver(worker.clone(), claimed));
                }
                while deliveries.join_next().await.is_some() {}
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhooks: claiming due notifications"),
        }
        tokio::select! {
            // Changed to true, or the sender is gone: either way, stop.
            _ = stop.changed() => break,
            () = tokio::time::sleep(config.delivery.poll_interval) => {}
        }
    }
    tracing::info!(%owner, "webhook delivery worker stopped");
}

/// How often a worker deletes notifications past their retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One attempt at one claimed row, recorded in the delivery log and settled.
async fn deliver(worker: Worker, claimed: Claimed) {
    let Worker {
        store,
        client,
        config,
        metrics,
        clock,
        owner,
    } = worker;
    let Claimed { item, attempt } = claimed;
    let target = config.targets.iter().find(|t| t.name == item.target);
    let started = clock.now();
    // How long the request took is measured, not read from the clock (which tests stop).
    let timer = Instant::now();
    let (status, error) = match target {
        Some(target) => post(&client, target, &item, attempt, started).await,
        None => (
            None,
            Some(format!(
                "target {:?} is not configured on this server",
                item.target
            )),
        ),
    };
    let duration = timer.elapsed();
    let delivered = error.is_none();
    let outcome = if delivered {
        Outcome::Delivered
    } else if target.is_none() || attempt >= config.delivery.max_attempts {
        Outcome::Dead
    } else {
        let after = config.delivery.retry_delay(&item.id, attempt);
        Outcome::Retry {
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        }
    };
    let record = Attempt {
        outbox: item.id.clone(),
        notification: item.notification.clone(),
        target: item.target.clone(),
        url: target.map(Target::origin).unwrap_or_default(),
        attempt,
        started_at_ms: unix_millis(started),
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        status,
        error: error.clone(),
    };
    match outcome {
        Outcome::Delivered => {
            tracing::info!(notification = %item.notification, target = %item.target, attempt, "webhook delivered");
        }
        Outcome::Retry { after_ms } => {
            tracing::warn!(notification = %item.notification, target = %item.target, attempt, after_ms, error = error.as_deref().unwrap_or(""), "webhook delivery failed; will retry");
        }
        Outcome::Dead => {
            tracing::error!(notification = %item.notification, target = %item.target, attempt, error = error.as_deref().unwrap_or(""), "webhook delivery failed for the last time; dead-lettered");
        }
    }
    metrics.observe_delivery(&item.target, outcome.as_str());
    match store.record_attempt(&owner, &record, outcome).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            notification = %item.notification, target = %item.target,
            "webhooks: the lease ran out during the attempt; another worker owns the row now"
        ),
        Err(e) => tracing::error!(
            notification = %item.notification, target = %item.target, error = %e,
            "webhooks: recording the attempt failed; the row is retried when its lease expires"
        ),
    }
}

/// The longest response body quoted in the delivery log.
const ERROR_BODY_BYTES: usize = 256;

/// POSTs the signed payload; `(status, None)` when delivered (2xx), else why not.
async fn post(
    client: &reqwest::Client,
    target: &Target,
    item: &OutboxItem,
    attempt: u32,
    now: SystemTime,
) -> (Option<u16>, Option<String>) {
    let timestamp = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let sent = client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Countersign-Id", &item.notification)
        .header("X-Countersign-Event", &item.kind)
        .header("X-Countersign-Attempt", attempt.to_string())
        .header("X-Countersign-Timestamp", timestamp.to_string())
        .header(
            "X-Countersign-Signature",
            signature(target.secret(), timestamp, item.payload.as_bytes()),
        )
        .body(item.payload.clone())
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(e) => return (None, Some(transport_error(e))),
    };
    let status = response.status();
    if status.is_success() {
        return (Some(status.as_u16()), None);
    }
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(ERROR_BODY_BYTES);
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    let error = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    (Some(status.as_u16()), Some(error))
}

/// The error and its causes in one line, without the URL (which may hold a secret).
pub(crate) fn transport_error(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out: "
    } else if error.is_connect() {
        "could not connect: "
    } else {
        ""
    };
    let error = error.without_url();
    let mut text = format!("{kind}{error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Spawns the delivery worker when webhooks are configured; it stops when `stop` turns
/// true or is dropped.
pub(crate) fn spawn(
    state: &AppState,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let config = state.webhooks.clone()?;
    let client = reqwest::Client::builder()
        .timeout(config.delivery.timeout)
        // A redirect is a failed delivery: following one would send the signed body
        // somewhere the operator did not configure.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
        .build();
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; nothing is delivered");
            return None;
        }
    };
    let worker = Worker {
        store: state.store.clone(),
        client,
        config,
        metrics: Arc::clone(&state.metrics),
        clock: state.clock.clone(),
        owner: state.workers.next().into(),
    };
    Some(tokio::spawn(work(worker, stop)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The value the docs/server.md recipes give for this input (cross-checked with
        // `openssl dgst -sha256 -hmac` and Python's hmac).
        assert_eq!(
            signature(b"secret-secret-16", 1_767_603_600, br#"{"a":1}"#),
            "sha256=45d5266d68ab8e1ab7146b311137b3880feba7b9d9154b2537a781dbe9573ba0"
        );
    }
}
