//! The evaluate pipeline (`countersign evaluate`, the demo, server proposals): from a change
//! to a decision, wiring graph, plan and policy.
//!
//! The order matters and is the security rule of the product: the governed state is read
//! from the base commit (or the working tree when paths are given), and only the list of
//! changed paths comes from the head.

use crate::error::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use countersign_evidence::{AssessInput, Assessment};
use countersign_graph::{FileSource, Impact, MemorySource, RecordingSource};
use countersign_policy::{Decision, DecisionInput, EvidenceFacts, Principal};
use countersign_repo::{ChangeKind, ChangedPath, Repo, WorkTree};

use crate::cache::{GovernedCache, Loaded};
use crate::evidence::{self, Binding};
use crate::governed::{self, GovernedState};
use crate::report::{self, EvaluationReport, ReportInput};

/// Where the change comes from.
pub enum ChangeSource {
    /// The diff `base..head`, computed from git objects; judged by the base's state.
    Commits { base: String, head: String },
    /// Paths listed by the caller; judged by the working tree's state, or by `rev`'s.
    Paths {
        paths: Vec<String>,
        rev: Option<String>,
    },
}

/// Who proposes, and what they claim.
pub struct Proposer {
    pub author: String,
    pub declared_tier: Option<String>,
}

/// A decided change with the intermediate results, for the text rendering and the record.
pub struct Evaluation {
    pub report: EvaluationReport,
    pub decision: Decision,
    pub impact: Impact,
    /// Every governed file the decision read (absent ones as `None`): with the changed paths
    /// and the proposer, enough to re-derive the decision offline (see [`rederive`]).
    pub inputs: BTreeMap<String, Option<Vec<u8>>>,
    /// The evidence envelopes that were accepted (head and base), as given.
    pub evidence: Vec<Vec<u8>>,
    /// In working-tree mode, the untracked (not ignored) files the governed state was read
    /// from: rules no commit holds yet. Empty otherwise.
    pub untracked_read: Vec<String>,
}

pub fn evaluate(repo: &Path, change: ChangeSource, proposer: &Proposer) -> Result<Evaluation> {
    evaluate_with_evidence(repo, change, proposer, &[])
}

/// [`evaluate`], weighing signed evidence files too (only for `Commits`). With no files, no
/// evidence is considered (`evidence_considered` is false), exactly as `evaluate`.
pub fn evaluate_with_evidence(
    repo: &Path,
    change: ChangeSource,
    proposer: &Proposer,
    evidence: &[PathBuf],
) -> Result<Evaluation> {
    if !evidence.is_empty() && matches!(change, ChangeSource::Paths { .. }) {
        bail!("evidence needs a change between two commits: evidence is bound to commits");
    }
    match change {
        ChangeSource::Commits { base, head } => evaluate_commits(
            repo,
            &base,
            &head,
            proposer,
            &evidence::read_all(evidence)?,
            None,
        ),
        ChangeSource::Paths { paths, rev } => {
            let changes = listed_paths(paths)?;
            let (state, reads, untracked_read) = match rev {
                Some(rev) => {
                    let git = Repo::open(repo)?;
                    let id = git.resolve(&rev)?;
                    let tree = git.commit_tree(&id)?;
                    let recording = RecordingSource::new(&tree);
                    let state = load_from(&recording, &rev)?;
                    (state, recording.into_reads(), Vec::new())
                }
                None => {
                    let source = WorkTree::open(repo)?;
                    let recording = RecordingSource::new(&source);
                    let state = load_from(&recording, "the working tree")?;
                    let reads = recording.into_reads();
                    (state, reads, source.untracked_read())
                }
            };
            // The reads mark governance paths only; a listed change records no inputs.
            let read_paths: Vec<String> = reads.into_keys().collect();
            let mut evaluation = decide(
                &state,
                BTreeMap::new(),
                &read_paths,
                changes,
                proposer,
                None,
                None,
                &[],
            )?;
            evaluation.untracked_read = untracked_read;
            evaluation.report.dead_globs = state.dead_globs.iter().map(Into::into).collect();
            Ok(evaluation)
        }
    }
}

/// [`evaluate`] of the change `base..head` with the governed state of `base` taken from
/// `cache` (loaded into it on a miss): the server's path, where many proposals share a base.
/// The evaluation, its recorded inputs included, is the same as without the cache.
pub fn evaluate_cached(
    repo: &Path,
    base: &str,
    head: &str,
    proposer: &Proposer,
    cache: &GovernedCache,
) -> Result<Evaluation> {
    evaluate_commits(repo, base, head, proposer, &[], Some(cache))
}

/// [`evaluate_cached`] weighing evidence envelopes already in memory (the server's accepted
/// evidence, each named for the report), verified exactly as `evaluate --evidence` verifies
/// files: trusted runners and the repository name from the base, bound to the head or the
/// base. With no envelopes, no evidence is considered, as [`evaluate_cached`].
pub fn evaluate_cached_with_evidence(
    repo: &Path,
    base: &str,
    head: &str,
    proposer: &Proposer,
    envelopes: &[evidence::EvidenceInput],
    cache: &GovernedCache,
) -> Result<Evaluation> {
    evaluate_commits(repo, base, head, proposer, envelopes, Some(cache))
}

fn evaluate_commits(
    repo: &Path,
    base: &str,
    head: &str,
    proposer: &Proposer,
    evidence_files: &[evidence::EvidenceInput],
    cache: Option<&GovernedCache>,
) -> Result<Evaluation> {
    // The server (with a cache) opens each repository once per process.
    let git = match cache {
        Some(_) => Repo::open_shared(repo)?,
        None => Repo::open(repo)?,
    };
    let base_id = git.resolve(base)?;
    let head_id = git.resolve(head)?;
    // An empty diff is an error of its own (RepoError::EmptyDiff): nothing to decide.
    let changes = git.diff(&base_id, &head_id)?;
    let load = || -> Result<Loaded> {
        let tree = git.commit_tree(&base_id)?;
        let recording = RecordingSource::new(&tree);
        let state = governed::load(&recording)
            .with_context(|| format!("reading the governed state at base {base}"))?;
        Ok(Loaded {
            state,
            reads: recording.into_reads(),
        })
    };
    let loaded = match cache {
        Some(cache) => cache.get_or_load(repo, base_id.as_str(), load)?,
        None => Arc::new(load()?),
    };
    let state = &loaded.state;
    let changed = countersign_repo::changed_paths(&changes);
    let read_paths: Vec<String> = loaded.reads.keys().cloned().collect();
    let mut evaluation = decide(
        state,
        loaded.reads.clone(),
        &read_paths,
        changes,
        proposer,
        Some(base_id.as_str().to_string()),
        Some(head_id.as_str().to_string()),
        evidence_files,
    )?;
    // Display only: approvers see what the head's policy would put in force.
    evaluation.report.policy_change = crate::policy_change::policy_change(
        &git,
        &head_id,
        &state.pack,
        &state.config.policy.dir,
        &changed,
    );
    evaluation.report.dead_globs = state.dead_globs.iter().map(Into::into).collect();
    if changed
        .iter()
        .any(|p| countersign_graph::workspace::is_manifest(p))
    {
        evaluation.report.graph_change = graph_change(&git, &head_id, state);
    }
    Ok(evaluation)
}

/// The edges the head's graph adds and removes, when a workspace manifest changed: what the
/// explanation says about a dependency change, which stays an ordinary change. `None` when
/// the edges are the same or the head's rules do not load (then the change touched them,
/// and governance says so).
fn graph_change(
    git: &Repo,
    head: &countersign_repo::CommitId,
    base: &GovernedState,
) -> Option<report::GraphChangeReport> {
    let tree = git.commit_tree(head).ok()?;
    let head_state = governed::load(&tree).ok()?;
    let edges = |graph: &countersign_graph::SystemGraph| -> std::collections::BTreeSet<String> {
        graph
            .edges()
            .iter()
            .filter_map(|e| {
                let from = &graph.node(e.from)?.entity;
                let to = &graph.node(e.to)?.entity;
                let kind = serde_json::to_value(e.kind).ok()?;
                Some(format!("{from} {} {to}", kind.as_str()?))
            })
            .collect()
    };
    let before = edges(base.graph());
    let after = edges(head_state.graph());
    if before == after {
        return None;
    }
    Some(report::GraphChangeReport {
        edges_added: after.difference(&before).cloned().collect(),
        edges_removed: before.difference(&after).cloned().collect(),
    })
}

fn load_from(source: &dyn FileSource, what: &str) -> Result<GovernedState> {
    governed::load(source).with_context(|| format!("reading the governed state of {what}"))
}

/// Validates caller-listed paths: repository-relative, `/`-separated, no `..`.
fn listed_paths(paths: Vec<String>) -> Result<Vec<ChangedPath>> {
    let mut changes = Vec::new();
    for (index, raw) in paths.into_iter().enumerate() {
        let path = raw.trim();
        if path.is_empty() {
            continue;
        }
        let path = path.strip_prefix("./").unwrap_or(path);
        if path.starts_with('/') || path.split('/').any(|part| part == "..") {
            bail!(
                "line {}: {path:?} is not a repository-relative path (no leading '/', no '..')",
                index + 1
            );
        }
        changes.push(ChangedPath {
            path: path.to_string(),
            kind: ChangeKind::Modified,
        });
    }
    if changes.is_empty() {
        bail!("empty diff: no changed paths were given, there is nothing to decide");
    }
    changes.sort();
    changes.dedup();
    Ok(changes)
}

/// Re-derives a decision from recorded inputs alone: the governed files it read, the
/// changed paths and the proposer. Used to verify audit bundles years later.
pub fn rederive(
    inputs: BTreeMap<String, Option<Vec<u8>>>,
    changes: Vec<ChangedPath>,
    proposer: &Proposer,
    base: Option<String>,
    head: Option<String>,
    envelopes: Vec<Vec<u8>>,
) -> Result<Evaluation> {
    let present: Vec<(String, Vec<u8>)> = inputs
        .iter()
        .filter_map(|(path, bytes)| Some((path.clone(), bytes.clone()?)))
        .collect();
    let source = MemorySource::new(present);
    let recorded: Vec<evidence::EvidenceInput> = envelopes
        .into_iter()
        .enumerate()
        .map(|(n, bytes)| (format!("recorded evidence #{}", n + 1), Ok(bytes)))
        .collect();
    let state = governed::load(&source).context("re-reading the recorded governed state")?;
    let read_paths: Vec<String> = inputs.keys().cloned().collect();
    decide(
        &state,
        inputs,
        &read_paths,
        changes,
        proposer,
        base,
        head,
        &recorded,
    )
}

/// `read_paths`: every path loading `state` read or looked for (governance whatever the
/// graph says, see [`governed::mark_read_rules`]).
#[allow(clippy::too_many_arguments)]
fn decide(
    state: &GovernedState,
    inputs: BTreeMap<String, Option<Vec<u8>>>,
    read_paths: &[String],
    changes: Vec<ChangedPath>,
    proposer: &Proposer,
    base: Option<String>,
    head: Option<String>,
    evidence_files: &[evidence::EvidenceInput],
) -> Result<Evaluation> {
    let author = principal(state, &proposer.author)?;
    let paths = countersign_repo::changed_paths(&changes);
    let graph = state.graph();
    let mut impact = countersign_graph::impact(graph, &paths);
    governed::mark_read_rules(&mut impact, graph, read_paths);
    let plan = countersign_evidence::plan(
        &impact,
        |entity| {
            graph
                .find(entity)
                .and_then(|id| graph.node(id))
                .map(|node| node.suites.clone())
                .unwrap_or_default()
        },
        state.config.plan.depth,
    );
    // Evidence is weighed only when files were given: no files keeps "no evidence
    // considered", which is not the same as "evidence of nothing".
    let weighed = match (&base, &head) {
        (Some(base), Some(head)) if !evidence_files.is_empty() => {
            let verified =
                evidence::verify_for_change(evidence_files, &state.config, graph, head, base)?;
            let head_evidence = verified.bound_to(Binding::Head);
            let base_evidence = verified.bound_to(Binding::Base);
            let assessment = countersign_evidence::assess(&AssessInput {
                graph,
                plan: &plan,
                head: &head_evidence,
                base: &base_evidence,
                base_commit: Some(base.as_str()),
            });
            Some((verified, assessment))
        }
        _ => None,
    };
    let suites_of = |entity: &countersign_graph::EntityRef| {
        graph
            .find(entity)
            .and_then(|id| graph.node(id))
            .map(|node| node.suites.clone())
            .unwrap_or_default()
    };
    let self_validated = crate::selfval::self_validated(&plan, &impact, &state.config, suites_of);
    let mut input = DecisionInput::new(&impact, author);
    input.evidence = weighed
        .as_ref()
        .map(|(_, assessment)| evidence_facts(assessment));
    input.self_validation = countersign_policy::SelfValidation {
        suites: self_validated.keys().cloned().collect(),
        base_suite_passed: weighed
            .as_ref()
            .map(|(_, assessment)| assessment.base_suite_passed.iter().cloned().collect())
            .unwrap_or_default(),
    };
    input.declared_tier = proposer.declared_tier.clone();
    input.never_automate = state.config.never_automate.surfaces.clone();
    input.approver_pool = governed::approver_pool(graph, &state.config, &impact);
    input.approval_rules = countersign_policy::ApprovalRules {
        change_control_owners: state.config.approval.change_control_owners,
    };
    let decision = countersign_policy::decide(&state.pack, &input);
    let report = report::build(ReportInput {
        decision: &decision,
        impact: &impact,
        plan: &plan,
        changes: &changes,
        base,
        head,
        graph_version: graph.version().to_string(),
        evidence: weighed
            .as_ref()
            .map(|(verified, assessment)| report::evidence_report(verified, assessment)),
        self_validated: &self_validated,
    });
    let evidence = weighed
        .as_ref()
        .map(|(verified, _)| {
            verified
                .accepted
                .iter()
                .map(|a| a.envelope.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(Evaluation {
        report,
        decision,
        impact,
        inputs,
        evidence,
        untracked_read: Vec::new(),
    })
}

/// The Cedar facts of an assessment.
fn evidence_facts(assessment: &Assessment) -> EvidenceFacts {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    EvidenceFacts {
        coverage_percent: assessment.coverage.percent,
        planned_suites: assessment.coverage.planned,
        failed_suites: count(assessment.failed_suites.len()),
        regressions: count(assessment.regressions.len()),
        reachable_vulnerabilities: count(assessment.blocking_vulnerabilities()),
    }
}

/// Parses the proposer's author; a human name matching the configured agent patterns (a bot
/// account) is treated as the agent it is.
fn principal(state: &GovernedState, author: &str) -> Result<Principal> {
    let principal: Principal = author
        .parse()
        .map_err(|source| crate::DecideError::Author {
            author: author.to_owned(),
            source,
        })?;
    Ok(match principal {
        Principal::Human(name) if state.config.agents.is_agent(&name) => Principal::Agent(name),
        other => other,
    })
}
