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
    /// From a touched node to this one.
    pub via: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ApproversReport {
    /// Distinct humans who must approve (0, 1 or 2).
    pub required: u32,
    /// Humans who may approve: owners of touched nodes, never the author, never an agent.
    pub eligible: Vec<String>,
    /// Who is alerted when an automated change proceeds.
    pub notify: Vec<String>,
    /// How many more eligible humans are needed than the graph names.
    pub shortfall: u32,
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
            eligible: refs(&decision.approvals.eligible),
            notify: refs(&decision.approvals.notify),
            shortfall: decision.approvals.shortfall,
        },
        validation_plan: plan_report(plan),
        graph_version,
        policy_version: decision.policy_version.clone(),
        facts: decision.facts.clone(),
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
                node: t.entity.to_string(),
                criticality: t.criticality.as_str().to_string(),
                paths: t.paths.clone(),
            })
            .collect(),
        blast_radius: impact
            .blast_radius
            .iter()
            .map(|r| ReachedReport {
                node: r.entity.to_string(),
                criticality: r.criticality.as_str().to_string(),
                distance: r.distance,
                via: refs(&r.via),
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

fn plan_report(plan: &ValidationPlan) -> PlanReport {
    PlanReport {
        depth: plan.depth,
        suites: plan
            .suites
            .iter()
            .map(|s| PlannedSuiteReport {
                suite: s.suite.clone(),
                why: s.reasons.iter().map(plan_reason).collect(),
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
            refs(via).join(" -> ")
        ),
    }
}

fn refs(entities: &[EntityRef]) -> Vec<String> {
    entities.iter().map(ToString::to_string).collect()
}

/// The JSON schema of [`EvaluationReport`], generated from the types above.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(EvaluationReport);
    // A schema of plain derive types always serializes; an error here would be a bug in
    // serde_json, and printing nothing would hide it, so say so instead.
    serde_json::to_string_pretty(&schema)
        .unwrap_or_else(|error| format!("{{\"error\": \"cannot render the schema: {error}\"}}"))
}
