//! The evaluate pipeline (`countersign evaluate`, the demo, server proposals): from a change
//! to a decision, wiring graph, plan and policy.
//!
//! The order matters and is the security rule of the product: the governed state is read
//! from the base commit (or the working tree when paths are given), and only the list of
//! changed paths comes from the head.

use crate::error::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use countersign_evidence::{AcceptedEvidence, AssessInput, Assessment, ValidationPlan};
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
    /// The human who dispatched the proposing agent (`token create --on-behalf-of`), as
    /// `human:NAME`: the `dispatched_by` fact. `None` when nobody did.
    pub dispatched_by: Option<String>,
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
    /// What would lower the tier, when asked for (`evaluate --what-if`).
    pub what_if: Option<crate::what_if::WhatIf>,
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
    evaluate_with_what_if(repo, change, proposer, evidence, None)
}

/// [`evaluate_with_evidence`], and with `what_if` the search for what would lower the tier
/// ([`crate::what_if`]) under that budget, in [`Evaluation::what_if`] and the report.
pub fn evaluate_with_what_if(
    repo: &Path,
    change: ChangeSource,
    proposer: &Proposer,
    evidence: &[PathBuf],
    what_if: Option<&crate::what_if::Budget>,
) -> Result<Evaluation> {
    if !evidence.is_empty() && matches!(change, ChangeSource::Paths { .. }) {
        bail!("evidence needs a change between two commits: evidence is bound to commits");
    }
    match change {
        ChangeSource::Commits { base, head } => {
            let mut evaluation = evaluate_commits(
                repo,
                &base,
                &head,
                proposer,
                &evidence::read_all(evidence)?,
                None,
                what_if,
            )?;
            exclude_authors(repo, &mut evaluation, proposer)?;
            Ok(evaluation)
        }
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
                what_if,
            )?;
            evaluation.untracked_read = untracked_read;
            evaluation.report.dead_globs = state.dead_globs.iter().map(Into::into).collect();
            Ok(evaluation)
        }
    }
}

/// Takes the authors of the change's commits (and the dispatcher) out of the report's
/// approvers, with the functions the server's proposals use: the commits read by
/// `people::change_authors` through the base's catalog, the list of authors by
/// `countersign_lifecycle::authors`, and the pool by `authorship::approver_pool`. So
/// `evaluate` never lists as eligible someone the server would refuse as an author. (The
/// server reads the authors itself, cached per base; its decision records the list before
/// they are taken out, and its view takes them out.)
fn exclude_authors(repo: &Path, evaluation: &mut Evaluation, proposer: &Proposer) -> Result<()> {
    let change = &evaluation.report.change;
    let (Some(base), Some(head)) = (&change.base, &change.head) else {
        return Ok(());
    };
    let git = Repo::open(repo)?;
    let (base, head) = (git.resolve(base)?, git.resolve(head)?);
    let people = crate::people::people(&git, &base)?;
    let read = crate::people::change_authors(&git, &people, &base, &head)?;
    let authors =
        countersign_lifecycle::authors(&read.principals(), proposer.dispatched_by.as_deref());
    let author = evaluation.decision.author.to_string();
    let pool = crate::authorship::approver_pool(&evaluation.decision, &author, &authors);
    let explanation = crate::authorship::explain(&read.authorship, &pool, &author);
    let approvers = &mut evaluation.report.approvers;
    approvers.exclude_authors(authors, &pool, explanation);
    // The decision's own lists too, so its text says the same as the report.
    let may = |user: &countersign_graph::EntityRef| {
        let principal = crate::people::principal_of(user);
        pool.eligible.contains(&principal)
    };
    let approvals = &mut evaluation.decision.approvals;
    approvals.eligible.retain(may);
    for requirement in &mut approvals.requirements {
        requirement.eligible.retain(may);
    }
    approvals.shortfall = approvers.shortfall;
    Ok(())
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
    evaluate_commits(repo, base, head, proposer, &[], Some(cache), None)
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
    evaluate_commits(repo, base, head, proposer, envelopes, Some(cache), None)
}

/// [`evaluate_cached_with_evidence`] with the what-if search under `budget`: the server's
/// `GET /v1/proposals/{id}/what-if`.
pub fn what_if_cached(
    repo: &Path,
    base: &str,
    head: &str,
    proposer: &Proposer,
    envelopes: &[evidence::EvidenceInput],
    cache: &GovernedCache,
    budget: &crate::what_if::Budget,
) -> Result<Evaluation> {
    evaluate_commits(
        repo,
        base,
        head,
        proposer,
        envelopes,
        Some(cache),
        Some(budget),
    )
}

/// The governed state of `commit` of the repository at `repo` (opened as `git`), with the
/// files its load read: from `cache` when one is given (loaded into it on a miss), so a
/// reader of the rules (the server's graph and policy routes) and a decision share one load.
pub fn governed_at(
    git: &Repo,
    repo: &Path,
    commit: &countersign_repo::CommitId,
    cache: Option<&GovernedCache>,
) -> Result<Arc<Loaded>> {
    let load = || -> Result<Loaded> {
        let tree = git.commit_tree(commit)?;
        let recording = RecordingSource::new(&tree);
        let state = governed::load(&recording)?;
        Ok(Loaded {
            state,
            reads: recording.into_reads(),
        })
    };
    match cache {
        Some(cache) => cache.get_or_load(repo, commit.as_str(), load),
        None => Ok(Arc::new(load()?)),
    }
}

fn evaluate_commits(
    repo: &Path,
    base: &str,
    head: &str,
    proposer: &Proposer,
    evidence_files: &[evidence::EvidenceInput],
    cache: Option<&GovernedCache>,
    what_if: Option<&crate::what_if::Budget>,
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
    let loaded = governed_at(&git, repo, &base_id, cache)
        .with_context(|| format!("reading the governed state at base {base}"))?;
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
        what_if,
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
        None,
    )
}

/// [`rederive`] over a governed state already loaded (from the recorded inputs, whose paths
/// are `read_paths`), with the what-if search when a budget is given: many decisions over
/// one base without reading it again. The evaluation records no inputs.
#[allow(clippy::too_many_arguments)]
pub fn decide_loaded(
    state: &GovernedState,
    read_paths: &[String],
    changes: Vec<ChangedPath>,
    proposer: &Proposer,
    base: Option<String>,
    head: Option<String>,
    envelopes: Vec<Vec<u8>>,
    what_if: Option<&crate::what_if::Budget>,
) -> Result<Evaluation> {
    let recorded: Vec<evidence::EvidenceInput> = envelopes
        .into_iter()
        .enumerate()
        .map(|(n, bytes)| (format!("evidence #{}", n + 1), Ok(bytes)))
        .collect();
    decide(
        state,
        BTreeMap::new(),
        read_paths,
        changes,
        proposer,
        base,
        head,
        &recorded,
        what_if,
    )
}

/// `read_paths`: every path loading `state` read or looked for (governance whatever the
/// graph says, see [`governed::mark_read_rules`]). With `what_if`, the search for what would
/// lower the tier runs on the same [`Judge`] (see [`crate::what_if`]).
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
    what_if: Option<&crate::what_if::Budget>,
) -> Result<Evaluation> {
    let author = principal(state, &proposer.author)?;
    let dispatched_by = proposer
        .dispatched_by
        .as_deref()
        .map(|d| dispatcher(state, d))
        .transpose()?;
    // Evidence is weighed only when files were given: no files keeps "no evidence
    // considered", which is not the same as "evidence of nothing".
    let verified = match (&base, &head) {
        (Some(base), Some(head)) if !evidence_files.is_empty() => Some(
            evidence::verify_for_change(evidence_files, &state.config, state.graph(), head, base)?,
        ),
        _ => None,
    };
    let bound = verified
        .as_ref()
        .map(|v| (v.bound_to(Binding::Head), v.bound_to(Binding::Base)));
    let judge = Judge {
        state,
        read_paths,
        author,
        dispatched_by,
        declared_tier: proposer.declared_tier.clone(),
        evidence: bound.as_ref().map(|(h, b)| (h.as_slice(), b.as_slice())),
        base_commit: base.as_deref(),
    };
    let judged = judge.judge(&changes, &BTreeSet::new());
    let what_if = what_if.map(|budget| crate::what_if::search(&judge, &changes, &judged, budget));
    let Judged {
        impact,
        plan,
        assessment,
        decision,
        self_validated,
    } = judged;
    let mut report = report::build(ReportInput {
        decision: &decision,
        impact: &impact,
        plan: &plan,
        changes: &changes,
        base,
        head,
        graph_version: state.graph().version().to_string(),
        evidence: verified
            .as_ref()
            .zip(assessment.as_ref())
            .map(|(verified, assessment)| report::evidence_report(verified, assessment)),
        self_validated: &self_validated,
    });
    report.what_if = what_if.as_ref().map(report::what_if_report);
    let evidence = verified
        .as_ref()
        .map(|verified| {
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
        what_if,
    })
}

/// What a decision holds fixed while the changed files vary: the governed state of the
/// base, the paths its loading read, the author and the verified evidence. One judge makes
/// the decision and every re-decision of the what-if search, so a suggestion's tier is
/// what this very pipeline gives the modified change.
pub(crate) struct Judge<'a> {
    pub state: &'a GovernedState,
    pub read_paths: &'a [String],
    pub author: Principal,
    /// The human who dispatched the proposing agent, if anyone did.
    pub dispatched_by: Option<Principal>,
    pub declared_tier: Option<String>,
    /// Accepted evidence (head, base), when evidence is weighed.
    pub evidence: Option<(&'a [AcceptedEvidence], &'a [AcceptedEvidence])>,
    /// The base commit, whose suite files a head run may name (a suite's base version).
    pub base_commit: Option<&'a str>,
}

/// A judged change with its intermediate results.
pub(crate) struct Judged {
    pub impact: Impact,
    pub plan: ValidationPlan,
    /// The assessment of the accepted evidence; `None` when no evidence was weighed.
    pub assessment: Option<Assessment>,
    pub decision: Decision,
    /// The self-validated suites with the defining files the change edits.
    pub self_validated: BTreeMap<String, Vec<String>>,
}

impl Judge<'_> {
    /// Decides `changes`. `assume_passing` names suites taken as passing at the head (the
    /// what-if's evidence assumption): with suites named and no evidence weighed, the
    /// evidence is the assumption alone; empty, the decision is the real one.
    pub fn judge(&self, changes: &[ChangedPath], assume_passing: &BTreeSet<String>) -> Judged {
        let state = self.state;
        let paths = countersign_repo::changed_paths(changes);
        let graph = state.graph();
        let mut impact = countersign_graph::impact(graph, &paths);
        governed::mark_read_rules(&mut impact, graph, self.read_paths);
        let suites_of = |entity: &countersign_graph::EntityRef| {
            graph
                .find(entity)
                .and_then(|id| graph.node(id))
                .map(|node| node.suites.clone())
                .unwrap_or_default()
        };
        let plan = countersign_evidence::plan(&impact, suites_of, state.config.plan.depth);
        let self_validated =
            crate::selfval::self_validated(&plan, &impact, &state.config, suites_of);
        let assess = |head: &[AcceptedEvidence], base: &[AcceptedEvidence]| {
            countersign_evidence::assess(&AssessInput {
                graph,
                plan: &plan,
                head,
                base,
                base_commit: self.base_commit,
            })
        };
        let assessment = self.evidence.map(|(head, base)| assess(head, base));
        let evidence_facts = match (&assessment, assume_passing.is_empty()) {
            (Some(assessment), _) => Some(evidence_facts(assessment, &plan, assume_passing)),
            (None, true) => None,
            (None, false) => Some(evidence_facts(&assess(&[], &[]), &plan, assume_passing)),
        };
        let mut input = DecisionInput::new(&impact, self.author.clone());
        input.evidence = evidence_facts;
        // A suite assumed passing (what-if) is the head's own run: it never confirms a
        // self-validated suite, which only its base version does.
        input.self_validation = countersign_policy::SelfValidation {
            suites: self_validated.keys().cloned().collect(),
            base_suite_passed: assessment
                .as_ref()
                .map(|a| a.base_suite_passed.iter().cloned().collect())
                .unwrap_or_default(),
        };
        input.declared_tier = self.declared_tier.clone();
        input.dispatched_by = self.dispatched_by.clone();
        input.never_automate = state.config.never_automate.surfaces.clone();
        input.approver_pool = governed::approver_pool(graph, &state.config, &impact);
        input.approval_rules = countersign_policy::ApprovalRules {
            change_control_owners: state.config.approval.change_control_owners,
            agent_extra: state.config.approval.agent_extra,
        };
        let decision = countersign_policy::decide(&state.pack, &input);
        Judged {
            impact,
            plan,
            assessment,
            decision,
            self_validated,
        }
    }
}

/// The Cedar facts of an assessment, with the suites of `assume_passing` taken as passing
/// at the head: passed, so not failed, and without regressions (a passing run fails no
/// test). Vulnerabilities stay as reported: a passing test run says nothing about a scan.
fn evidence_facts(
    assessment: &Assessment,
    plan: &ValidationPlan,
    assume_passing: &BTreeSet<String>,
) -> EvidenceFacts {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    if assume_passing.is_empty() {
        return EvidenceFacts {
            coverage_percent: assessment.coverage.percent,
            planned_suites: assessment.coverage.planned,
            failed_suites: count(assessment.failed_suites.len()),
            regressions: count(assessment.regressions.len()),
            reachable_vulnerabilities: count(assessment.blocking_vulnerabilities()),
        };
    }
    let passed: BTreeSet<&str> = assessment
        .suites
        .iter()
        .filter(|s| s.status == countersign_evidence::SuiteStatus::Passed)
        .map(|s| s.suite.as_str())
        .chain(assume_passing.iter().map(String::as_str))
        .collect();
    let planned = plan.suites.len();
    let planned_passed = plan
        .suites
        .iter()
        .filter(|s| passed.contains(s.suite.as_str()))
        .count();
    // As `assess` rounds: down, so one suite missing never reads as full coverage.
    let coverage_percent = (planned_passed * 100)
        .checked_div(planned)
        .map_or(100, |p| u8::try_from(p).unwrap_or(100));
    EvidenceFacts {
        coverage_percent,
        planned_suites: count(planned),
        failed_suites: count(
            assessment
                .failed_suites
                .iter()
                .filter(|s| !assume_passing.contains(*s))
                .count(),
        ),
        regressions: count(
            assessment
                .regressions
                .iter()
                .filter(|r| !assume_passing.contains(&r.suite))
                .count(),
        ),
        reachable_vulnerabilities: count(assessment.blocking_vulnerabilities()),
    }
}

/// Parses the dispatcher of an agent: only a human dispatches (a name the configured agent
/// patterns call a bot is not one), so a record naming anything else is refused rather than
/// decided with a dispatcher policies would misread.
fn dispatcher(state: &GovernedState, dispatcher: &str) -> Result<Principal> {
    match principal(state, dispatcher)? {
        human @ Principal::Human(_) => Ok(human),
        other => Err(crate::DecideError::invalid(format!(
            "the dispatcher {other} is not a human: only a person dispatches an agent"
        ))),
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
