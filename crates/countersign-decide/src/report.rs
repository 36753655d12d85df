//! The wire format of `countersign evaluate --format json`: explicit, versioned types.
//!
//! Domain types (`Impact`, `Decision`, `ValidationPlan`) do not serialize themselves; this
//! module converts them into the documented shape, and `countersign schema` prints the JSON
//! schema generated from these same types (docs/evaluate.schema.json is checked against it).

use std::collections::BTreeMap;

use countersign_evidence::{PlanReason, ValidationPlan};
use countersign_graph::{EntityRef, Impact};
use countersign_policy::{Decision, ReasonSource, Tier};
use countersign_repo::{ChangeKind, ChangedPath};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// The `schema` field of every evaluation report; bumped on any incompatible change.
pub const EVALUATE_SCHEMA: &str = "https://countersign.dev/schema/evaluate/v1";

/// The decision for one change, with everything needed to understand it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EvaluationReport {
    /// Always `https://countersign.dev/schema/evaluate/v1`.
    pub schema: String,
    /// The derived approval tier.
    pub tier: TierName,
    /// True for `auto_merge` and `notify_and_proceed`: no human authorizes.
    pub automated: bool,
    /// The proposing principal, `human:NAME`, `agent:NAME`, ...
    pub author: String,
    /// A tier the author claimed: recorded, never used.
    pub declared_tier: Option<DeclaredTierReport>,
    pub change: ChangeReport,
    /// Why: permits of the chosen tier, what ruled out each less restrictive tier,
    /// invariants that raised the tier, notes.
    pub reasons: Vec<ReasonReport>,
    pub impact: ImpactReport,
    pub approvers: ApproversReport,
    pub validation_plan: PlanReport,
    /// sha256 of the canonical form of the graph the decision used.
    pub graph_version: String,
    /// sha256 of the policy pack the decision used.
    pub policy_version: String,
    /// Every fact the policies saw (the Cedar context), by name.
    pub facts: BTreeMap<String, Value>,
    /// What signed evidence said; present only when `--evidence` was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceReport>,
    /// Present when the change edits the policy directory: the verification of the head's
    /// policy and its diff against the base's, for approvers. Display only: the decision
    /// above used the base's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_change: Option<crate::policy_change::PolicyChangeReport>,
    /// Present when the change edits a workspace manifest (`Cargo.toml`, `package.json`,
    /// `pnpm-workspace.yaml`) and the head's graph has other edges than the base's. Display
    /// only: manifests are code, not rules, so the decision used the base's graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_change: Option<GraphChangeReport>,
    /// `countersign.dev/paths` globs of the judging catalog that match no tracked file
    /// (`graph check` fails on them): the files they were meant for are judged as unmapped
    /// or as someone else's. Absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_globs: Vec<DeadGlobReport>,
    /// What would lower the tier (`evaluate --what-if`): the smallest differences that route
    /// the change to a more automated tier, each re-decided. Absent unless asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what_if: Option<WhatIfReport>,
}

/// What would lower the tier, and how far the search went (see docs/evaluate.md, "What
/// would lower the tier").
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct WhatIfReport {
    /// The change's own tier.
    pub tier: TierName,
    /// One entry per tier more automated than `tier`, most automated first; empty when the
    /// change is already `auto_merge`.
    pub targets: Vec<WhatIfTargetReport>,
    pub search: WhatIfSearchReport,
}

/// The ways to one more automated tier.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct WhatIfTargetReport {
    pub tier: TierName,
    /// Leaving changed files out of the change.
    pub removals: WhatIfFoundReport,
    /// Passing evidence for planned suites.
    pub evidence: WhatIfFoundReport,
}

/// The outcome of searching one kind of difference for one tier.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct WhatIfFoundReport {
    /// `found`: `suggestions` reach the tier. `nothing`: every candidate of this kind was
    /// re-decided and none reaches it. `unknown`: the search did not try every candidate
    /// (size bound, budget or deadline) and found none.
    pub outcome: WhatIfOutcome,
    pub suggestions: Vec<WhatIfSuggestionReport>,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhatIfOutcome {
    Found,
    Nothing,
    Unknown,
}

/// One difference and the tier a re-decision of the modified change gives.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct WhatIfSuggestionReport {
    /// Changed files left out (a rename is named by its new path and moves both paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub without: Vec<String>,
    /// What the removed files are, when they are every file of one group: an entity ref,
    /// `unmapped` or `governance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Planned suites assumed to pass at the head.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passing_suites: Vec<String>,
    /// The tier the modified change takes: the target or a more automated one.
    pub tier: TierName,
    /// Every smaller difference of this kind was re-decided and none reached the target.
    pub minimal: bool,
}

/// How the search ran.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct WhatIfSearchReport {
    /// Re-decisions made.
    pub decisions: u32,
    /// Re-decisions allowed.
    pub budget: u32,
    /// The largest set of files (or suites) tried exhaustively.
    pub max_removed: usize,
    /// `decisions` or `deadline` when the search stopped before trying every candidate it
    /// meant to; absent when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<String>,
}

/// The wire form of a what-if search.
pub fn what_if_report(what_if: &crate::what_if::WhatIf) -> WhatIfReport {
    use crate::what_if::{Difference, Found, Group};
    let found = |found: &Found| match found {
        Found::Some(suggestions) => WhatIfFoundReport {
            outcome: WhatIfOutcome::Found,
            suggestions: suggestions
                .iter()
                .map(|s| {
                    let (without, group, passing_suites) = match &s.difference {
                        Difference::Remove { paths, group } => (
                            paths.clone(),
                            group.as_ref().map(|g| match g {
                                Group::Node(entity) => entity.to_string(),
                                Group::Unmapped => "unmapped".to_owned(),
                                Group::Governance => "governance".to_owned(),
                            }),
                            Vec::new(),
                        ),
                        Difference::AssumePassing { suites } => (Vec::new(), None, suites.clone()),
                    };
                    WhatIfSuggestionReport {
                        without,
                        group,
                        passing_suites,
                        tier: s.tier.into(),
                        minimal: s.minimal,
                    }
                })
                .collect(),
        },
        Found::Nothing => WhatIfFoundReport {
            outcome: WhatIfOutcome::Nothing,
            suggestions: Vec::new(),
        },
        Found::Unknown => WhatIfFoundReport {
            outcome: WhatIfOutcome::Unknown,
            suggestions: Vec::new(),
        },
    };
    WhatIfReport {
        tier: what_if.tier.into(),
        targets: what_if
            .targets
            .iter()
            .map(|t| WhatIfTargetReport {
                tier: t.tier.into(),
                removals: found(&t.removals),
                evidence: found(&t.evidence),
            })
            .collect(),
        search: WhatIfSearchReport {
            decisions: what_if.search.decisions,
            budget: what_if.search.budget,
            max_removed: what_if.search.max_removed,
            cut: what_if.search.cut.map(|c| c.as_str().to_owned()),
        },
    }
}

/// A `countersign.dev/paths` glob that matches no tracked file.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct DeadGlobReport {
    /// The entity whose annotation it is, `kind:namespace/name`.
    pub entity: String,
    /// The descriptor file and the line of the entity's document.
    pub file: String,
    pub line: u32,
    /// The glob as resolved against the descriptor's directory.
    pub glob: String,
    /// The root-anchored pattern that would match files, e.g. `/services/payments/**`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did_you_mean: Option<String>,
}

impl From<&countersign_graph::check::DeadGlob> for DeadGlobReport {
    fn from(dead: &countersign_graph::check::DeadGlob) -> Self {
        DeadGlobReport {
            entity: dead.entity.to_string(),
            file: dead.location.file.clone(),
            line: dead.location.line,
            glob: dead.glob.clone(),
            did_you_mean: dead.did_you_mean.clone(),
        }
    }
}

/// How the graph's edges would change once the change lands.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct GraphChangeReport {
    /// Edges the head's graph has and the base's does not: `from kind to`, e.g.
    /// `component:default/a depends-on component:default/b`.
    pub edges_added: Vec<String>,
    /// Edges the base's graph has and the head's does not.
    pub edges_removed: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TierName {
    AutoMerge,
    NotifyAndProceed,
    SingleApprover,
    ChangeControl,
}

impl From<Tier> for TierName {
    fn from(tier: Tier) -> Self {
        match tier {
            Tier::AutoMerge => TierName::AutoMerge,
            Tier::NotifyAndProceed => TierName::NotifyAndProceed,
            Tier::SingleApprover => TierName::SingleApprover,
            Tier::ChangeControl => TierName::ChangeControl,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeclaredTierReport {
    pub value: String,
    /// Why the claim was not used.
    pub ignored: String,
}

/// What changed: the revisions (when the diff came from git) and the paths.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangeReport {
    /// Full commit id of the base, whose governed state judged the change.
    pub base: Option<String>,
    pub head: Option<String>,
    pub paths: Vec<ChangedPathReport>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangedPathReport {
    pub path: String,
    /// added, modified, deleted, renamed, or listed (paths given with `--files`).
    pub status: String,
    /// For a rename, the old path (which also counts as changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReasonReport {
    /// `policy`, `invariant`, `floor`, `default_deny` or `evidence`.
    pub source: String,
    /// The policy `@id` or the invariant's name, when the source has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `permit`, `forbid`, `raise` or `note`.
    pub effect: String,
    /// The tier the reason is about.
    pub tier: Option<TierName>,
    /// Plain-language reason.
    pub message: String,
    /// The facts the reason reads, with this change's values.
    pub facts: BTreeMap<String, Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ImpactReport {
    pub changed_files: usize,
    pub touched: Vec<TouchedReport>,
    pub blast_radius: Vec<ReachedReport>,
    pub touched_count: usize,
    pub reached_count: usize,
    /// low, moderate, high or critical; absent when nothing maps.
    pub max_criticality_touched: Option<String>,
    pub max_criticality_reached: Option<String>,
    pub critical_reached: Vec<String>,
    pub revenue_path_reached: Vec<String>,
    pub surfaces_touched: Vec<String>,
    pub surfaces_reached: Vec<String>,
    pub data_stores_touched: Vec<String>,
    /// Owning groups and users, as entity refs.
    pub owners: Vec<String>,
    pub unmapped: Vec<String>,
    pub governance_paths: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TouchedReport {
    /// Entity ref, `kind:namespace/name`.
    pub node: String,
    pub criticality: String,
    pub paths: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReachedReport {
    pub node: String,
    pub criticality: String,
    pub distance: u32,
    /// From a touched node to this one. A chain longer than 8 nodes keeps its first 4 and
    /// last 4 here, and `via_omitted` counts the nodes left out between them.
    pub via: Vec<String>,
    /// Nodes of the chain left out after the fourth entry of `via` (absent when none are).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub via_omitted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ApproversReport {
    /// Distinct humans who must approve (0, 1 or 2).
    pub required: u32,
    /// Each part of the change that its own owners must approve, with who can: an approval
    /// counts towards a requirement only from its own eligible people.
    pub requirements: Vec<RequirementReport>,
    /// Humans who may approve, as principals (`human:judy`; someone able to satisfy a
    /// requirement; for an automated tier, the owners of what it touches): never the author,
    /// never an agent.
    pub eligible: Vec<String>,
    /// Who is alerted when an automated change proceeds.
    pub notify: Vec<String>,
    /// How many more eligible humans are needed than the graph names (once the change's
    /// authors are taken out).
    pub shortfall: u32,
    /// Who may not approve besides the author: everyone the change's commits name as author
    /// or committer, and the person who dispatched the proposing agent. Absent when there is
    /// none (always for a list of paths, which has no commits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    /// Approvers the owners would name who may not approve this change because they are
    /// among `authors` (the server's `approver_pool.excluded_as_authors`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_as_authors: Vec<String>,
    /// What the commits say about their authors and the approvers they took out, as the
    /// server's decision explains it (`authorship.explanation`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorship: Vec<String>,
}

impl ApproversReport {
    /// Takes the change's `authors` out of who may approve, as `pool` (the lifecycle's
    /// approver pool of the decision) says: `eligible` and each requirement's people become
    /// those the server would let approve, and `shortfall` counts what the people left lack.
    pub fn exclude_authors(
        &mut self,
        authors: Vec<String>,
        pool: &countersign_lifecycle::Pool,
        explanation: Vec<String>,
    ) {
        let may = |person: &String| pool.eligible.contains(person);
        for requirement in &mut self.requirements {
            requirement.eligible.retain(may);
        }
        self.eligible.retain(may);
        let lacks = pool.unmet.iter().map(|(_, more)| *more).max().unwrap_or(0);
        self.shortfall = self.shortfall.max(lacks);
        self.authors = authors;
        self.excluded_as_authors = pool.excluded.clone();
        self.authorship = explanation;
    }
}

/// One part of a change that its own owners must approve.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RequirementReport {
    /// A node ref, `governance files`, `unmapped files` or `the change`.
    pub subject: String,
    /// Why it needs its owners (`criticality critical`, `surface payments`, ...).
    pub reasons: Vec<String>,
    pub owners: Vec<String>,
    /// Who can satisfy it, as principals (`human:judy`).
    pub eligible: Vec<String>,
    /// How many of them must approve.
    pub min: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PlanReport {
    /// How far through dependents the plan reaches.
    pub depth: u32,
    pub suites: Vec<PlannedSuiteReport>,
    /// Touched nodes that no suite exercises.
    pub uncovered: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PlannedSuiteReport {
    pub suite: String,
    /// Why the suite is planned, one sentence per node it exercises.
    pub why: Vec<String>,
    /// The suite's own defining files (tests, fixtures, its script) that the change adds,
    /// edits, deletes or renames: the suite is *self-validated*, and its evidence cannot
    /// earn an automated tier unless its base version passed against the head. Absent when
    /// the change leaves them alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_validated_by: Vec<String>,
}

/// The inputs a report is built from.
pub struct ReportInput<'a> {
    pub decision: &'a Decision,
    pub impact: &'a Impact,
    pub plan: &'a ValidationPlan,
    pub changes: &'a [ChangedPath],
    pub base: Option<String>,
    pub head: Option<String>,
    pub graph_version: String,
    pub evidence: Option<EvidenceReport>,
    /// Self-validated suites with the defining files the change edits.
    pub self_validated: &'a BTreeMap<String, Vec<String>>,
}

pub fn build(input: ReportInput<'_>) -> EvaluationReport {
    let ReportInput {
        decision,
        impact,
        plan,
        changes,
        base,
        head,
        graph_version,
        evidence,
        self_validated,
    } = input;
    EvaluationReport {
        schema: EVALUATE_SCHEMA.to_string(),
        tier: decision.tier.into(),
        automated: decision.tier.is_automated(),
        author: decision.author.to_string(),
        declared_tier: decision.declared_tier.as_ref().map(|d| DeclaredTierReport {
            value: d.value.clone(),
            ignored: d.ignored.clone(),
        }),
        change: ChangeReport {
            base,
            head,
            paths: changes.iter().map(changed_path).collect(),
        },
        reasons: decision
            .reasons
            .iter()
            .map(|r| {
                let (source, id) = match &r.source {
                    ReasonSource::Policy { id } => ("policy", Some(id.clone())),
                    ReasonSource::Invariant { name } => ("invariant", Some(name.clone())),
                    ReasonSource::Floor => ("floor", None),
                    ReasonSource::DefaultDeny => ("default_deny", None),
                    ReasonSource::Evidence => ("evidence", None),
                };
                ReasonReport {
                    source: source.to_string(),
                    id,
                    effect: r.effect.as_str().to_string(),
                    tier: r.tier.map(TierName::from),
                    message: r.message.clone(),
                    facts: r.facts.clone(),
                }
            })
            .collect(),
        impact: impact_report(impact),
        approvers: ApproversReport {
            required: decision.approvals.required,
            requirements: decision
                .approvals
                .requirements
                .iter()
                .map(|r| RequirementReport {
                    subject: r.subject.clone(),
                    reasons: r.reasons.clone(),
                    owners: refs(&r.owners),
                    eligible: principals(&r.eligible),
                    min: r.min,
                })
                .collect(),
            eligible: principals(&decision.approvals.eligible),
            notify: refs(&decision.approvals.notify),
            shortfall: decision.approvals.shortfall,
            authors: Vec::new(),
            excluded_as_authors: Vec::new(),
            authorship: Vec::new(),
        },
        validation_plan: plan_report(plan, self_validated),
        graph_version,
        policy_version: decision.policy_version.clone(),
        facts: decision
            .facts
            .to_cedar_context()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        evidence,
        policy_change: None,
        graph_change: None,
        dead_globs: Vec::new(),
        what_if: None,
    }
}

fn changed_path(change: &ChangedPath) -> ChangedPathReport {
    ChangedPathReport {
        path: change.path.clone(),
        status: match change.kind {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Renamed { .. } => "renamed",
        }
        .to_string(),
        from: match &change.kind {
            ChangeKind::Renamed { from } => Some(from.clone()),
            _ => None,
        },
    }
}

pub fn impact_report(impact: &Impact) -> ImpactReport {
    ImpactReport {
        changed_files: impact.changed_paths.len(),
        touched: impact
            .touched
            .iter()
            .map(|t| TouchedReport {
                node: t.entity.to_text(),
                criticality: t.criticality.as_str().to_string(),
                paths: t.paths.clone(),
            })
            .collect(),
        blast_radius: impact
            .blast_radius
            .iter()
            .zip(impact.chains(countersign_graph::impact::CHAIN_SHOWN))
            .map(|(r, chain)| ReachedReport {
                node: r.entity.to_text(),
                criticality: r.criticality.as_str().to_string(),
                distance: r.distance,
                via: chain.shown().map(EntityRef::to_text).collect(),
                via_omitted: chain.omitted,
            })
            .collect(),
        touched_count: impact.touched.len(),
        reached_count: impact.blast_radius.len(),
        max_criticality_touched: impact
            .max_criticality_touched
            .map(|c| c.as_str().to_string()),
        max_criticality_reached: impact
            .max_criticality_reached
            .map(|c| c.as_str().to_string()),
        critical_reached: refs(&impact.critical_reached),
        revenue_path_reached: refs(&impact.revenue_path_reached),
        surfaces_touched: impact
            .surfaces_touched
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        surfaces_reached: impact
            .surfaces_reached
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        data_stores_touched: refs(&impact.data_stores_touched),
        owners: refs(&impact.owners),
        unmapped: impact.unmapped.clone(),
        governance_paths: impact.governance_paths.clone(),
    }
}

fn plan_report(
    plan: &ValidationPlan,
    self_validated: &BTreeMap<String, Vec<String>>,
) -> PlanReport {
    PlanReport {
        depth: plan.depth,
        suites: plan
            .suites
            .iter()
            .map(|s| PlannedSuiteReport {
                suite: s.suite.clone(),
                why: s.reasons.iter().map(plan_reason).collect(),
                self_validated_by: self_validated.get(&s.suite).cloned().unwrap_or_default(),
            })
            .collect(),
        uncovered: refs(&plan.uncovered),
    }
}

fn plan_reason(reason: &PlanReason) -> String {
    match reason {
        PlanReason::Touched { node } => format!("exercises {node}, which the change touches"),
        PlanReason::Dependent {
            node,
            distance,
            via,
        } => format!(
            "exercises {node}, a dependent {distance} hop(s) away ({})",
            chain_text(via, EntityRef::to_text)
        ),
        PlanReason::DevDependent { node, of } => format!(
            "exercises {node}, whose tests or tooling use {of}, which the change touches (a dev-dependency)"
        ),
    }
}

/// A chain as `a -> b -> c`, with the gap of a bounded chain shown as `… (N more)`.
pub fn chain_text(
    chain: &countersign_graph::impact::Chain,
    name: impl Fn(&EntityRef) -> String,
) -> String {
    let mut parts: Vec<String> = chain.head.iter().map(&name).collect();
    if chain.omitted > 0 {
        parts.push(format!("… ({} more)", chain.omitted));
    }
    parts.extend(chain.tail.iter().map(&name));
    parts.join(" -> ")
}

fn refs(entities: &[EntityRef]) -> Vec<String> {
    entities.iter().map(EntityRef::to_text).collect()
}

/// People who may approve, as principals (`human:judy`), as the server shows them.
fn principals(users: &[EntityRef]) -> Vec<String> {
    users.iter().map(crate::people::principal_of).collect()
}

/// Signed evidence weighed for a change: which envelopes counted, and what they say.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EvidenceReport {
    /// Envelopes that count, bound to the head or to the base commit.
    pub accepted: Vec<AcceptedEvidenceReport>,
    /// Envelopes that do not count, each with its reason.
    pub refused: Vec<RefusedEvidenceReport>,
    pub coverage: CoverageReport,
    /// Every planned suite, then suites attested but not planned.
    pub suites: Vec<SuiteReport>,
    /// Planned suites that failed at the head.
    pub failed_suites: Vec<String>,
    /// Tests that pass in the base evidence and fail, or are missing, in the head evidence.
    pub regressions: Vec<RegressionReport>,
    /// Tests that fail in the base evidence and pass in the head evidence.
    pub newly_passing: Vec<NewlyPassingReport>,
    /// Suites whose base version (the base commit's suite files, run against the head)
    /// passed: each confirms a self-validated suite.
    pub base_suite_passed: Vec<String>,
    pub vulnerabilities: Vec<VulnerabilityReport>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AcceptedEvidenceReport {
    pub file: String,
    /// `head` or `base`: the commit the envelope is about.
    pub binds_to: String,
    pub runner: String,
    pub key_id: String,
    pub suite: String,
    pub predicate_type: String,
    /// What the predicate says, in one line.
    pub summary: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RefusedEvidenceReport {
    pub file: String,
    /// too_large, malformed, wrong_payload_type, unknown_key, bad_signature,
    /// other_repository, other_commit, suite_not_allowed, unknown_predicate, unknown_product
    /// or vex_not_authorized.
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CoverageReport {
    pub planned: u32,
    /// Planned suites with passing head evidence.
    pub passed: u32,
    /// passed * 100 / planned, rounded down; 100 when nothing is planned.
    pub percent: u8,
    /// Per node: the suites planned because of it.
    pub nodes: Vec<NodeCoverageReport>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeCoverageReport {
    pub node: String,
    pub planned: Vec<String>,
    pub passed: Vec<String>,
    pub percent: u8,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SuiteReport {
    pub suite: String,
    pub planned: bool,
    /// passed, failed, no_tests (test-results arrived and none lists a test that ran: not
    /// a pass) or missing.
    pub status: String,
    /// Why the suite has this status.
    pub explanation: String,
    pub runners: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RegressionReport {
    pub suite: String,
    pub test: String,
    /// `failing`: it ran and failed; `missing`: the head's run of the suite does not list
    /// it (deleted, renamed or skipped).
    pub kind: String,
}

/// A test that fails in the base evidence and passes in the head evidence: a fix, or a
/// test weakened to pass. Shown for reviewers; it does not count against the change.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NewlyPassingReport {
    pub suite: String,
    pub test: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VulnerabilityReport {
    pub id: String,
    /// The scanner's first severity, `score (method)`.
    pub severity: Option<String>,
    /// The node the finding is in; absent when it maps to no node.
    pub node: Option<String>,
    /// The scanner's `countersign.dev/package` annotation.
    pub package: Option<String>,
    /// Where the scanner says the finding is (`uri:line`), when it says.
    pub location: Option<String>,
    /// What tells the finding from others of its id (the `countersign.dev/fingerprint`
    /// annotation, else the location): instances of one rule in different places are
    /// different findings.
    pub fingerprint: Option<String>,
    pub suite: String,
    pub runner: String,
    /// reachable, unreachable, not_affected or unknown_location.
    pub reachability: String,
    /// For a reachable finding: the vulnerable node first, the internet-exposed node last.
    pub path: Vec<String>,
    /// For not_affected: the VEX justification.
    pub justification: Option<String>,
    /// The same finding (id and fingerprint, on the same node) is in the base commit's
    /// evidence of the same suite: reported, not counted against the change.
    pub pre_existing: bool,
    /// Counted in `reachable_vulnerabilities`: introduced by the change and reachable.
    pub blocking: bool,
    /// Plain-language reachability, with the path.
    pub explanation: String,
}

pub fn evidence_report(
    verified: &crate::evidence::VerifiedFiles,
    assessment: &countersign_evidence::Assessment,
) -> EvidenceReport {
    use countersign_evidence::Reachability;
    EvidenceReport {
        accepted: verified
            .accepted
            .iter()
            .map(|a| AcceptedEvidenceReport {
                file: a.file.clone(),
                binds_to: a.binding.as_str().to_string(),
                runner: a.evidence.runner.clone(),
                key_id: a.evidence.key_id.clone(),
                suite: a.evidence.suite.clone(),
                predicate_type: a.evidence.predicate.predicate_type().to_string(),
                summary: crate::evidence::summary(&a.evidence.predicate),
            })
            .collect(),
        refused: verified
            .refused
            .iter()
            .map(|r| RefusedEvidenceReport {
                file: r.file.clone(),
                reason: r.reason.clone(),
                message: r.message.clone(),
            })
            .collect(),
        coverage: CoverageReport {
            planned: assessment.coverage.planned,
            passed: assessment.coverage.passed,
            percent: assessment.coverage.percent,
            nodes: assessment
                .coverage
                .nodes
                .iter()
                .map(|n| NodeCoverageReport {
                    node: n.node.to_string(),
                    planned: n.planned.clone(),
                    passed: n.passed.clone(),
                    percent: n.percent,
                })
                .collect(),
        },
        suites: assessment
            .suites
            .iter()
            .map(|s| SuiteReport {
                suite: s.suite.clone(),
                planned: s.planned,
                status: s.status.as_str().to_string(),
                explanation: s.status.explanation().to_string(),
                runners: s.runners.clone(),
            })
            .collect(),
        failed_suites: assessment.failed_suites.clone(),
        regressions: assessment
            .regressions
            .iter()
            .map(|r| RegressionReport {
                suite: r.suite.clone(),
                test: r.test.clone(),
                kind: r.kind.as_str().to_owned(),
            })
            .collect(),
        newly_passing: assessment
            .newly_passing
            .iter()
            .map(|n| NewlyPassingReport {
                suite: n.suite.clone(),
                test: n.test.clone(),
            })
            .collect(),
        base_suite_passed: assessment.base_suite_passed.clone(),
        vulnerabilities: assessment
            .vulnerabilities
            .iter()
            .map(|v| {
                let node = v.node.as_ref().map(ToString::to_string);
                let (path, justification, mut explanation) = match &v.reachability {
                    Reachability::Reachable { path } => {
                        let names: Vec<String> = path.iter().map(ToString::to_string).collect();
                        let explanation = match path.last() {
                            Some(exposed) if path.len() > 1 => format!(
                                "reachable: internet-exposed {exposed} depends on it ({})",
                                names.join(" -> ")
                            ),
                            _ => "reachable: the node itself is internet-exposed".to_string(),
                        };
                        (names, None, explanation)
                    }
                    Reachability::Unreachable => (
                        Vec::new(),
                        None,
                        "unreachable: no internet-exposed node depends on it".to_string(),
                    ),
                    Reachability::NotAffected {
                        justification,
                        impact_statement,
                    } => (
                        Vec::new(),
                        Some(justification.clone()),
                        match impact_statement {
                            Some(i) => format!("not affected (VEX: {justification}; {i})"),
                            None => format!("not affected (VEX: {justification})"),
                        },
                    ),
                    Reachability::UnknownLocation => (
                        Vec::new(),
                        None,
                        "location unknown: no node carries it, so it counts as reachable"
                            .to_string(),
                    ),
                };
                if v.pre_existing {
                    explanation.push_str(
                        "; pre-existing (the same finding is in the base evidence of this suite): reported, not blocking",
                    );
                }
                VulnerabilityReport {
                    id: v.id.clone(),
                    severity: v.severity.clone(),
                    node,
                    package: v.package.clone(),
                    location: v.location.clone(),
                    fingerprint: v.fingerprint.clone(),
                    suite: v.suite.clone(),
                    runner: v.runner.clone(),
                    reachability: v.reachability.as_str().to_string(),
                    path,
                    justification,
                    pre_existing: v.pre_existing,
                    blocking: v.blocks(),
                    explanation,
                }
            })
            .collect(),
    }
}

/// The JSON schema of [`EvaluationReport`], generated from the types above.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(EvaluationReport);
    // A schema of plain derive types always serializes; an error here would be a bug in
    // serde_json, and printing nothing would hide it, so say so instead.
    serde_json::to_string_pretty(&schema)
        .unwrap_or_else(|error| format!("{{\"error\": \"cannot render the schema: {error}\"}}"))
}
