//! `countersign.toml`: the governed repository's own settings, parsed and validated.
//!
//! This module owns the file's schema, its defaults and the commented starter file that
//! `countersign init` writes. It reads no file itself (the caller hands it the text, usually
//! from the *base* commit) and it does not apply the settings: matching globs against paths,
//! loading the policy directory and falling back to the embedded pack are the callers' work.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use countersign_graph::limits::MAX_YAML_DEPTH;
use countersign_graph::{Limits, Surface};
use serde::Deserialize;
use toml::Spanned;

/// Name of the configuration file at the repository root.
pub const CONFIG_FILE: &str = "countersign.toml";

/// The CODEOWNERS locations GitHub reads, in the order it reads them; the first that exists wins.
pub const CODEOWNERS_LOCATIONS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// The configuration spelling of a surface (`regulated-data`, `ci-cd`, ...): the graph's,
/// so catalogs, configuration and Cedar facts spell surfaces one way.
pub fn surface_name(surface: Surface) -> &'static str {
    surface.as_str()
}

/// Parses a surface from its configuration spelling.
pub fn parse_surface(name: &str) -> Option<Surface> {
    name.parse().ok()
}

/// A parsed, validated `countersign.toml`. Every field has a default, so an empty file (or no
/// file) is `Config::default()`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub graph: GraphConfig,
    pub policy: PolicyConfig,
    pub never_automate: NeverAutomateConfig,
    pub governance: GovernanceConfig,
    pub plan: PlanConfig,
    pub agents: AgentsConfig,
    pub repository: RepositoryConfig,
    /// `[[runners]]`: the runners whose signed evidence counts, in file order.
    pub runners: Vec<RunnerConfig>,
    /// `[replay]`: calibration thresholds of `countersign replay`.
    pub replay: ReplayConfig,
    /// `[limits]`: how large the governed state may be (docs/config.md, "Limits").
    pub limits: Limits,
    /// `[approval]`: how many owners each part of a change needs.
    pub approval: ApprovalConfig,
    /// `[suites.NAME]`: how each validation suite is run, by name (docs/config.md, "Suites").
    pub suites: BTreeMap<String, SuiteConfig>,
    /// `[schedules.NAME]`: suites run on a protected branch by the clock (docs/fleet.md,
    /// "Schedules"). Only a branch's own tip says what is scheduled on it.
    pub schedules: BTreeMap<String, ScheduleConfig>,
    /// `[[capsules.signers]]`: the keys trusted to sign edge capsules, and what each may
    /// delegate (docs/fleet.md, "Edge capsules"). Read from the base, like `[[runners]]`.
    pub capsule_signers: Vec<CapsuleSignerConfig>,
}

/// One `[[capsules.signers]]` entry: a key (an organization's) trusted to sign capsules that
/// delegate evidence to an edge runner's key, for at most these suites and environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsuleSignerConfig {
    pub name: String,
    /// The raw ed25519 public key, 64 lowercase hex digits.
    pub public_key: String,
    /// The suites a capsule of this signer may delegate.
    pub suites: BTreeSet<String>,
    /// The environments a capsule of this signer may name.
    pub environments: BTreeSet<String>,
}

/// The environment a suite runs in when its `environments` key is absent, and the one a
/// runner serves unless told another.
pub const DEFAULT_ENVIRONMENT: &str = "default";

/// How long a suite may run when its `timeout` key is absent.
pub const DEFAULT_SUITE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The longest `timeout` a suite may declare: a lease held longer than a day is a runner
/// that is stuck, not a suite that is slow.
pub const MAX_SUITE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// One `[suites.NAME]` entry: how a runner of the fleet executes a validation suite. A suite
/// named by a component's `countersign.dev/suites` annotation without an entry here is still
/// planned (and evidence for it still counts), but no runner of the fleet can run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteConfig {
    pub name: String,
    /// The argv run, never through a shell: `["sh", "-c", "..."]` when a shell is wanted.
    pub command: Vec<String>,
    /// Repository-relative directory the command runs in (`.`: the root of the checkout).
    pub workdir: String,
    /// How long the command may run before its process group is killed (`timed_out`).
    pub timeout: Duration,
    /// The reports the command leaves, repository-relative; one envelope per kind.
    pub reports: SuiteReports,
    /// The environments the suite may run in (one work item each); never empty.
    pub environments: BTreeSet<String>,
    /// Globs of the files that define the suite (tests, fixtures, scripts). Parsed and
    /// validated only: nothing reads them yet.
    pub paths: Vec<String>,
}

/// One `[schedules.NAME]` entry: some suites run on the tip of a protected branch whenever a
/// cron expression is due. The expression is a standard five-field one (minute, hour, day of
/// month, month, day of week), read in `timezone` (UTC unless named).
#[derive(Clone, PartialEq, Eq)]
pub struct ScheduleConfig {
    pub name: String,
    /// The expression as written.
    pub cron: String,
    /// The branch (short name) whose tip is run; a schedule counts only in the config at
    /// that branch's own tip, and only while the branch is protected.
    pub branch: String,
    /// The suites run, each with a `[suites]` entry in the same file.
    pub suites: Vec<String>,
    /// The one environment to run them in; `None`: each suite's own environments.
    pub environment: Option<String>,
    /// The IANA time zone the expression is read in (`UTC` by default).
    pub timezone: String,
    parsed: croner::Cron,
    zone: jiff::tz::TimeZone,
}

/// As written: the parsed expression and zone say nothing more (and croner's own `Debug`
/// prints thousands of bits).
impl fmt::Debug for ScheduleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleConfig")
            .field("name", &self.name)
            .field("cron", &self.cron)
            .field("branch", &self.branch)
            .field("suites", &self.suites)
            .field("environment", &self.environment)
            .field("timezone", &self.timezone)
            .finish()
    }
}

impl ScheduleConfig {
    /// The latest time at or before `now` the expression is due, if any (whole minutes).
    pub fn due_at_or_before(&self, now: std::time::SystemTime) -> Option<std::time::SystemTime> {
        let zoned = self.zoned(now)?;
        let due = self.parsed.find_previous_occurrence(&zoned, true).ok()?;
        Some(std::time::SystemTime::from(due.timestamp()))
    }

    /// The first time strictly after `now` the expression is due, if any.
    pub fn due_after(&self, now: std::time::SystemTime) -> Option<std::time::SystemTime> {
        let zoned = self.zoned(now)?;
        let due = self.parsed.find_next_occurrence(&zoned, false).ok()?;
        Some(std::time::SystemTime::from(due.timestamp()))
    }

    fn zoned(&self, now: std::time::SystemTime) -> Option<jiff::Zoned> {
        let at = jiff::Timestamp::try_from(now).ok()?;
        Some(at.to_zoned(self.zone.clone()))
    }
}

/// `[suites.NAME.reports]`: the report files a suite's command writes, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SuiteReports {
    pub junit: Vec<String>,
    pub sarif: Vec<String>,
    pub vex: Vec<String>,
}

impl SuiteReports {
    pub fn is_empty(&self) -> bool {
        self.junit.is_empty() && self.sarif.is_empty() && self.vex.is_empty()
    }
}

/// `[approval]`: who must approve beyond the tier's count of distinct humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalConfig {
    /// `change_control_owners`: for a change_control change, how many owners of each node
    /// that needs people must approve: 1 (the default: one owner of each, two distinct
    /// humans in all) or 2 (two from each owning team).
    pub change_control_owners: u32,
    /// `agent_extra`: how many more distinct humans than its tier's count a change proposed
    /// by an agent needs, when the tier needs people at all: 0 (the default) to 3.
    pub agent_extra: u32,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            change_control_owners: 1,
            agent_extra: 0,
        }
    }
}

/// `[replay]`: when `countersign replay` flags the tiering.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplayConfig {
    /// `human_share_max`: the largest share (percent, 0 to 100) of changes the human tiers
    /// may take before replay flags "the tiering rebuilt the bottleneck". `None`: the
    /// default of the replay command (30).
    pub human_share_max: Option<u8>,
}

/// `[repository]`: who this repository is, as signed evidence must name it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepositoryConfig {
    /// The name evidence statements carry as their subject's `name` (e.g.
    /// `github.com/acme/shop`), compared exactly. Unset by default: a repository that
    /// declares no name accepts no evidence, because an identity countersign guessed (a
    /// directory name, a remote URL) could be matched by evidence about another clone.
    pub name: Option<String>,
    /// `protected`: the branches (short names, `main`) whose history a proposal's base must
    /// come from and whose moves the pre-receive hook guards. `None` when the key is absent:
    /// the branches among `main` and `master` that exist. Read only from the tips of those
    /// two branches (`countersign_decide::protected`), never from a proposal's base.
    pub protected: Option<Vec<String>>,
}

/// One `[[runners]]` entry: a runner trusted to sign evidence for some suites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    pub name: String,
    /// The raw ed25519 public key as 64 lowercase hex digits (what `countersign runner
    /// keygen` prints, and securesystemslib's `keyval.public`).
    pub public_key: String,
    /// The suites this runner may attest; evidence for any other suite is refused.
    pub suites: BTreeSet<String>,
    /// `vex = true`: a VEX authority (the security team's key), whose OpenVEX
    /// `not_affected` may clear a finding on any node. Otherwise a runner's VEX reaches only
    /// the nodes its envelope's suite exercises.
    pub vex: bool,
}

/// `[graph]`: where the system graph's descriptors live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphConfig {
    /// Globs of Backstage descriptor files.
    pub catalog: Vec<String>,
    /// An explicit CODEOWNERS path; `None` means GitHub's [`CODEOWNERS_LOCATIONS`] order.
    pub codeowners: Option<String>,
}

/// `[policy]`: where the Cedar policy pack lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Repository-relative directory of `.cedar` files. When the repository has no such
    /// directory, the embedded default pack applies.
    pub dir: String,
}

/// `[never_automate]`: surfaces whose changes always need people, and the files that carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeverAutomateConfig {
    pub surfaces: BTreeSet<Surface>,
    /// Files that carry a surface whatever the catalog says, merged per surface over the defaults.
    pub paths: BTreeMap<Surface, Vec<String>>,
}

/// `[governance]`: files beyond countersign's own that govern changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GovernanceConfig {
    pub paths: Vec<String>,
}

/// `[plan]`: shape of the validation plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanConfig {
    /// How many levels of dependents the plan includes beyond the touched nodes.
    pub depth: u32,
}

/// `[agents]`: commit author names treated as agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentsConfig {
    /// Case-insensitive patterns where only `*` is special (so `[bot]` is literal).
    pub patterns: Vec<String>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            catalog: strings(&["**/catalog-info.yaml", "**/catalog-info.yml"]),
            codeowners: None,
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            dir: ".countersign/policy".to_owned(),
        }
    }
}

impl Default for NeverAutomateConfig {
    fn default() -> Self {
        NeverAutomateConfig {
            // Every surface but `build`, which is never automated for an agent anyway (an
            // invariant) and is reviewed like other code for a person unless listed here.
            surfaces: Surface::ALL
                .iter()
                .copied()
                .filter(|s| *s != Surface::Build)
                .collect(),
            paths: BTreeMap::from([
                (Surface::Irreversible, strings(&["**/migrations/**"])),
                (
                    Surface::CiCd,
                    strings(&[
                        ".github/workflows/**",
                        ".gitlab-ci.yml",
                        ".circleci/**",
                        "Jenkinsfile",
                    ]),
                ),
            ]),
        }
    }
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig { depth: 1 }
    }
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            patterns: strings(&["*[bot]", "dependabot*", "renovate*"]),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl GraphConfig {
    /// The CODEOWNERS paths to try, in order: the configured one, or GitHub's order.
    pub fn codeowners_candidates(&self) -> Vec<&str> {
        match &self.codeowners {
            Some(path) => vec![path.as_str()],
            None => CODEOWNERS_LOCATIONS.to_vec(),
        }
    }
}

impl AgentsConfig {
    /// Whether a commit author name matches one of the agent patterns.
    pub fn is_agent(&self, author_name: &str) -> bool {
        let name = author_name.to_ascii_lowercase();
        self.patterns
            .iter()
            .any(|p| wildcard_match(&p.to_ascii_lowercase(), &name))
    }
}

/// `*`-only wildcard matching. Author names are not paths, and a glob engine would read
/// `[bot]` as a character class, which is never what `dependabot[bot]` means.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A `countersign.toml` that cannot be used, located at a line and column of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the parser gave no position.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Dotted key path, e.g. `never_automate.paths.ci-cd`, when one could be determined.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl Config {
    /// Parses the text of a `countersign.toml`. Unknown keys, unknown surfaces, invalid globs
    /// and unsafe paths are errors naming the line, column and key.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| locate(text, &e))?;
        raw.into_config(text)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn locate(text: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim().to_owned();
    let Some(span) = error.span() else {
        return ConfigError {
            file: CONFIG_FILE.to_owned(),
            line: 0,
            column: 0,
            field: None,
            message,
        };
    };
    let (line, column) = position(text, span.start);
    ConfigError {
        file: CONFIG_FILE.to_owned(),
        line,
        column,
        field: field_at(text, line, text.get(span).unwrap_or("")),
        message,
    }
}

/// An error found after parsing, at a value whose span toml kept.
fn invalid_value(text: &str, field: &str, value: &Spanned<String>, message: String) -> ConfigError {
    let (line, column) = position(text, value.span().start);
    ConfigError {
        file: CONFIG_FILE.to_owned(),
        line,
        column,
        field: Some(field.to_owned()),
        message,
    }
}

/// Checks glob syntax at parse time, so a typo fails `countersign.toml` rather than
/// silently matching nothing.
fn globs(text: &str, field: &str, list: Vec<Spanned<String>>) -> Result<Vec<String>, ConfigError> {
    list.into_iter()
        .map(|glob| {
            let problem = if glob.get_ref().is_empty() {
                Some("empty glob".to_owned())
            } else {
                globset::Glob::new(glob.get_ref())
                    .err()
                    .map(|e| format!("invalid glob `{}`: {}", glob.get_ref(), e.kind()))
            };
            match problem {
                Some(message) => Err(invalid_value(text, field, &glob, message)),
                None => Ok(glob.into_inner()),
            }
        })
        .collect()
}

fn surfaces(
    text: &str,
    field: &str,
    list: Vec<Spanned<String>>,
) -> Result<BTreeSet<Surface>, ConfigError> {
    list.into_iter()
        .map(|name| {
            parse_surface(name.get_ref())
                .ok_or_else(|| invalid_value(text, field, &name, unknown_surface(name.get_ref())))
        })
        .collect()
}

/// The never-automate surfaces. `governance` cannot be left out: PRODUCT.md's rule that an
/// agent must never be able to edit the rules that govern it would otherwise hang on one
/// line of this file.
fn governed_surfaces(
    text: &str,
    list: Vec<Spanned<String>>,
) -> Result<BTreeSet<Surface>, ConfigError> {
    const FIELD: &str = "never_automate.surfaces";
    let span_start = list.first().map(|s| s.span().start);
    let set = surfaces(text, FIELD, list)?;
    if set.contains(&Surface::Governance) {
        return Ok(set);
    }
    let (line, column) = match span_start {
        Some(start) => position(text, start),
        None => field_position(text, "surfaces"),
    };
    Err(ConfigError {
        file: CONFIG_FILE.to_owned(),
        line,
        column,
        field: Some(FIELD.to_owned()),
        message: "`governance` cannot be removed: an agent must never be able to edit the rules that govern it"
            .to_owned(),
    })
}

/// Position of `key =` in the `[never_automate]` table, for an error about an empty list.
fn field_position(text: &str, key: &str) -> (usize, usize) {
    let mut in_table = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_table = trimmed.starts_with("[never_automate]");
        } else if in_table && trimmed.starts_with(key) {
            return (index + 1, line.len() - trimmed.len() + 1);
        }
    }
    (0, 0)
}

fn unknown_surface(name: &str) -> String {
    let known: Vec<&str> = Surface::ALL.iter().map(|s| s.as_str()).collect();
    format!(
        "unknown surface `{name}`, expected one of: {}",
        known.join(", ")
    )
}

/// Recovers the dotted key an error points into. toml's error carries a byte span, not a key
/// path, so this reads the source around the span: the nearest `key =` at or above the error
/// line (inside the current table) and the table header above it.
fn field_at(text: &str, line: usize, spanned: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut key: Option<String> = None;
    let mut table: Option<String> = None;
    // A span that is itself a bare key (unknown field) names the field directly.
    let spanned = spanned.trim().trim_matches('"');
    let bare_key = !spanned.is_empty()
        && spanned
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    for index in (0..line.min(lines.len())).rev() {
        let current = strip_comment(lines[index]).trim();
        if let Some(header) = current.strip_prefix('[') {
            let header = header.trim_start_matches('[');
            let header = header.split(']').next().unwrap_or("").trim();
            table = Some(header.to_owned());
            if index + 1 == line && key.is_none() {
                return Some(header.to_owned());
            }
            break;
        }
        if key.is_none()
            && let Some((k, _)) = current.split_once('=')
        {
            let k = k.trim().trim_matches('"');
            if !k.is_empty() {
                key = Some(k.to_owned());
            }
        }
    }
    if key.is_none() && bare_key {
        key = Some(spanned.to_owned());
    }
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

fn strip_comment(line: &str) -> &str {
    // Good enough for locating keys: a `#` inside a quoted glob only shortens the value part.
    line.split('#').next().unwrap_or("")
}

// The raw, serde-facing shape. Lists keep their elements' spans so validation after parsing
// can still point at the offending element; scalars and keys validate inside `Deserialize`,
// where toml attaches the position itself.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    graph: RawGraph,
    policy: RawPolicy,
    never_automate: RawNeverAutomate,
    governance: RawGovernance,
    plan: RawPlan,
    agents: RawAgents,
    repository: RawRepository,
    runners: Vec<RawRunner>,
    replay: RawReplay,
    limits: RawLimits,
    approval: RawApproval,
    suites: BTreeMap<Spanned<String>, RawSuite>,
    schedules: BTreeMap<Spanned<String>, RawSchedule>,
    capsules: RawCapsules,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawCapsules {
    signers: Vec<RawCapsuleSigner>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapsuleSigner {
    name: Spanned<String>,
    public_key: Spanned<String>,
    suites: Spanned<Vec<Spanned<String>>>,
    environments: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    cron: Spanned<String>,
    branch: Spanned<String>,
    suites: Spanned<Vec<Spanned<String>>>,
    environment: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    command: Spanned<Vec<Spanned<String>>>,
    workdir: Option<RepoPath>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    reports: RawReports,
    environments: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    paths: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawReports {
    junit: Vec<Spanned<String>>,
    sarif: Vec<Spanned<String>>,
    vex: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawApproval {
    change_control_owners: Option<Spanned<u32>>,
    agent_extra: Option<Spanned<u32>>,
}

/// `[limits]`: each key is a field of [`Limits`], a positive integer.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    file_bytes: Option<Spanned<u64>>,
    catalog_bytes: Option<Spanned<u64>>,
    entities: Option<Spanned<u64>>,
    yaml_depth: Option<Spanned<u64>>,
    yaml_alias_bytes: Option<Spanned<u64>>,
    globs_per_entity: Option<Spanned<u64>>,
    globs: Option<Spanned<u64>>,
    glob_bytes: Option<Spanned<u64>>,
    runners: Option<Spanned<u64>>,
}

impl RawLimits {
    fn into_limits(self, text: &str) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        let value =
            |name: &str, v: Option<Spanned<u64>>, max: u64| -> Result<Option<u64>, ConfigError> {
                let Some(v) = v else { return Ok(None) };
                let n = *v.get_ref();
                if n == 0 || n > max {
                    let (line, column) = position(text, v.span().start);
                    return Err(ConfigError {
                        file: CONFIG_FILE.to_owned(),
                        line,
                        column,
                        field: Some(format!("limits.{name}")),
                        message: format!("a limit is a whole number from 1 to {max}, got {n}"),
                    });
                }
                Ok(Some(n))
            };
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(n) = value("file_bytes", self.file_bytes, u64::MAX)? {
            limits.file_bytes = n;
        }
        if let Some(n) = value("catalog_bytes", self.catalog_bytes, u64::MAX)? {
            limits.catalog_bytes = n;
        }
        if let Some(n) = value("entities", self.entities, u64::MAX)? {
            limits.entities = size(n);
        }
        if let Some(n) = value("yaml_depth", self.yaml_depth, MAX_YAML_DEPTH as u64)? {
            limits.yaml_depth = size(n);
        }
        if let Some(n) = value("yaml_alias_bytes", self.yaml_alias_bytes, u64::MAX)? {
            limits.yaml_alias_bytes = n;
        }
        if let Some(n) = value("globs_per_entity", self.globs_per_entity, u64::MAX)? {
            limits.globs_per_entity = size(n);
        }
        if let Some(n) = value("globs", self.globs, u64::MAX)? {
            limits.globs = size(n);
        }
        if let Some(n) = value("glob_bytes", self.glob_bytes, u64::MAX)? {
            limits.glob_bytes = size(n);
        }
        if let Some(n) = value("runners", self.runners, u64::MAX)? {
            limits.runners = size(n);
        }
        Ok(limits)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawReplay {
    human_share_max: Option<Spanned<u8>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRepository {
    name: Option<Spanned<String>>,
    protected: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunner {
    name: Spanned<String>,
    public_key: Spanned<String>,
    suites: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    vex: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawGraph {
    catalog: Option<Vec<Spanned<String>>>,
    codeowners: Option<RepoPath>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPolicy {
    dir: Option<RepoPath>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawNeverAutomate {
    surfaces: Option<Vec<Spanned<String>>>,
    paths: BTreeMap<SurfaceName, Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawGovernance {
    paths: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPlan {
    depth: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawAgents {
    patterns: Option<Vec<String>>,
}

impl RawConfig {
    fn into_config(self, text: &str) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let repository_declared = self.repository.name.is_some();
        let limits = self.limits.into_limits(text)?;
        let mut paths = defaults.never_automate.paths;
        // Per-surface merge: naming one surface's paths must not silently drop the CI/CD or
        // migration defaults. `ci-cd = []` removes them explicitly.
        for (surface, list) in self.never_automate.paths {
            let field = format!("never_automate.paths.{}", surface_name(surface.0));
            paths.insert(surface.0, globs(text, &field, list)?);
        }
        let raw_schedules = self.schedules;
        let mut config = Config {
            graph: GraphConfig {
                catalog: match self.graph.catalog {
                    Some(list) => globs(text, "graph.catalog", list)?,
                    None => defaults.graph.catalog,
                },
                codeowners: self.graph.codeowners.map(|p| p.0),
            },
            policy: PolicyConfig {
                dir: self.policy.dir.map_or(defaults.policy.dir, |p| p.0),
            },
            never_automate: NeverAutomateConfig {
                surfaces: match self.never_automate.surfaces {
                    Some(list) => governed_surfaces(text, list)?,
                    None => defaults.never_automate.surfaces,
                },
                paths,
            },
            governance: GovernanceConfig {
                paths: globs(text, "governance.paths", self.governance.paths)?,
            },
            plan: PlanConfig {
                depth: self.plan.depth.unwrap_or(defaults.plan.depth),
            },
            agents: AgentsConfig {
                patterns: self.agents.patterns.unwrap_or(defaults.agents.patterns),
            },
            repository: RepositoryConfig {
                name: self
                    .repository
                    .name
                    .map(|name| repository_name(text, name))
                    .transpose()?,
                protected: self
                    .repository
                    .protected
                    .map(|list| list.into_iter().map(|b| branch_name(text, b)).collect())
                    .transpose()?,
            },
            runners: runners(text, self.runners, repository_declared, limits.runners)?,
            capsule_signers: capsule_signers(
                text,
                self.capsules.signers,
                repository_declared,
                limits.runners,
            )?,
            suites: suites(text, self.suites)?,
            schedules: BTreeMap::new(),
            replay: ReplayConfig {
                human_share_max: match self.replay.human_share_max {
                    Some(share) if *share.get_ref() > 100 => {
                        let (line, column) = position(text, share.span().start);
                        return Err(ConfigError {
                            file: CONFIG_FILE.to_owned(),
                            line,
                            column,
                            field: Some("replay.human_share_max".to_owned()),
                            message: "a share in percent, 0 to 100".to_owned(),
                        });
                    }
                    share => share.map(|s| *s.get_ref()),
                },
            },
            limits,
            approval: ApprovalConfig {
                change_control_owners: match self.approval.change_control_owners {
                    None => 1,
                    Some(n) if matches!(*n.get_ref(), 1 | 2) => *n.get_ref(),
                    Some(n) => {
                        let (line, column) = position(text, n.span().start);
                        return Err(ConfigError {
                            file: CONFIG_FILE.to_owned(),
                            line,
                            column,
                            field: Some("approval.change_control_owners".to_owned()),
                            message: "1 (one owner of each part, two humans in all) or 2 (two owners of each part)".to_owned(),
                        });
                    }
                },
                agent_extra: match self.approval.agent_extra {
                    None => 0,
                    Some(n) if *n.get_ref() <= 3 => *n.get_ref(),
                    Some(n) => {
                        let (line, column) = position(text, n.span().start);
                        return Err(ConfigError {
                            file: CONFIG_FILE.to_owned(),
                            line,
                            column,
                            field: Some("approval.agent_extra".to_owned()),
                            message: "0 to 3: how many more humans than its tier needs an agent's change needs".to_owned(),
                        });
                    }
                },
            },
        };
        config.schedules = schedules(text, raw_schedules, &config.suites)?;
        Ok(config)
    }
}

fn repository_name(text: &str, name: Spanned<String>) -> Result<String, ConfigError> {
    let value = name.get_ref();
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(invalid_value(
            text,
            "repository.name",
            &name,
            format!(
                "`{value}` is not a repository name (non-empty, no whitespace, e.g. `github.com/acme/shop`)"
            ),
        ));
    }
    Ok(name.into_inner())
}

/// A branch's short name as git allows it (`main`, `release/1.x`): not a full ref, not a
/// glob, no whitespace, no `..`.
fn branch_name(text: &str, name: Spanned<String>) -> Result<String, ConfigError> {
    branch_name_in(text, "repository.protected", name)
}

fn branch_name_in(text: &str, field: &str, name: Spanned<String>) -> Result<String, ConfigError> {
    let value = name.get_ref();
    let valid = !value.is_empty()
        && !value.starts_with(['-', '/', '.'])
        && !value.ends_with(['/', '.'])
        && !value.starts_with("refs/")
        && !value.contains("..")
        && !value.contains("//")
        && !value.ends_with(".lock")
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "*?[\\^~:@{".contains(c));
    if !valid {
        return Err(invalid_value(
            text,
            field,
            &name,
            format!(
                "`{value}` is not a branch name (a short name such as `main` or `release/1.x`, no glob)"
            ),
        ));
    }
    Ok(name.into_inner())
}

/// Validates `[[runners]]`: names are unique identifiers, keys are 64 hex digits and
/// unique (one key naming two runners would make its suite permissions ambiguous), every
/// runner may attest at least one suite, and a repository name exists for evidence to name.
/// At most `max` runners (the `runners` limit); names and keys are checked for duplicates
/// through sets, so the check is linear in the runners.
fn runners(
    text: &str,
    raw: Vec<RawRunner>,
    repository_declared: bool,
    max: usize,
) -> Result<Vec<RunnerConfig>, ConfigError> {
    if let Some(extra) = raw.get(max) {
        return Err(invalid_value(
            text,
            "runners",
            &extra.name,
            format!(
                "more than {max} [[runners]]: over the limit `runners` = {max} ({})",
                countersign_graph::limits::RAISE_HINT
            ),
        ));
    }
    let mut out: Vec<RunnerConfig> = Vec::with_capacity(raw.len());
    let mut names: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut keys: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for runner in raw {
        let name = runner.name.get_ref();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(invalid_value(
                text,
                "runners.name",
                &runner.name,
                format!("`{name}` is not a runner name (letters, digits, `-`, `_`, `.`)"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(invalid_value(
                text,
                "runners.name",
                &runner.name,
                format!("runner `{name}` is declared twice"),
            ));
        }
        if !repository_declared {
            return Err(invalid_value(
                text,
                "runners",
                &runner.name,
                "runners are declared but `[repository] name` is not: evidence must name the repository it is about"
                    .to_owned(),
            ));
        }
        let key = runner.public_key.get_ref().trim().to_ascii_lowercase();
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid_value(
                text,
                "runners.public_key",
                &runner.public_key,
                format!(
                    "runner `{name}`: public_key must be the 64 hex digits of a raw ed25519 key (as `countersign runner keygen` prints), got {} characters",
                    key.len()
                ),
            ));
        }
        if let Some(other) = keys.get(&key).and_then(|&i| out.get(i)) {
            return Err(invalid_value(
                text,
                "runners.public_key",
                &runner.public_key,
                format!(
                    "runner `{name}` has the same public key as runner `{}`",
                    other.name
                ),
            ));
        }
        let (suites_span, suite_list) = (runner.suites.span(), runner.suites.into_inner());
        if suite_list.is_empty() {
            let (line, column) = position(text, suites_span.start);
            return Err(ConfigError {
                file: CONFIG_FILE.to_owned(),
                line,
                column,
                field: Some("runners.suites".to_owned()),
                message: format!("runner `{name}` may attest no suite; list at least one"),
            });
        }
        let mut suites = BTreeSet::new();
        for suite in suite_list {
            if suite.get_ref().trim().is_empty() {
                return Err(invalid_value(
                    text,
                    "runners.suites",
                    &suite,
                    "empty suite name".to_owned(),
                ));
            }
            suites.insert(suite.into_inner());
        }
        keys.insert(key.clone(), out.len());
        out.push(RunnerConfig {
            name: name.clone(),
            public_key: key,
            suites,
            vex: runner.vex,
        });
    }
    Ok(out)
}

/// Validates `[[capsules.signers]]` as `[[runners]]` are validated (unique names and keys, 64
/// hex digits, a repository name declared, at most the `runners` limit), each with at least
/// one suite and one environment, all of them names.
fn capsule_signers(
    text: &str,
    raw: Vec<RawCapsuleSigner>,
    repository_declared: bool,
    max: usize,
) -> Result<Vec<CapsuleSignerConfig>, ConfigError> {
    if let Some(extra) = raw.get(max) {
        return Err(invalid_value(
            text,
            "capsules.signers",
            &extra.name,
            format!(
                "more than {max} [[capsules.signers]]: over the limit `runners` = {max} ({})",
                countersign_graph::limits::RAISE_HINT
            ),
        ));
    }
    let mut out: Vec<CapsuleSignerConfig> = Vec::with_capacity(raw.len());
    for signer in raw {
        let name = signer.name.get_ref().clone();
        if !is_name(&name) {
            return Err(invalid_value(
                text,
                "capsules.signers.name",
                &signer.name,
                format!("`{name}` is not a signer name (letters, digits, `-`, `_`, `.`)"),
            ));
        }
        if out.iter().any(|s| s.name == name) {
            return Err(invalid_value(
                text,
                "capsules.signers.name",
                &signer.name,
                format!("capsule signer `{name}` is declared twice"),
            ));
        }
        if !repository_declared {
            return Err(invalid_value(
                text,
                "capsules.signers",
                &signer.name,
                "capsule signers are declared but `[repository] name` is not: evidence must name the repository it is about"
                    .to_owned(),
            ));
        }
        let key = signer.public_key.get_ref().trim().to_ascii_lowercase();
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid_value(
                text,
                "capsules.signers.public_key",
                &signer.public_key,
                format!(
                    "capsule signer `{name}`: public_key must be the 64 hex digits of a raw ed25519 key, got {} characters",
                    key.len()
                ),
            ));
        }
        if let Some(other) = out.iter().find(|s| s.public_key == key) {
            return Err(invalid_value(
                text,
                "capsules.signers.public_key",
                &signer.public_key,
                format!(
                    "capsule signer `{name}` has the same public key as `{}`",
                    other.name
                ),
            ));
        }
        let names = |field: &str,
                     list: Spanned<Vec<Spanned<String>>>|
         -> Result<BTreeSet<String>, ConfigError> {
            let (span, list) = (list.span(), list.into_inner());
            if list.is_empty() {
                let (line, column) = position(text, span.start);
                return Err(ConfigError {
                    file: CONFIG_FILE.to_owned(),
                    line,
                    column,
                    field: Some(format!("capsules.signers.{field}")),
                    message: format!(
                        "capsule signer `{name}` may delegate no {field}; list at least one"
                    ),
                });
            }
            let mut out = BTreeSet::new();
            for item in list {
                if !is_name(item.get_ref()) {
                    return Err(invalid_value(
                        text,
                        &format!("capsules.signers.{field}"),
                        &item,
                        format!("`{}` is not a name", item.get_ref()),
                    ));
                }
                out.insert(item.into_inner());
            }
            Ok(out)
        };
        let suites = names("suites", signer.suites)?;
        let environments = names("environments", signer.environments)?;
        out.push(CapsuleSignerConfig {
            name,
            public_key: key,
            suites,
            environments,
        });
    }
    Ok(out)
}

/// A suite or environment name: letters, digits, `-`, `_`, `.`, not starting with `.`
/// (names travel in URLs, work items and log events; nothing there should need quoting).
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Validates `[suites.NAME]`: a name that can travel in URLs, a non-empty argv, a
/// repository-relative workdir and report paths, a bounded timeout, environment names and
/// valid globs. The number of suites is bounded by the size of `countersign.toml` itself.
fn suites(
    text: &str,
    raw: BTreeMap<Spanned<String>, RawSuite>,
) -> Result<BTreeMap<String, SuiteConfig>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, suite) in raw {
        if !is_name(name.get_ref()) {
            return Err(invalid_value(
                text,
                "suites",
                &name,
                format!(
                    "`{}` is not a suite name (letters, digits, `-`, `_`, `.`, at most 128, not starting with `.`)",
                    name.get_ref()
                ),
            ));
        }
        let suite_name = name.get_ref().clone();
        let field = |key: &str| format!("suites.{suite_name}.{key}");
        let (command_span, command) = (suite.command.span(), suite.command.into_inner());
        if command.is_empty() || command[0].get_ref().is_empty() {
            let (line, column) = position(text, command_span.start);
            return Err(ConfigError {
                file: CONFIG_FILE.to_owned(),
                line,
                column,
                field: Some(field("command")),
                message: "the command is an argv list with a program first, e.g. [\"make\", \"test\"] or [\"sh\", \"-c\", \"...\"]".to_owned(),
            });
        }
        if let Some(arg) = command.iter().find(|a| a.get_ref().contains('\0')) {
            return Err(invalid_value(
                text,
                &field("command"),
                arg,
                "an argument cannot hold a NUL character".to_owned(),
            ));
        }
        let timeout = match suite.timeout {
            None => DEFAULT_SUITE_TIMEOUT,
            Some(value) => match parse_duration(value.get_ref()) {
                Some(d) if !d.is_zero() && d <= MAX_SUITE_TIMEOUT => d,
                Some(_) => {
                    return Err(invalid_value(
                        text,
                        &field("timeout"),
                        &value,
                        format!(
                            "`{}` is out of range: from 1s to {}h",
                            value.get_ref(),
                            MAX_SUITE_TIMEOUT.as_secs() / 3600
                        ),
                    ));
                }
                None => {
                    return Err(invalid_value(
                        text,
                        &field("timeout"),
                        &value,
                        format!(
                            "`{}` is not a duration (whole numbers with a unit s, m or h: `90s`, `10m`, `1h30m`)",
                            value.get_ref()
                        ),
                    ));
                }
            },
        };
        let report_paths = |kind: &str, list: Vec<Spanned<String>>| {
            list.into_iter()
                .map(|path| match repo_relative(path.get_ref()) {
                    Some(clean) => Ok(clean),
                    None => Err(invalid_value(
                        text,
                        &field(&format!("reports.{kind}")),
                        &path,
                        format!(
                            "`{}` is not a repository-relative file path (use `/` separators, no leading `/`, no `..`, no glob)",
                            path.get_ref()
                        ),
                    )),
                })
                .collect::<Result<Vec<String>, ConfigError>>()
        };
        let reports = SuiteReports {
            junit: report_paths("junit", suite.reports.junit)?,
            sarif: report_paths("sarif", suite.reports.sarif)?,
            vex: report_paths("vex", suite.reports.vex)?,
        };
        let environments = match suite.environments {
            None => BTreeSet::from([DEFAULT_ENVIRONMENT.to_owned()]),
            Some(list) => {
                let (span, list) = (list.span(), list.into_inner());
                if list.is_empty() {
                    let (line, column) = position(text, span.start);
                    return Err(ConfigError {
                        file: CONFIG_FILE.to_owned(),
                        line,
                        column,
                        field: Some(field("environments")),
                        message: format!(
                            "suite `{suite_name}` may run in no environment; list at least one or leave the key out (`{DEFAULT_ENVIRONMENT}`)"
                        ),
                    });
                }
                let mut set = BTreeSet::new();
                for env in list {
                    if !is_name(env.get_ref()) {
                        return Err(invalid_value(
                            text,
                            &field("environments"),
                            &env,
                            format!(
                                "`{}` is not an environment name (letters, digits, `-`, `_`, `.`)",
                                env.get_ref()
                            ),
                        ));
                    }
                    set.insert(env.into_inner());
                }
                set
            }
        };
        let paths = globs(text, &field("paths"), suite.paths)?;
        out.insert(
            suite_name.clone(),
            SuiteConfig {
                name: suite_name,
                command: command.into_iter().map(Spanned::into_inner).collect(),
                workdir: suite.workdir.map_or_else(|| ".".to_owned(), |p| p.0),
                timeout,
                reports,
                environments,
                paths,
            },
        );
    }
    Ok(out)
}

/// Validates `[schedules.NAME]`: a standard five-field cron expression, a branch name, a
/// time zone this machine knows, and suites (and an environment) the same file defines.
fn schedules(
    text: &str,
    raw: BTreeMap<Spanned<String>, RawSchedule>,
    suites: &BTreeMap<String, SuiteConfig>,
) -> Result<BTreeMap<String, ScheduleConfig>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, schedule) in raw {
        if !is_name(name.get_ref()) {
            return Err(invalid_value(
                text,
                "schedules",
                &name,
                format!(
                    "`{}` is not a schedule name (letters, digits, `-`, `_`, `.`, at most 128, not starting with `.`)",
                    name.get_ref()
                ),
            ));
        }
        let schedule_name = name.into_inner();
        let field = |key: &str| format!("schedules.{schedule_name}.{key}");
        // Standard cron only: five fields, no seconds, no years (a sixth field would be read
        // as seconds by some tools and as years by others).
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        let expression = schedule.cron.get_ref().trim();
        let parsed = if expression.contains('@') {
            Err("nicknames such as `@daily` are not accepted: write the five fields".to_owned())
        } else {
            parser.parse(expression).map_err(|e| e.to_string())
        };
        let parsed = parsed.map_err(|reason| {
            invalid_value(
                text,
                &field("cron"),
                &schedule.cron,
                format!(
                    "`{}` is not a five-field cron expression (minute hour day-of-month month day-of-week, e.g. `0 3 * * *`): {reason}",
                    schedule.cron.get_ref()
                ),
            )
        })?;
        let branch = branch_name_in(text, &field("branch"), schedule.branch)?;
        let (list_span, list) = (schedule.suites.span(), schedule.suites.into_inner());
        if list.is_empty() {
            let (line, column) = position(text, list_span.start);
            return Err(ConfigError {
                file: CONFIG_FILE.to_owned(),
                line,
                column,
                field: Some(field("suites")),
                message: format!("schedule `{schedule_name}` runs no suite; list at least one"),
            });
        }
        let mut names: Vec<String> = Vec::with_capacity(list.len());
        for suite in &list {
            let Some(defined) = suites.get(suite.get_ref()) else {
                return Err(invalid_value(
                    text,
                    &field("suites"),
                    suite,
                    format!(
                        "suite `{}` has no [suites.{}] entry in this file: a schedule runs only suites the fleet can run",
                        suite.get_ref(),
                        suite.get_ref()
                    ),
                ));
            };
            if let Some(environment) = &schedule.environment
                && !defined.environments.contains(environment.get_ref())
            {
                return Err(invalid_value(
                    text,
                    &field("environment"),
                    environment,
                    format!(
                        "suite `{}` does not run in environment `{}` (its environments: {})",
                        suite.get_ref(),
                        environment.get_ref(),
                        defined
                            .environments
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if !names.contains(suite.get_ref()) {
                names.push(suite.get_ref().clone());
            }
        }
        let (timezone, zone) = match schedule.timezone {
            None => ("UTC".to_owned(), jiff::tz::TimeZone::UTC),
            Some(tz) => match jiff::tz::TimeZone::get(tz.get_ref()) {
                Ok(zone) => (tz.get_ref().clone(), zone),
                Err(_) => {
                    return Err(invalid_value(
                        text,
                        &field("timezone"),
                        &tz,
                        format!(
                            "`{}` is not a time zone this machine knows (an IANA name such as `UTC` or `Europe/Paris`)",
                            tz.get_ref()
                        ),
                    ));
                }
            },
        };
        out.insert(
            schedule_name.clone(),
            ScheduleConfig {
                name: schedule_name,
                cron: expression.to_owned(),
                branch,
                suites: names,
                environment: schedule.environment.map(Spanned::into_inner),
                timezone,
                parsed,
                zone,
            },
        );
    }
    Ok(out)
}

/// A report path: repository-relative, `/`-separated, no `..`, no empty component and no
/// glob character (a runner reads exactly the files named, inside its checkout).
fn repo_relative(path: &str) -> Option<String> {
    let unsafe_path = path.is_empty()
        || path.starts_with('/')
        || path.ends_with('/')
        || path.contains(['\\', '\0', '*', '?', '[', '{'])
        || path.split('/').any(|c| c == ".." || c.is_empty());
    (!unsafe_path).then(|| path.trim_start_matches("./").to_owned())
}

/// `90s`, `10m`, `1h30m`: whole numbers each followed by `h`, `m` or `s`, at most one of
/// each unit, in that order. `None` for anything else (a bare number has no unit to guess).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut last_rank = 0u8;
    if text.is_empty() {
        return None;
    }
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            if digits.len() > 9 {
                return None;
            }
            continue;
        }
        let (rank, seconds) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return None,
        };
        if digits.is_empty() || rank <= last_rank {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(seconds)?)?;
        digits.clear();
        last_rank = rank;
    }
    digits.is_empty().then_some(Duration::from_secs(total))
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct SurfaceName(Surface);

impl<'de> Deserialize<'de> for SurfaceName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        parse_surface(&name)
            .map(SurfaceName)
            .ok_or_else(|| serde::de::Error::custom(unknown_surface(&name)))
    }
}

/// A repository-relative path: no leading `/`, no `..`, `/`-separated.
struct RepoPath(String);

impl<'de> Deserialize<'de> for RepoPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let trimmed = text.trim_end_matches('/');
        let unsafe_path = trimmed.is_empty()
            || trimmed.starts_with('/')
            || trimmed.contains('\\')
            || trimmed.split('/').any(|c| c == ".." || c.is_empty());
        if unsafe_path {
            return Err(serde::de::Error::custom(format!(
                "`{text}` is not a repository-relative path (use `/` separators, no leading `/`, no `..`)"
            )));
        }
        Ok(RepoPath(trimmed.to_owned()))
    }
}

/// The starter file `countersign init` writes. It spells out every default, so it parses to
/// exactly `Config::default()` (tested).
pub const STARTER_CONFIG: &str = r#"# countersign.toml: how countersign reads this repository.
# countersign reads this file from the *base* commit of a change, so a change cannot
# rewrite the rules that judge it. Every key is optional; the values below are the defaults.
# Reference: docs/config.md

[graph]
# Globs of Backstage descriptor files that make up the system graph.
catalog = ["**/catalog-info.yaml", "**/catalog-info.yml"]
# CODEOWNERS location. Unset, countersign reads the first of .github/CODEOWNERS,
# CODEOWNERS and docs/CODEOWNERS, in GitHub's order.
# codeowners = ".github/CODEOWNERS"

[policy]
# Directory of Cedar policies (*.cedar). When it does not exist in the repository,
# the default policy pack embedded in countersign applies.
dir = ".countersign/policy"

[never_automate]
# Surfaces whose changes are never merged without a person. Valid names: auth, authz,
# payments, regulated-data, irreversible, ci-cd, governance, build. `governance` (countersign's
# own config, policy, catalog and CODEOWNERS files) cannot be removed. `build` (files that run
# at build time) is never automated for an agent whatever this list says; add it to hold
# people's build-script changes too.
surfaces = ["auth", "authz", "payments", "regulated-data", "irreversible", "ci-cd", "governance"]

# Files that carry a surface whatever the catalog says. Each key is a surface; a key
# set here replaces that surface's default globs, other surfaces keep theirs.
[never_automate.paths]
irreversible = ["**/migrations/**"]
ci-cd = [".github/workflows/**", ".gitlab-ci.yml", ".circleci/**", "Jenkinsfile"]

[governance]
# Extra files that govern changes (countersign.toml, the policy directory, catalog files
# and CODEOWNERS always are).
paths = []

[plan]
# How many levels of dependents the validation plan includes beyond the touched nodes.
depth = 1

[agents]
# Commit author names treated as agents. Case-insensitive; only `*` is special.
patterns = ["*[bot]", "dependabot*", "renovate*"]

[repository]
# The name signed evidence must give this repository (the `name` of its in-toto statement
# subject), compared exactly. Unset, no evidence is accepted and no runner may be declared.
# name = "github.com/acme/shop"
# The branches a proposal's base must come from, and whose moves `countersign hook
# pre-receive` guards. Unset: whichever of main and master exist. Read only from the tips
# of main and master (which are always protected), never from a proposal's base.
# protected = ["main", "release/1.x"]

# Runners trusted to sign evidence: the raw ed25519 public key as 64 hex digits (what
# `countersign runner keygen` prints) and the suites each may attest. None by default.
# [[runners]]
# name = "ci-linux"
# public_key = "<64 hex digits>"
# suites = ["unit", "e2e"]
# vex = true  # a VEX authority: its `not_affected` may clear findings on any node

# Suites the fleet runs (`countersign runner serve`), named by components'
# `countersign.dev/suites` annotations. The command is an argv, never run through a shell.
# [suites.unit]
# command = ["make", "test"]
# timeout = "10m"
# reports = { junit = ["target/junit.xml"] }
# environments = ["default"]

# Scheduled regression: suites run on the tip of a protected branch when a standard
# five-field cron expression is due (UTC unless `timezone` names another). Read only from
# that branch's own tip.
# [schedules.nightly]
# cron = "0 3 * * *"
# branch = "main"
# suites = ["unit"]
# environment = "default"  # default: each suite's own environments
"#;
