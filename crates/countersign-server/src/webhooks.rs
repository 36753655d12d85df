//! Webhook notifications: what is announced when a proposal changes state, the receiving
//! targets ([`WebhookConfig`]), the delivery worker, and `GET /v1/webhooks/deliveries`.
//!
//! A notification is queued in the store's outbox by [`notify`], inside the transaction that
//! changes the proposal's state and appends its audit event, together with a `notified`
//! event naming the targets: it exists exactly when the change committed. The worker that
//! [`crate::run`] spawns claims due rows under a lease (safe with several server processes on
//! one database), POSTs each body signed with HMAC-SHA256 over `timestamp.body`, retries
//! failures with capped exponential backoff and jitter, dead-letters a row after its last
//! attempt, and records every attempt in the delivery log. Delivery is at least once:
//! receivers deduplicate on the notification `id`. There is no ordering guarantee between
//! notifications; `log_index` orders them.
//!
//! Not here: redelivering a dead letter on request, and per-target rate limits.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use countersign_audit::{Event, EventKind};
use countersign_graph::entity_ref::{self, RefContext};
use countersign_graph::model::Kind;
use countersign_store::{Attempt, Claimed, OutboxItem, Outcome, Proposal, Store, Tx};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Role};
use crate::body::Body;
use crate::error::{ApiError, Problem};
use crate::{AppState, Metrics};

/// What a notification announces.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A `notify_and_proceed` decision: the change proceeds without a human, and the owning
    /// teams of the affected nodes are alerted.
    NotifyAndProceed,
    /// The proposal waits for human approval; the payload lists the eligible approvers.
    AwaitingApproval,
    /// The proposal is authorized: at once (`auto_merge`) or by enough approvals.
    Authorized,
    /// An eligible approver rejected the proposal's head.
    Rejected,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 4] = [
        NotificationKind::NotifyAndProceed,
        NotificationKind::AwaitingApproval,
        NotificationKind::Authorized,
        NotificationKind::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::NotifyAndProceed => "notify_and_proceed",
            NotificationKind::AwaitingApproval => "awaiting_approval",
            NotificationKind::Authorized => "authorized",
            NotificationKind::Rejected => "rejected",
        }
    }

    /// What entering `state` at `tier` announces, if anything. A `notify_and_proceed`
    /// authorization is announced as the alert that tier promises, not as a plain
    /// authorization.
    fn of(state: &str, tier: &str) -> Option<NotificationKind> {
        match state {
            "authorized" if tier == "notify_and_proceed" => {
                Some(NotificationKind::NotifyAndProceed)
            }
            "authorized" => Some(NotificationKind::Authorized),
            "awaiting_approval" => Some(NotificationKind::AwaitingApproval),
            "rejected" => Some(NotificationKind::Rejected),
            _ => None,
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shared secret. Never printed.
#[derive(Clone)]
struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The shortest secret accepted: 128 bits.
pub const MIN_SECRET_BYTES: usize = 16;

/// One receiver of notifications.
#[derive(Debug, Clone)]
pub struct Target {
    /// Unique among the targets; names the target in the outbox and the delivery log.
    pub name: String,
    pub url: reqwest::Url,
    secret: Secret,
    /// Only notifications about changes owned by one of these (normalized entity refs,
    /// `group:default/team-shop`); every notification when empty.
    pub teams: BTreeSet<String>,
    /// Only these kinds; every kind when empty.
    pub events: BTreeSet<NotificationKind>,
}

/// Why a webhook configuration was refused. `at` names the file, target and field.
#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}

fn invalid(at: impl Into<String>, reason: impl Into<String>) -> WebhookConfigError {
    WebhookConfigError::Invalid {
        at: at.into(),
        reason: reason.into(),
    }
}

impl Target {
    /// A target POSTing to `url` (`https://…`; plain `http://` only to a loopback host, see
    /// [`Target::allow_plain_http`]) signed with `secret` (at least [`MIN_SECRET_BYTES`]).
    pub fn new(
        name: &str,
        url: &str,
        secret: impl Into<Vec<u8>>,
    ) -> Result<Target, WebhookConfigError> {
        Target::build(name, url, secret.into(), false)
    }

    /// [`Target::new`] accepting a plain `http://` URL to any host, for a receiver on a
    /// trusted network. The signature still authenticates the body, but anyone on the path
    /// reads it.
    pub fn allow_plain_http(
        name: &str,
        url: &str,
        secret: impl Into<Vec<u8>>,
    ) -> Result<Target, WebhookConfigError> {
        Target::build(name, url, secret.into(), true)
    }

    fn build(
        name: &str,
        url: &str,
        secret: Vec<u8>,
        plain_http: bool,
    ) -> Result<Target, WebhookConfigError> {
        let at = format!("target {name:?}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                at,
                "name: letters, digits, `-`, `_` and `.` only, not empty",
            ));
        }
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| invalid(format!("{at}, url"), format!("{url:?} is not a URL: {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if plain_http || is_loopback(&parsed) => {}
            "http" => {
                return Err(invalid(
                    format!("{at}, url"),
                    "plain http is accepted only to a loopback host: use https, or set \
                     allow_plain_http = true for a receiver on a trusted network",
                ));
            }
            other => {
                return Err(invalid(
                    format!("{at}, url"),
                    format!("scheme {other:?}: expected https"),
                ));
            }
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                format!("{at}, url"),
                "credentials in the URL: the HMAC signature authenticates the server",
            ));
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(invalid(
                format!("{at}, secret"),
                format!(
                    "{} bytes; at least {MIN_SECRET_BYTES} are needed (e.g. `openssl rand -hex 32`)",
                    secret.len()
                ),
            ));
        }
        Ok(Target {
            name: name.to_owned(),
            url: parsed,
            secret: Secret(secret),
            teams: BTreeSet::new(),
            events: BTreeSet::new(),
        })
    }

    /// Only notifications about changes owned by one of `teams`: `team-shop`,
    /// `group:team-shop`, `group:default/team-shop` or a user ref (`user:alice`).
    pub fn with_teams<S: AsRef<str>>(
        mut self,
        teams: impl IntoIterator<Item = S>,
    ) -> Result<Target, WebhookConfigError> {
        for team in teams {
            let context = RefContext {
                default_kind: Some(Kind::Group),
                default_namespace: "default",
            };
            let parsed = entity_ref::parse(team.as_ref(), context)
                .map_err(|e| invalid(format!("target {:?}, teams", self.name), e.to_string()))?;
            self.teams.insert(parsed.to_string());
        }
        Ok(self)
    }

    /// Only notifications of these kinds.
    pub fn with_events(mut self, events: impl IntoIterator<Item = NotificationKind>) -> Target {
        self.events.extend(events);
        self
    }

    fn wants(&self, kind: NotificationKind, owners: &[String]) -> bool {
        (self.events.is_empty() || self.events.contains(&kind))
            && (self.teams.is_empty() || owners.iter().any(|o| self.teams.contains(o)))
    }

    /// Scheme, host and port: what the delivery log shows of the URL, since webhook URLs
    /// often carry a secret in their path or query.
    fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // IPv6 hosts come bracketed.
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// How the worker delivers: retries, timeouts, polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Attempts per notification and target before it is dead-lettered.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles with each failure...
    pub base_delay: Duration,
    /// ...up to this cap.
    pub max_delay: Duration,
    /// The whole request, connection to last byte.
    pub timeout: Duration,
    /// How often an idle worker looks for due notifications.
    pub poll_interval: Duration,
    /// Deliveries in flight at once per worker.
    pub concurrency: u32,
    /// How long delivered and dead notifications (and their attempts) are kept; pending
    /// ones are kept until settled.
    pub retention: Duration,
}

impl Default for DeliverySettings {
    /// 12 attempts over about five hours: 30 s, 1 min, 2 min, … capped at 1 h.
    fn default() -> Self {
        DeliverySettings {
            max_attempts: 12,
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            concurrency: 8,
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl DeliverySettings {
    fn check(&self) -> Result<(), WebhookConfigError> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err(invalid(
                "delivery, max_attempts",
                format!("{}: expected 1 to 100", self.max_attempts),
            ));
        }
        if self.base_delay.is_zero() || self.base_delay > self.max_delay {
            return Err(invalid(
                "delivery, base_delay",
                "must be more than zero and at most max_delay",
            ));
        }
        if self.timeout.is_zero() || self.poll_interval.is_zero() || self.retention.is_zero() {
            return Err(invalid(
                "delivery",
                "timeout, poll_interval and retention must be more than zero",
            ));
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err(invalid(
                "delivery, concurrency",
                format!("{}: expected 1 to 256", self.concurrency),
            ));
        }
        Ok(())
    }

    /// The wait after failed attempt `attempt` (from 1) of outbox row `id`: `base_delay ·
    /// 2^(attempt-1)` capped at `max_delay`, then jittered to between half and all of that.
    /// The jitter is drawn from a hash of the row and attempt rather than a random source:
    /// it spreads the retries of notifications that failed together (a receiver's outage)
    /// just as well, and the schedule of a row can be recomputed.
    pub fn retry_delay(&self, id: &str, attempt: u32) -> Duration {
        let doubling = attempt.saturating_sub(1).min(31);
        let full = self
            .base_delay
            .saturating_mul(1u32 << doubling)
            .min(self.max_delay);
        let half = full / 2;
        let hash = Sha256::digest(format!("{id}\n{attempt}").as_bytes());
        let draw = u128::from(u16::from_be_bytes([hash[0], hash[1]]));
        let extra = (full - half).as_nanos() * draw / u128::from(u16::MAX);
        half + Duration::from_nanos(u64::try_from(extra).unwrap_or(u64::MAX))
    }

    /// How long a claim holds a row: a worker that dies mid-delivery gives it back this long
    /// after claiming it.
    fn lease(&self) -> Duration {
        self.timeout.saturating_mul(2) + Duration::from_secs(5)
    }
}

/// The webhook targets and how to deliver to them; see [`crate::AppState::with_webhooks`].
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub targets: Vec<Target>,
    pub delivery: DeliverySettings,
}

/// `countersign serve --webhooks FILE`: see docs/server.md.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    delivery: DeliveryFile,
    #[serde(default, rename = "target")]
    targets: Vec<TargetFile>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryFile {
    max_attempts: Option<u32>,
    base_delay: Option<String>,
    max_delay: Option<String>,
    timeout: Option<String>,
    poll_interval: Option<String>,
    concurrency: Option<u32>,
    retention: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    name: String,
    url: String,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    /// Refused with a precise reason: a secret belongs in a file or the environment.
    secret: Option<toml::Value>,
    #[serde(default)]
    teams: Vec<String>,
    #[serde(default)]
    events: Vec<NotificationKind>,
    #[serde(default)]
    allow_plain_http: bool,
}

impl WebhookConfig {
    /// Targets with the default [`DeliverySettings`]. Target names must be unique.
    pub fn new(targets: Vec<Target>) -> Result<WebhookConfig, WebhookConfigError> {
        let mut names = BTreeSet::new();
        for target in &targets {
            if !names.insert(target.name.as_str()) {
                return Err(invalid(
                    format!("target {:?}", target.name),
                    "the name is used twice",
                ));
            }
        }
        Ok(WebhookConfig {
            targets,
            delivery: DeliverySettings::default(),
        })
    }

    pub fn with_delivery(
        mut self,
        delivery: DeliverySettings,
    ) -> Result<WebhookConfig, WebhookConfigError> {
        delivery.check()?;
        self.delivery = delivery;
        Ok(self)
    }

    /// Reads the TOML file at `path`; secrets come from `secret_file` (relative to the file's
    /// directory) or `secret_env`.
    pub fn load(path: &Path) -> Result<WebhookConfig, WebhookConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebhookConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebhookConfig::parse(&text, &path.display().to_string(), dir, |name| {
            std::env::var(name).ok()
        })
    }

    /// [`WebhookConfig::load`] of `text`, named `origin` in errors, with `env` for
    /// environment variables.
    pub fn parse(
        text: &str,
        origin: &str,
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<WebhookConfig, WebhookConfigError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| invalid(origin, e.to_string().trim_end()))?;
        let at = |what: String| format!("{origin}: {what}");
        if file.targets.is_empty() {
            return Err(invalid(
                origin,
                "no [[target]]: name at least one webhook target",
            ));
        }
        let mut targets = Vec::with_capacity(file.targets.len());
        for t in file.targets {
            let here = at(format!("target {:?}", t.name));
            if t.secret.is_some() {
                return Err(invalid(
                    format!("{here}, secret"),
                    "secrets are not written in the configuration: use secret_file (a file \
                     holding the secret) or secret_env (an environment variable's name)",
                ));
            }
            let secret = match (&t.secret_file, &t.secret_env) {
                (Some(file), None) => {
                    let path = dir.join(file);
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        invalid(
                            format!("{here}, secret_file"),
                            format!("{}: {e}", path.display()),
                        )
                    })?;
                    text.trim().to_owned()
                }
                (None, Some(var)) => env(var).map(|v| v.trim().to_owned()).ok_or_else(|| {
                    invalid(
                        format!("{here}, secret_env"),
                        format!("the environment variable {var} is not set"),
                    )
                })?,
                _ => {
                    return Err(invalid(
                        here,
                        "exactly one of secret_file and secret_env is needed",
                    ));
                }
            };
            let target = if t.allow_plain_http {
                Target::allow_plain_http(&t.name, &t.url, secret)
            } else {
                Target::new(&t.name, &t.url, secret)
            }
            .map_err(|e| relocate(e, origin))?
            .with_teams(&t.teams)
            .map_err(|e| relocate(e, origin))?
            .with_events(t.events);
            targets.push(target);
        }
        let d = file.delivery;
        let mut delivery = DeliverySettings::default();
        let duration = |field: &str, value: &Option<String>, into: &mut Duration| {
            if let Some(text) = value {
                *into = humantime::parse_duration(text).map_err(|e| {
                    invalid(
                        at(format!("delivery, {field}")),
                        format!("{text:?}: {e} (e.g. \"30s\", \"5m\")"),
                    )
                })?;
            }
            Ok::<_, WebhookConfigError>(())
        };
        duration("base_delay", &d.base_delay, &mut delivery.base_delay)?;
        duration("max_delay", &d.max_delay, &mut delivery.max_delay)?;
        duration("timeout", &d.timeout, &mut delivery.timeout)?;
        duration(
            "poll_interval",
            &d.poll_interval,
            &mut delivery.poll_interval,
        )?;
        duration("retention", &d.retention, &mut delivery.retention)?;
        delivery.max_attempts = d.max_attempts.unwrap_or(delivery.max_attempts);
        delivery.concurrency = d.concurrency.unwrap_or(delivery.concurrency);
        WebhookConfig::new(targets)
            .and_then(|c| c.with_delivery(delivery))
            .map_err(|e| relocate(e, origin))
    }
}

/// Prefixes an error's location with the file it came from.
fn relocate(error: WebhookConfigError, origin: &str) -> WebhookConfigError {
    match error {
        WebhookConfigError::Invalid { at, reason } if !at.starts_with(origin) => {
            invalid(format!("{origin}: {at}"), reason)
        }
        other => other,
    }
}

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

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether [`notify`] would announce anything (and so write in the transaction).
pub(crate) fn announces(
    state: &AppState,
    proposal: &Proposal,
    new_state: &str,
    record: &Value,
) -> bool {
    audience(state, proposal, new_state, record).is_some()
}

/// What a proposal entering `new_state` announces, the owners it concerns and the targets
/// that want it; `None` when nobody is told.
fn audience<'s>(
    state: &'s AppState,
    proposal: &Proposal,
    new_state: &str,
    record: &Value,
) -> Option<(NotificationKind, Vec<String>, Vec<&'s Target>)> {
    let config = state.webhooks.as_ref()?;
    let kind = NotificationKind::of(new_state, proposal.tier.as_str())?;
    let owners = strings(&record["owners"]);
    let targets: Vec<&Target> = config
        .targets
        .iter()
        .filter(|t| t.wants(kind, &owners))
        .collect();
    (!targets.is_empty()).then_some((kind, owners, targets))
}

/// Queues what `proposal` entering `new_state` announces, for every target that wants it,
/// in `tx`: the transaction that changes the state and appends its event. Appends a
/// `notified` event naming the targets (the notification id derives from its log index).
/// Does nothing without webhooks, for a state that announces nothing, or when no target
/// wants it. `record` is the proposal's decision (the `decided` event's data).
pub(crate) async fn notify(
    state: &AppState,
    tx: &mut Tx,
    proposal: &Proposal,
    new_state: &str,
    record: &Value,
) -> Result<(), ApiError> {
    let Some((kind, owners, targets)) = audience(state, proposal, new_state, record) else {
        return Ok(());
    };
    let approvers = if kind == NotificationKind::AwaitingApproval {
        strings(&record["eligible_approvers"])
    } else {
        Vec::new()
    };
    let at = state.clock.rfc3339();
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let event = Event::new(
        EventKind::Notified,
        &at,
        &proposal.id,
        crate::proposals::SYSTEM_ACTOR,
        json!({ "type": kind, "targets": names, "owners": owners, "approvers": approvers }),
    )
    .map_err(|e| ApiError::Internal(format!("event: {e}")))?;
    let log_index = tx.append_event(&event).await?;
    let digest = Sha256::digest(format!("{}\n{kind}\n{log_index}", proposal.id).as_bytes());
    let id = format!("ntf-{}", hex::encode(&digest[..16]));
    let payload = json!({
        "id": id,
        "type": kind,
        "created_at": at,
        "log_index": log_index,
        "proposal": {
            "id": proposal.id,
            "repo": proposal.repo,
            "base": proposal.base,
            "head": proposal.head,
            "title": proposal.title,
            "author": proposal.author,
            "state": new_state,
            "tier": proposal.tier.as_str(),
        },
        "approvals_required": record["approvals_required"],
        "owners": owners,
        "touched": strings(&record["touched"]),
        "approvers": approvers,
    });
    let body = serde_json::to_string(&payload).map_err(|e| ApiError::Internal(e.to_string()))?;
    for target in targets {
        tx.enqueue_notification(&OutboxItem {
            id: format!("{id}/{}", target.name),
            notification: id.clone(),
            target: target.name.clone(),
            kind: kind.as_str().to_owned(),
            subject: proposal.id.clone(),
            payload: body.clone(),
        })
        .await?;
    }
    Ok(())
}

/// A name for this worker's leases, unique across processes, restarts and the several
/// servers one process may run.
fn worker_name() -> String {
    static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("worker-{}-{nanos:x}-{n}", std::process::id())
}

fn unix_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The delivery worker: claims due notifications, delivers them (up to `concurrency` at
/// once), and stops when `stop` turns true or its sender is dropped, after finishing the
/// deliveries in flight (each bounded by the timeout). A claimed row whose worker stopped
/// before settling it is claimed again when its lease expires.
pub(crate) async fn work(
    store: Store,
    config: Arc<WebhookConfig>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .timeout(config.delivery.timeout)
        // A redirect is a failed delivery: following one would send the signed body
        // somewhere the operator did not configure.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; nothing is delivered");
            return;
        }
    };
    let owner = worker_name();
    let lease = u64::try_from(config.delivery.lease().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(targets = config.targets.len(), %owner, "webhook delivery worker started");
    let retention = u64::try_from(config.delivery.retention.as_millis()).unwrap_or(u64::MAX);
    let mut pruned_at: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        // Every process prunes; deleting what another already deleted is a no-op.
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            match store.prune_notifications(retention).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "webhooks: pruned settled notifications"),
                Err(e) => tracing::warn!(error = %e, "webhooks: pruning settled notifications"),
            }
        }
        match store
            .claim_notifications(&owner, lease, config.delivery.concurrency)
            .await
        {
            Ok(claimed) if !claimed.is_empty() => {
                let mut deliveries = tokio::task::JoinSet::new();
                for claimed in claimed {
                    deliveries.spawn(deliver(
                        store.clone(),
                        client.clone(),
                        Arc::clone(&config),
                        Arc::clone(&metrics),
                        owner.clone(),
                        claimed,
                    ));
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
async fn deliver(
    store: Store,
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
    metrics: Arc<Metrics>,
    owner: String,
    claimed: Claimed,
) {
    let Claimed { item, attempt } = claimed;
    let target = config.targets.iter().find(|t| t.name == item.target);
    let started = SystemTime::now();
    let clock = Instant::now();
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
    let duration = clock.elapsed();
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
            signature(&target.secret.0, timestamp, item.payload.as_bytes()),
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
fn transport_error(error: reqwest::Error) -> String {
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
    Some(tokio::spawn(work(
        state.store.clone(),
        config,
        Arc::clone(&state.metrics),
        stop,
    )))
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let settings = DeliverySettings {
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            ..DeliverySettings::default()
        };
        for attempt in 1..=12u32 {
            let full = Duration::from_secs(30)
                .saturating_mul(1 << (attempt - 1))
                .min(Duration::from_secs(3600));
            for id in ["a/x", "b/x", "c/y"] {
                let delay = settings.retry_delay(id, attempt);
                assert!(
                    delay >= full / 2 && delay <= full,
                    "attempt {attempt}: {delay:?} not in [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
        // Rows failing together are spread apart.
        assert_ne!(
            settings.retry_delay("a/x", 3),
            settings.retry_delay("b/x", 3)
        );
        // Far past the cap, no overflow.
        assert!(settings.retry_delay("a/x", u32::MAX) <= Duration::from_secs(3600));
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The value the docs/server.md recipes give for this input (cross-checked with
        // `openssl dgst -sha256 -hmac` and Python's hmac).
        assert_eq!(
            signature(b"secret-secret-16", 1_767_603_600, br#"{"a":1}"#),
            "sha256=45d5266d68ab8e1ab7146b311137b3880feba7b9d9154b2537a781dbe9573ba0"
        );
    }

    fn parse(text: &str) -> Result<WebhookConfig, WebhookConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shop.secret"), "0123456789abcdef0123\n").unwrap();
        WebhookConfig::parse(text, "webhooks.toml", dir.path(), |name| {
            (name == "HOOK_SECRET").then(|| "fedcba9876543210fedc".to_owned())
        })
    }

    #[test]
    fn configuration_file() {
        let config = parse(
            r#"
            [delivery]
            max_attempts = 5
            base_delay = "10s"
            timeout = "3s"
            retention = "7d"

            [[target]]
            name = "shop"
            url = "https://hooks.example.com/countersign/T0K3N"
            secret_file = "shop.secret"
            teams = ["team-shop"]
            events = ["notify_and_proceed", "awaiting_approval"]

            [[target]]
            name = "audit"
            url = "http://127.0.0.1:9000/hook"
            secret_env = "HOOK_SECRET"
            "#,
        )
        .unwrap();
        assert_eq!(config.delivery.max_attempts, 5);
        assert_eq!(config.delivery.base_delay, Duration::from_secs(10));
        assert_eq!(config.delivery.timeout, Duration::from_secs(3));
        assert_eq!(config.delivery.max_delay, Duration::from_secs(3600));
        assert_eq!(
            config.delivery.retention,
            Duration::from_secs(7 * 24 * 3600)
        );
        let shop = &config.targets[0];
        assert_eq!(shop.secret.0, b"0123456789abcdef0123");
        assert_eq!(
            shop.teams.iter().collect::<Vec<_>>(),
            ["group:default/team-shop"]
        );
        assert_eq!(shop.origin(), "https://hooks.example.com");
        assert!(shop.wants(
            NotificationKind::AwaitingApproval,
            &["group:default/team-shop".to_owned()]
        ));
        assert!(!shop.wants(
            NotificationKind::Rejected,
            &["group:default/team-shop".to_owned()]
        ));
        assert!(!shop.wants(
            NotificationKind::AwaitingApproval,
            &["group:default/team-ops".to_owned()]
        ));
        assert_eq!(config.targets[1].secret.0, b"fedcba9876543210fedc");
        assert!(config.targets[1].wants(NotificationKind::Rejected, &[]));
    }

    #[test]
    fn configuration_refusals_name_the_place() {
        let cases = [
            (
                r#"[[target]]
                name = "a"
                url = "https://x.example"
                secret = "inline""#,
                "webhooks.toml: target \"a\", secret: secrets are not written in the configuration",
            ),
            (
                r#"[[target]]
                name = "a"
                url = "http://hooks.example.com/x"
                secret_env = "HOOK_SECRET""#,
                "webhooks.toml: target \"a\", url: plain http is accepted only to a loopback host",
            ),
            (
                r#"[[target]]
                name = "a"
                url = "https://x.example"
                secret_env = "NOPE""#,
                "webhooks.toml: target \"a\", secret_env: the environment variable NOPE is not set",
            ),
            (
                r#"[[target]]
                name = "a"
                url = "https://x.example"
                secret_env = "HOOK_SECRET"
                secret_file = "shop.secret""#,
                "webhooks.toml: target \"a\": exactly one of secret_file and secret_env",
            ),
            (
                r#"[[target]]
                name = "a"
                url = "https://x.example"
                secret_env = "HOOK_SECRET"
                [[target]]
                name = "a"
                url = "https://y.example"
                secret_env = "HOOK_SECRET""#,
                "webhooks.toml: target \"a\": the name is used twice",
            ),
            (
                r#"[delivery]
                base_delay = "soon"
                [[target]]
                name = "a"
                url = "https://x.example"
                secret_env = "HOOK_SECRET""#,
                "webhooks.toml: delivery, base_delay: \"soon\"",
            ),
            (
                r#"[[target]]
                name = "a"
                url = "https://x.example"
                secret_env = "HOOK_SECRET"
                events = ["merged"]"#,
                "webhooks.toml: TOML parse error at line 5",
            ),
            ("", "webhooks.toml: no [[target]]"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(
                error.starts_with(expected),
                "expected {expected:?}, got {error:?}"
            );
        }
        let short = Target::new("a", "https://x.example", "short").unwrap_err();
        assert!(short.to_string().contains("at least 16"), "{short}");
        let plain =
            Target::allow_plain_http("a", "http://relay.internal:8080/x", "0123456789abcdef");
        assert_eq!(plain.unwrap().url.as_str(), "http://relay.internal:8080/x");
    }
}
