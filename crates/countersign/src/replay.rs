//! `countersign replay`: what a policy would have done to real history.
//!
//! Each first-parent commit is decided against the governed state (config, graph, policy)
//! of its parent, exactly as `evaluate --base PARENT --head COMMIT` would, or against a fixed
//! candidate pack. The report aggregates the decisions: share per tier, approvals per team
//! and ISO week, the reasons that fire most, the commits a candidate moves, and the
//! calibration flags. With `--assume-evidence full` each commit is also decided as if the
//! fleet had supplied full passing trusted evidence for every suite of its validation
//! plan, and the report contrasts the two distributions (what evidence-earned automation
//! would buy). This module owns the aggregation and the graph cache; it decides nothing
//! itself (that is `countersign_policy::decide`) and renders only CSV and text.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use countersign_graph::RecordingSource;
use countersign_policy::{
    Decision, DecisionInput, EvidenceFacts, PolicyPack, Principal, ReasonEffect, ReasonSource,
    SelfValidation, Tier, decide,
};
use countersign_repo::{ChangedPath, CommitId, Repo, RepoError};
use serde::{Serialize, Serializer};

use countersign_decide::governed::{self, GovernedState};

/// Default share of changes the human tiers may take before the report flags a bottleneck.
pub const DEFAULT_HUMAN_SHARE_MAX: u8 = 30;

/// Which commits to replay.
pub enum Range {
    /// The last N first-parent commits of HEAD.
    Last(usize),
    /// First-parent commits of HEAD after REV (REV excluded).
    Since(String),
}

pub struct ReplayOptions<'a> {
    pub repo: &'a Path,
    pub range: Range,
    /// A fixed candidate pack, compared with each parent's own pack.
    pub candidate: Option<PolicyPack>,
    /// Overrides the share threshold (percent) for the bottleneck flag.
    pub human_share_max: Option<u8>,
    /// Also decide each commit as if full passing trusted evidence covered its plan.
    pub assume_full_evidence: bool,
}

/// One replayed commit.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayedCommit {
    pub commit: String,
    pub summary: String,
    pub author: String,
    pub author_kind: String,
    /// ISO 8601 week of the author date, `2025-W07`.
    pub week: String,
    /// The tier the replayed policy gives (the candidate's with `--policy`).
    #[serde(serialize_with = "tier_name")]
    pub tier: Tier,
    /// With `--policy`: the tier the commit's own (parent's) policy gives.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_tier_name"
    )]
    pub current_tier: Option<Tier>,
    /// With `--assume-evidence full`: the tier the same policy gives with full passing
    /// trusted evidence for every planned suite.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_tier_name"
    )]
    pub assumed_tier: Option<Tier>,
    /// Policy ids and invariant names that ruled out a less restrictive tier.
    pub reasons: Vec<String>,
    /// Owning teams of the touched nodes.
    pub owners: Vec<String>,
    pub required_approvals: u32,
    /// Sensitive surfaces the change touches or reaches.
    pub surfaces_reached: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierShare {
    #[serde(serialize_with = "tier_name")]
    pub tier: Tier,
    pub changes: usize,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReasonCount {
    pub reason: String,
    pub changes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    pub commit: String,
    pub summary: String,
    #[serde(serialize_with = "tier_name")]
    pub from: Tier,
    #[serde(serialize_with = "tier_name")]
    pub to: Tier,
}

#[derive(Debug, Clone, Serialize)]
pub struct AutomatedSensitive {
    pub commit: String,
    pub summary: String,
    #[serde(serialize_with = "tier_name")]
    pub tier: Tier,
    pub surfaces: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// Share of replayed changes in single_approver or change_control.
    pub human_share_percent: f64,
    pub human_share_max_percent: u8,
    /// "The tiering rebuilt the bottleneck": the human share is above the maximum.
    pub bottleneck: bool,
    /// The reasons that kept the human-tier changes from an automated tier, most frequent first.
    pub responsible: Vec<ReasonCount>,
    /// Changes that took an automated tier while touching or reaching a sensitive surface.
    pub automated_sensitive: Vec<AutomatedSensitive>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub replayed: usize,
    /// Commits with no file change (merges of nothing, empty commits): not decided.
    pub empty: usize,
    /// Distinct governed states (graph + policy) the replay built.
    pub governed_states: usize,
    pub candidate_policy: Option<String>,
    pub tiers: Vec<TierShare>,
    /// With `--assume-evidence full`: the share per tier with full passing evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumed_tiers: Option<Vec<TierShare>>,
    /// With `--assume-evidence full`: commits full evidence would move to another tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumed_moved: Option<Vec<Moved>>,
    /// ISO week, then team: approvals the team would have had to give.
    pub approvals_per_week: BTreeMap<String, BTreeMap<String, u32>>,
    pub top_reasons: Vec<ReasonCount>,
    /// With `--policy`: commits the candidate routes differently from the current policy.
    pub moved: Vec<Moved>,
    pub calibration: Calibration,
    pub commits: Vec<ReplayedCommit>,
    #[serde(skip)]
    pub elapsed: Duration,
}

// Tiers are written by name (`auto_merge`), as everywhere in countersign's output.
fn tier_name<S: Serializer>(tier: &Tier, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(tier.as_str())
}

fn optional_tier_name<S: Serializer>(
    tier: &Option<Tier>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match tier {
        Some(tier) => serializer.serialize_str(tier.as_str()),
        None => serializer.serialize_none(),
    }
}

/// Replay the range; `progress(done, total)` is called after each commit.
pub fn replay(
    options: &ReplayOptions<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ReplayReport> {
    let started = Instant::now();
    let git = Repo::open(options.repo)?;
    let history = commits_in_range(&git, &options.range)?;
    // Oldest first, so a governed state is reused until a commit changes it.
    let pairs: Vec<(CommitId, CommitId)> = history
        .windows(2)
        .rev()
        .map(|w| (w[1].clone(), w[0].clone()))
        .collect();
    let total = pairs.len();
    let mut cache: Option<CachedState> = None;
    let mut governed_states = 0;
    let mut commits = Vec::with_capacity(total);
    let mut empty = 0;
    let mut max_share: Option<u8> = options.human_share_max;
    for (done, (parent, commit)) in pairs.iter().enumerate() {
        let changes = match git.diff(parent, commit) {
            Ok(changes) => changes,
            Err(RepoError::EmptyDiff { .. }) => {
                empty += 1;
                progress(done + 1, total);
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let reuse = cache.as_ref().is_some_and(|c| &c.commit == parent);
        if !reuse {
            let stale = cache.take();
            cache = Some(match stale {
                // The parent's state equals the grandparent's unless the grandparent..parent
                // diff touched a governed file: then rebuild.
                Some(c) if c.still_valid_for(&git, parent)? => CachedState {
                    commit: parent.clone(),
                    ..c
                },
                _ => {
                    governed_states += 1;
                    CachedState::load(&git, parent)?
                }
            });
        }
        let Some(state) = cache.as_ref() else {
            bail!("internal: no governed state for {parent}");
        };
        if max_share.is_none() {
            max_share = state.state.config.replay.human_share_max;
        }
        let info = git.commit_info(commit)?;
        let name = info.author.name.clone();
        let author = if state.state.config.agents.is_agent(&name) {
            Principal::Agent(name)
        } else {
            Principal::Human(name)
        };
        let paths = countersign_repo::changed_paths(&changes);
        let graph = state.state.graph();
        let impact = countersign_graph::impact(graph, &paths);
        let mut input = DecisionInput::new(&impact, author.clone());
        input.never_automate = state.state.config.never_automate.surfaces.clone();
        input.approver_pool = governed::approver_pool(graph, &state.state.config, &impact);
        let current = decide(&state.state.pack, &input);
        let (decision, current_tier) = match &options.candidate {
            Some(candidate) => {
                let tier = current.tier;
                (decide(candidate, &input), Some(tier))
            }
            None => (current, None),
        };
        let assumed_tier = options.assume_full_evidence.then(|| {
            let pack = options.candidate.as_ref().unwrap_or(&state.state.pack);
            let (evidence, self_validation) = full_evidence(&state.state, &impact);
            let mut assumed = input.clone();
            assumed.evidence = Some(evidence);
            assumed.self_validation = self_validation;
            decide(pack, &assumed).tier
        });
        commits.push(ReplayedCommit {
            commit: commit.as_str().to_owned(),
            summary: info.summary.clone(),
            author: author.to_string(),
            author_kind: author.kind().to_owned(),
            week: iso_week(info.author.time),
            tier: decision.tier,
            current_tier,
            assumed_tier,
            reasons: ruling_reasons(&decision),
            owners: impact.owners.iter().map(ToString::to_string).collect(),
            required_approvals: decision.approvals.required,
            surfaces_reached: decision
                .facts
                .surfaces_reached
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        });
        progress(done + 1, total);
    }
    Ok(aggregate(
        commits,
        empty,
        governed_states,
        options.candidate.as_ref().map(|p| p.version().to_owned()),
        max_share.unwrap_or(DEFAULT_HUMAN_SHARE_MAX),
        started.elapsed(),
    ))
}

/// What full passing trusted evidence for every planned suite would say: the whole plan
/// covered, nothing failed, nothing regressed, no vulnerability. The self-validated suites
/// stay unconfirmed: the fleet runs the head's suites, and only a run of a suite's *base*
/// version confirms one (docs/policy.md), so assuming the head's runs cannot.
fn full_evidence(
    state: &GovernedState,
    impact: &countersign_graph::Impact,
) -> (EvidenceFacts, SelfValidation) {
    let graph = state.graph();
    let suites_of = |entity: &countersign_graph::EntityRef| {
        graph
            .find(entity)
            .and_then(|id| graph.node(id))
            .map(|node| node.suites.clone())
            .unwrap_or_default()
    };
    let plan = countersign_evidence::plan(impact, suites_of, state.config.plan.depth);
    let self_validated =
        countersign_decide::selfval::self_validated(&plan, impact, &state.config, suites_of);
    (
        EvidenceFacts {
            coverage_percent: 100,
            planned_suites: u32::try_from(plan.suites.len()).unwrap_or(u32::MAX),
            failed_suites: 0,
            regressions: 0,
            reachable_vulnerabilities: 0,
        },
        SelfValidation {
            suites: self_validated.into_keys().collect(),
            base_suite_passed: Default::default(),
        },
    )
}

/// HEAD's first-parent history covering the range, newest first, with one extra (older)
/// commit at the end: the parent of the oldest replayed commit.
fn commits_in_range(git: &Repo, range: &Range) -> Result<Vec<CommitId>> {
    match range {
        Range::Last(n) => Ok(git.first_parent_history("HEAD", n.saturating_add(1))?),
        Range::Since(rev) => {
            let stop = git.resolve(rev)?;
            let mut history = Vec::new();
            // Walk in growing windows rather than the whole history at once.
            let mut window = 256usize;
            loop {
                let walked = git.first_parent_history("HEAD", window)?;
                if let Some(at) = walked.iter().position(|c| *c == stop) {
                    history.extend(walked.into_iter().take(at + 1));
                    return Ok(history);
                }
                if walked.len() < window {
                    bail!("{rev} is not on the first-parent history of HEAD");
                }
                window = window.saturating_mul(4);
            }
        }
    }
}

/// The governed state of one commit, with what it read, so later commits can tell whether
/// it still applies.
struct CachedState {
    commit: CommitId,
    state: GovernedState,
    /// Every file the load read (present or absent).
    reads: BTreeSet<String>,
}

impl CachedState {
    fn load(git: &Repo, commit: &CommitId) -> Result<CachedState> {
        let tree = git.commit_tree(commit)?;
        let recording = RecordingSource::new(&tree);
        let state = governed::load(&recording)
            .with_context(|| format!("reading the governed state at {commit}"))?;
        let reads = recording.into_reads().into_keys().collect();
        Ok(CachedState {
            commit: commit.clone(),
            state,
            reads,
        })
    }

    /// Whether this state (of `self.commit`) is also the state of `next`, a child of it:
    /// true unless the diff touches a file the load read or a file that could join the
    /// governed state (catalog files, workspace manifests, CODEOWNERS, the config, policy).
    fn still_valid_for(&self, git: &Repo, next: &CommitId) -> Result<bool> {
        let changes = match git.diff(&self.commit, next) {
            Ok(changes) => changes,
            Err(RepoError::EmptyDiff { .. }) => return Ok(true),
            Err(error) => return Err(error.into()),
        };
        Ok(!changes.iter().any(|c| self.governs(c)))
    }

    fn governs(&self, change: &ChangedPath) -> bool {
        let path = change.path.as_str();
        if self.reads.contains(path) {
            return true;
        }
        let config = &self.state.config;
        let policy_dir = config.policy.dir.trim_end_matches('/');
        let name = path.rsplit('/').next().unwrap_or(path);
        path.starts_with(&format!("{policy_dir}/"))
            || matches!(
                name,
                "countersign.toml"
                    | "CODEOWNERS"
                    | "Cargo.toml"
                    | "package.json"
                    | "pnpm-workspace.yaml"
            )
            // Catalog descriptors (and Location targets) are YAML; a new one can add nodes.
            || name.ends_with(".yaml")
            || name.ends_with(".yml")
    }
}

/// Policy ids and invariant names that ruled out a tier less restrictive than the chosen one.
fn ruling_reasons(decision: &Decision) -> Vec<String> {
    let mut reasons: BTreeSet<String> = BTreeSet::new();
    for reason in &decision.reasons {
        if !matches!(reason.effect, ReasonEffect::Forbid | ReasonEffect::Raise) {
            continue;
        }
        match &reason.source {
            ReasonSource::Policy { id } => reasons.insert(id.clone()),
            ReasonSource::Invariant { name } => reasons.insert(format!("invariant:{name}")),
            ReasonSource::DefaultDeny => reasons.insert(format!(
                "no-permit:{}",
                reason.tier.map_or("", |t| t.as_str())
            )),
            ReasonSource::Floor | ReasonSource::Evidence => false,
        };
    }
    reasons.into_iter().collect()
}

fn aggregate(
    commits: Vec<ReplayedCommit>,
    empty: usize,
    governed_states: usize,
    candidate_policy: Option<String>,
    human_share_max: u8,
    elapsed: Duration,
) -> ReplayReport {
    let total = commits.len();
    let percent = |n: usize| {
        if total == 0 {
            0.0
        } else {
            (n as f64) * 100.0 / (total as f64)
        }
    };
    let shares = |tier_of: &dyn Fn(&ReplayedCommit) -> Option<Tier>| -> Vec<TierShare> {
        Tier::ALL
            .into_iter()
            .map(|tier| {
                let changes = commits.iter().filter(|c| tier_of(c) == Some(tier)).count();
                TierShare {
                    tier,
                    changes,
                    percent: percent(changes),
                }
            })
            .collect()
    };
    let tiers = shares(&|c| Some(c.tier));
    let assumed = commits.iter().any(|c| c.assumed_tier.is_some());
    let assumed_tiers = assumed.then(|| shares(&|c| c.assumed_tier));
    let assumed_moved = assumed.then(|| {
        commits
            .iter()
            .filter_map(|c| {
                let to = c.assumed_tier?;
                (to != c.tier).then(|| Moved {
                    commit: c.commit.clone(),
                    summary: c.summary.clone(),
                    from: c.tier,
                    to,
                })
            })
            .collect()
    });
    let mut approvals_per_week: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for commit in commits.iter().filter(|c| c.required_approvals > 0) {
        let week = approvals_per_week.entry(commit.week.clone()).or_default();
        let teams: Vec<String> = if commit.owners.is_empty() {
            vec!["(no owner)".to_owned()]
        } else {
            commit.owners.clone()
        };
        for team in teams {
            *week.entry(team).or_default() += commit.required_approvals;
        }
    }
    let count = |filter: &dyn Fn(&ReplayedCommit) -> bool| -> Vec<ReasonCount> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for commit in commits.iter().filter(|c| filter(c)) {
            for reason in &commit.reasons {
                *counts.entry(reason.as_str()).or_default() += 1;
            }
        }
        let mut counts: Vec<ReasonCount> = counts
            .into_iter()
            .map(|(reason, changes)| ReasonCount {
                reason: reason.to_owned(),
                changes,
            })
            .collect();
        counts.sort_by(|a, b| b.changes.cmp(&a.changes).then(a.reason.cmp(&b.reason)));
        counts
    };
    let mut top_reasons = count(&|_| true);
    top_reasons.truncate(10);
    let human = commits.iter().filter(|c| !c.tier.is_automated()).count();
    let human_share_percent = percent(human);
    let mut responsible = count(&|c| !c.tier.is_automated());
    responsible.truncate(10);
    let automated_sensitive = commits
        .iter()
        .filter(|c| c.tier.is_automated() && !c.surfaces_reached.is_empty())
        .map(|c| AutomatedSensitive {
            commit: c.commit.clone(),
            summary: c.summary.clone(),
            tier: c.tier,
            surfaces: c.surfaces_reached.clone(),
        })
        .collect();
    let moved = commits
        .iter()
        .filter_map(|c| {
            let from = c.current_tier?;
            (from != c.tier).then(|| Moved {
                commit: c.commit.clone(),
                summary: c.summary.clone(),
                from,
                to: c.tier,
            })
        })
        .collect();
    ReplayReport {
        replayed: total,
        empty,
        governed_states,
        candidate_policy,
        tiers,
        assumed_tiers,
        assumed_moved,
        approvals_per_week,
        top_reasons,
        moved,
        calibration: Calibration {
            human_share_percent,
            human_share_max_percent: human_share_max,
            bottleneck: human_share_percent > f64::from(human_share_max),
            responsible,
            automated_sensitive,
        },
        commits,
        elapsed,
    }
}

/// ISO 8601 week (`YYYY-Www`) of a Unix time, in UTC.
pub fn iso_week(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    // 1970-01-01 was a Thursday; Monday is 0.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let jan1 = days_from_civil(year, 1, 1);
    let week = (thursday - jan1) / 7 + 1;
    format!("{year}-W{week:02}")
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A one-line progress display on stderr when it is a terminal, redrawn at most ten times
/// a second. Hand-written rather than a progress-bar crate: one line of `\r` output is all
/// replay needs, and it keeps the binary's dependencies down.
pub struct Progress {
    enabled: bool,
    last: Option<Instant>,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    pub fn update(&mut self, done: usize, total: usize) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if done < total
            && self
                .last
                .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width);
        let mut stderr = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not fail the replay.
        let _ = write!(
            stderr,
            "\rreplaying [{}{}] {done}/{total}",
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
        if done >= total {
            let _ = writeln!(stderr);
        }
        let _ = stderr.flush();
    }
}

/// The report for people.
pub fn render_text(report: &ReplayReport) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "replayed {} commit(s) ({} without file changes skipped), {} governed state(s) built, in {:.2} s",
        report.replayed,
        report.empty,
        report.governed_states,
        report.elapsed.as_secs_f64()
    ));
    if let Some(version) = &report.candidate_policy {
        line(format!("candidate policy {version}"));
    }
    line(String::new());
    match &report.assumed_tiers {
        None => {
            line("share per tier:".to_owned());
            for share in &report.tiers {
                line(format!(
                    "  {:<20} {:>6} {:>6.1}%",
                    share.tier.as_str(),
                    share.changes,
                    share.percent
                ));
            }
        }
        Some(assumed) => {
            line(
                "share per tier, actual vs. with full passing trusted evidence for every planned suite:"
                    .to_owned(),
            );
            line(format!(
                "  {:<20} {:>14} {:>22}",
                "", "actual", "assumed full evidence"
            ));
            for (share, with) in report.tiers.iter().zip(assumed) {
                line(format!(
                    "  {:<20} {:>6} {:>6.1}% {:>14} {:>6.1}%",
                    share.tier.as_str(),
                    share.changes,
                    share.percent,
                    with.changes,
                    with.percent
                ));
            }
            let moved = report.assumed_moved.as_deref().unwrap_or_default();
            line(format!(
                "commits full evidence would move between tiers: {}",
                moved.len()
            ));
            for moved in moved {
                line(format!(
                    "  {} {} -> {}  {}",
                    short(&moved.commit),
                    moved.from.as_str(),
                    moved.to.as_str(),
                    moved.summary
                ));
            }
        }
    }
    line(String::new());
    line("approvals per ISO week and team:".to_owned());
    if report.approvals_per_week.is_empty() {
        line("  none".to_owned());
    }
    for (week, teams) in &report.approvals_per_week {
        for (team, n) in teams {
            line(format!("  {week}  {team:<40} {n}"));
        }
    }
    line(String::new());
    line("most frequent reasons:".to_owned());
    if report.top_reasons.is_empty() {
        line("  none".to_owned());
    }
    for reason in &report.top_reasons {
        line(format!("  {:>6}  {}", reason.changes, reason.reason));
    }
    if report.candidate_policy.is_some() {
        line(String::new());
        line(format!(
            "commits the candidate moves between tiers: {}",
            report.moved.len()
        ));
        for moved in &report.moved {
            line(format!(
                "  {} {} -> {}  {}",
                short(&moved.commit),
                moved.from.as_str(),
                moved.to.as_str(),
                moved.summary
            ));
        }
    }
    let calibration = &report.calibration;
    line(String::new());
    line(format!(
        "calibration: human tiers take {:.1}% of changes (maximum {}%)",
        calibration.human_share_percent, calibration.human_share_max_percent
    ));
    if calibration.bottleneck {
        line(
            "  FLAG: the tiering rebuilt the bottleneck. Rules that kept these changes from an automated tier:"
                .to_owned(),
        );
        for reason in &calibration.responsible {
            line(format!("    {:>6}  {}", reason.changes, reason.reason));
        }
    }
    if !calibration.automated_sensitive.is_empty() {
        line(format!(
            "  FLAG: {} change(s) took an automated tier while touching or reaching a sensitive surface:",
            calibration.automated_sensitive.len()
        ));
        for item in &calibration.automated_sensitive {
            line(format!(
                "    {} {} [{}]  {}",
                short(&item.commit),
                item.tier.as_str(),
                item.surfaces.join(", "),
                item.summary
            ));
        }
    }
    out
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// One row per replayed commit.
pub fn render_csv(report: &ReplayReport) -> String {
    let mut out = String::from(
        "commit,week,author,author_kind,tier,current_tier,assumed_tier,required_approvals,owners,surfaces_reached,reasons,summary\n",
    );
    for c in &report.commits {
        let fields = [
            c.commit.clone(),
            c.week.clone(),
            c.author.clone(),
            c.author_kind.clone(),
            c.tier.as_str().to_owned(),
            c.current_tier
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            c.assumed_tier
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            c.required_approvals.to_string(),
            c.owners.join(";"),
            c.surfaces_reached.join(";"),
            c.reasons.join(";"),
            c.summary.clone(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// RFC 4180 quoting.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_weeks_follow_iso_8601() {
        // 2021-01-03 (Sunday) belongs to 2020-W53; 2021-01-04 starts 2021-W01.
        assert_eq!(iso_week(1_609_632_000), "2020-W53");
        assert_eq!(iso_week(1_609_718_400), "2021-W01");
        // 1970-01-01, a Thursday.
        assert_eq!(iso_week(0), "1970-W01");
        // 2024-12-30 (Monday) is 2025-W01.
        assert_eq!(iso_week(1_735_516_800), "2025-W01");
    }

    #[test]
    fn csv_fields_are_quoted() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
