//! The webhook configuration: what a notification can announce ([`NotificationKind`]), the
//! receiving targets ([`Target`]: URL, secret, the teams and kinds they want), how the worker
//! delivers ([`DeliverySettings`]), and the `--webhooks` TOML file they are read from.
//!
//! Everything is checked when it is built, so a configuration that exists is usable: https
//! (plain http only to a loopback host unless allowed), secrets of at least 128 bits read
//! from a file or the environment, never written inline. Nothing here sends or queues.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use countersign_graph::entity_ref::{self, RefContext};
use countersign_graph::model::Kind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

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

    /// The shared secret deliveries are signed with.
    pub(super) fn secret(&self) -> &[u8] {
        &self.secret.0
    }

    /// Only notifications of these kinds.
    pub fn with_events(mut self, events: impl IntoIterator<Item = NotificationKind>) -> Target {
        self.events.extend(events);
        self
    }

    /// Whether this target hears of `kind` about a change owned by `owners`.
    pub(super) fn wants(&self, kind: NotificationKind, owners: &[String]) -> bool {
        (self.events.is_empty() || self.events.contains(&kind))
            && (self.teams.is_empty() || owners.iter().any(|o| self.teams.contains(o)))
    }

    /// Scheme, host and port: what the delivery log shows of the URL, since webhook URLs
    /// often carry a secret in their path or query.
    pub(super) fn origin(&self) -> String {
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
    pub(crate) fn check(&self) -> Result<(), WebhookConfigError> {
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
    pub(crate) fn lease(&self) -> Duration {
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

/// The `[delivery]` table of `--webhooks` (and of `--github`, whose reports are delivered
/// the same way).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveryFile {
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
        let delivery = file.delivery.settings(origin)?;
        WebhookConfig::new(targets)
            .and_then(|c| c.with_delivery(delivery))
            .map_err(|e| relocate(e, origin))
    }
}

impl DeliveryFile {
    /// The settings this table gives, over the defaults, checked; errors name `origin`.
    pub(crate) fn settings(&self, origin: &str) -> Result<DeliverySettings, WebhookConfigError> {
        let at = |what: String| format!("{origin}: {what}");
        let d = self;
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
        delivery.check().map_err(|e| relocate(e, origin))?;
        Ok(delivery)
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
        assert_eq!(shop.secret(), b"0123456789abcdef0123");
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
        assert_eq!(config.targets[1].secret(), b"fedcba9876543210fedc");
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
