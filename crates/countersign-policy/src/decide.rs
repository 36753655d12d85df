//! Deriving a change's tier: Cedar evaluates one request per tier, the least restrictive
//! permitted tier wins with change_control as the floor, then the invariants raise it if
//! they must. The decision carries its own explanation.
//!
//! A decision is a plain function of its inputs (no clock, no I/O), so it can be replayed
//! from an audit record. Rendering it for people is `explain`'s job.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use cedar_policy::{
    AuthorizationError, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityUid,
    Request, RestrictedExpression,
};
use countersign_graph::{Impact, Surface};
use serde_json::Value;

use crate::approval::{ApprovalRequirement, ApprovalRules, OwnerGroup, requirement};
use crate::check::PolicyEffect;
use crate::facts::{EvidenceFacts, Facts, SelfValidation, default_never_automate};
use crate::invariant;
use crate::pack::PolicyPack;
use crate::principal::Principal;
use crate::tier::Tier;

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct DecisionInput<'a> {
    pub impact: &'a Impact,
    pub author: Principal,
    /// A tier the author stated. Recorded in the decision and ignored.
    pub declared_tier: Option<String>,
    /// The configured never-automate list.
    pub never_automate: BTreeSet<Surface>,
    /// Owning groups with their members, for eligible approvers.
    pub approver_pool: Vec<OwnerGroup>,
    /// Accepted evidence; `None` when none was considered.
    pub evidence: Option<EvidenceFacts>,
    /// How many owners each requirement needs (the repository's `[approval]`).
    pub approval_rules: ApprovalRules,
    /// The planned suites the change defines itself, and those the base's version
    /// confirmed (see [`SelfValidation`]).
    pub self_validation: SelfValidation,
    /// The human who dispatched the proposing agent (agent provenance), if anyone did.
    pub dispatched_by: Option<Principal>,
}

impl<'a> DecisionInput<'a> {
    /// An input with the default never-automate list (every surface but `build`), no declared
    /// tier, no approver pool and no evidence.
    pub fn new(impact: &'a Impact, author: Principal) -> DecisionInput<'a> {
        DecisionInput {
            impact,
            author,
            declared_tier: None,
            never_automate: default_never_automate(),
            approver_pool: Vec::new(),
            evidence: None,
            approval_rules: ApprovalRules::default(),
            self_validation: SelfValidation::default(),
            dispatched_by: None,
        }
    }
}

/// Where a reason comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReasonSource {
    /// A Cedar policy, by its `@id`.
    Policy { id: String },
    /// A Rust invariant that no policy can lift.
    Invariant { name: String },
    /// change_control is always available.
    Floor,
    /// No policy permits the tier (Cedar's default deny).
    DefaultDeny,
    /// What evidence was, or was not, considered.
    Evidence,
}

/// What a reason did to a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReasonEffect {
    Permit,
    Forbid,
    /// An invariant moved the tier up past what Cedar permitted.
    Raise,
    /// Information that did not decide anything by itself.
    Note,
}

impl ReasonEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonEffect::Permit => "permit",
            ReasonEffect::Forbid => "forbid",
            ReasonEffect::Raise => "raise",
            ReasonEffect::Note => "note",
        }
    }
}

/// One step of the explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub source: ReasonSource,
    pub effect: ReasonEffect,
    /// The tier the reason is about; `None` for notes about the whole decision.
    pub tier: Option<Tier>,
    /// The policy's `@reason`, or the invariant's or engine's message.
    pub message: String,
    /// The facts the reason's condition reads, with their values for this change.
    pub facts: BTreeMap<String, Value>,
}

/// A tier the author stated, kept for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredTier {
    pub value: String,
    pub ignored: String,
}

/// The derived tier and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub tier: Tier,
    pub author: Principal,
    /// For the chosen tier the permits that allowed it; for each less restrictive tier
    /// what ruled it out; then invariants that raised the tier, the floor, and notes.
    pub reasons: Vec<Reason>,
    pub approvals: ApprovalRequirement,
    pub declared_tier: Option<DeclaredTier>,
    /// Every fact Cedar saw (its context is [`Facts::to_cedar_context`]).
    pub facts: Facts,
    pub policy_version: String,
}

/// Cedar's verdict on one tier.
#[derive(Default)]
struct Verdict {
    allowed: bool,
    /// Determining policies: permits when allowed, forbids when denied.
    determining: Vec<String>,
    /// Policies whose evaluation failed, with the error.
    errors: Vec<(String, String)>,
    /// The request could not even be built.
    engine_error: Option<String>,
}

impl Verdict {
    /// An evaluation error never makes a change more automated: a tier with an erroring
    /// policy is treated as not permitted, whatever Cedar's own verdict.
    fn permits(&self) -> bool {
        self.allowed && self.errors.is_empty() && self.engine_error.is_none()
    }
}

/// Derive the tier of a change.
pub fn decide(pack: &PolicyPack, input: &DecisionInput<'_>) -> Decision {
    let facts = Facts::derive(
        input.impact,
        &input.author,
        &input.never_automate,
        input.evidence.as_ref(),
        &input.self_validation,
        input.dispatched_by.as_ref(),
    );
    let context = facts.to_cedar_context();
    let verdicts = evaluate(pack, &input.author, &context);

    let cedar_tier = least_permitted(&verdicts, Tier::AutoMerge);
    let hits = invariant::check(&facts);
    let minimum = hits
        .iter()
        .map(|hit| hit.minimum)
        .max()
        .unwrap_or(Tier::AutoMerge);
    // An invariant's minimum may itself be forbidden by the pack: take the least
    // restrictive tier at or above it that Cedar permits.
    let tier = least_permitted(&verdicts, minimum);

    let pick = |names: &[&str]| -> BTreeMap<String, Value> {
        names
            .iter()
            .filter_map(|name| context.get(name).map(|v| ((*name).to_owned(), v.clone())))
            .collect()
    };
    let policy_reason = |id: &str, effect: ReasonEffect, tier: Tier| -> Reason {
        let info = pack.policies.get(id);
        Reason {
            source: ReasonSource::Policy { id: id.to_owned() },
            effect,
            tier: Some(tier),
            message: info.map(|i| i.reason.clone()).unwrap_or_default(),
            facts: info
                .map(|i| pick(&i.facts.iter().map(String::as_str).collect::<Vec<_>>()))
                .unwrap_or_default(),
        }
    };

    let mut reasons = Vec::new();
    for t in Tier::ALL.into_iter().filter(|t| *t <= tier) {
        let verdict = &verdicts[t.index()];
        if let Some(error) = &verdict.engine_error {
            reasons.push(Reason {
                source: ReasonSource::DefaultDeny,
                effect: ReasonEffect::Forbid,
                tier: Some(t),
                message: format!("the policy engine could not evaluate this tier: {error}"),
                facts: BTreeMap::new(),
            });
        }
        for (id, error) in &verdict.errors {
            let mut reason = policy_reason(id, ReasonEffect::Note, t);
            reason.message = format!(
                "evaluation error, so {t} is not taken: {error} (policy reason: {})",
                reason.message
            );
            reasons.push(reason);
        }
        if verdict.allowed {
            for id in &verdict.determining {
                reasons.push(policy_reason(id, ReasonEffect::Permit, t));
            }
        } else if !verdict.determining.is_empty() {
            for id in &verdict.determining {
                reasons.push(policy_reason(id, ReasonEffect::Forbid, t));
            }
        } else if verdict.engine_error.is_none() {
            // Show the facts the tier's permits look at, so "no policy permits" says why.
            let mut names: BTreeSet<&str> = BTreeSet::new();
            for info in pack.policies.values() {
                if info.effect == PolicyEffect::Permit && info.tiers.contains(&t) {
                    names.extend(info.facts.iter().map(String::as_str));
                }
            }
            // For change_control the floor below says it all.
            if t != Tier::ChangeControl {
                reasons.push(Reason {
                    source: ReasonSource::DefaultDeny,
                    effect: ReasonEffect::Forbid,
                    tier: Some(t),
                    message: format!("no policy permits {t} for this change"),
                    facts: pick(&names.into_iter().collect::<Vec<_>>()),
                });
            }
        }
    }
    for hit in hits.iter().filter(|hit| hit.minimum > cedar_tier) {
        reasons.push(Reason {
            source: ReasonSource::Invariant {
                name: hit.name.to_owned(),
            },
            effect: ReasonEffect::Raise,
            tier: Some(hit.minimum),
            message: hit.message.to_owned(),
            facts: pick(hit.facts),
        });
    }
    if tier == Tier::ChangeControl && !verdicts[Tier::ChangeControl.index()].permits() {
        reasons.push(Reason {
            source: ReasonSource::Floor,
            effect: ReasonEffect::Permit,
            tier: Some(Tier::ChangeControl),
            message:
                "change_control is the floor: every change may take it, whatever the policies say."
                    .to_owned(),
            facts: BTreeMap::new(),
        });
    }
    if input.evidence.is_none() {
        reasons.push(Reason {
            source: ReasonSource::Evidence,
            effect: ReasonEffect::Note,
            tier: None,
            message: "No evidence considered: rules guarded by evidence_considered (coverage) did not apply, and the evidence counts are 0 because nothing was observed, not because everything passed."
                .to_owned(),
            facts: pick(&["evidence_considered"]),
        });
    }

    Decision {
        tier,
        author: input.author.clone(),
        reasons,
        approvals: requirement(
            tier,
            input.impact,
            &input.author,
            &input.approver_pool,
            &input.never_automate,
            input.approval_rules,
        ),
        declared_tier: input.declared_tier.as_ref().map(|value| DeclaredTier {
            value: value.clone(),
            ignored: "recorded and ignored: the tier is derived from the change, never declared"
                .to_owned(),
        }),
        facts,
        policy_version: pack.version().to_owned(),
    }
}

/// The least restrictive tier at or above `from` that Cedar permits, else the floor.
fn least_permitted(verdicts: &[Verdict; 4], from: Tier) -> Tier {
    Tier::ALL
        .into_iter()
        .filter(|t| *t >= from && *t < Tier::ChangeControl)
        .find(|t| verdicts[t.index()].permits())
        .unwrap_or(Tier::ChangeControl)
}

fn evaluate(
    pack: &PolicyPack,
    author: &Principal,
    facts: &BTreeMap<&'static str, Value>,
) -> [Verdict; 4] {
    let prepared = prepare(pack, author, facts);
    Tier::ALL.map(|tier| match &prepared {
        Err(error) => Verdict {
            engine_error: Some(error.clone()),
            ..Verdict::default()
        },
        Ok((principal, entities, context)) => {
            let request = match Request::new(
                principal.clone(),
                pack.actions[tier.index()].clone(),
                pack.resource.clone(),
                context.clone(),
                None,
            ) {
                Ok(request) => request,
                Err(error) => {
                    return Verdict {
                        engine_error: Some(error.to_string()),
                        ..Verdict::default()
                    };
                }
            };
            let response = pack.authorizer.is_authorized(&request, &pack.set, entities);
            let mut determining: Vec<String> = response
                .diagnostics()
                .reason()
                .map(ToString::to_string)
                .collect();
            determining.sort();
            let mut errors: Vec<(String, String)> = response
                .diagnostics()
                .errors()
                .map(|e| match e {
                    AuthorizationError::PolicyEvaluationError(e) => {
                        (e.policy_id().to_string(), e.inner().to_string())
                    }
                })
                .collect();
            errors.sort();
            Verdict {
                allowed: response.decision() == CedarDecision::Allow,
                determining,
                errors,
                engine_error: None,
            }
        }
    })
}

type Prepared = (EntityUid, Entities, Context);

/// The principal, the entities and the context, shared by the four requests.
fn prepare(
    pack: &PolicyPack,
    author: &Principal,
    facts: &BTreeMap<&'static str, Value>,
) -> Result<Prepared, String> {
    let principal = EntityUid::from_type_name_and_id(
        pack.author_type.clone(),
        EntityId::new(author.to_string()),
    );
    let attrs = HashMap::from([(
        "kind".to_owned(),
        RestrictedExpression::new_string(author.kind().to_owned()),
    )]);
    let author_entity =
        Entity::new(principal.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?;
    let change = Entity::new_no_attrs(pack.resource.clone(), HashSet::new());
    let entities =
        Entities::from_entities([author_entity, change], None).map_err(|e| e.to_string())?;
    let context = Context::from_pairs(
        facts
            .iter()
            .map(|(name, value)| Ok(((*name).to_owned(), expression(value)?)))
            .collect::<Result<Vec<_>, String>>()?,
    )
    .map_err(|e| e.to_string())?;
    Ok((principal, entities, context))
}

/// Facts are strings, booleans, integers and sets of strings; nothing else is produced.
fn expression(value: &Value) -> Result<RestrictedExpression, String> {
    Ok(match value {
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Number(n) => RestrictedExpression::new_long(
            n.as_i64()
                .ok_or_else(|| format!("fact {n} is not a 64-bit integer"))?,
        ),
        Value::Array(items) => RestrictedExpression::new_set(
            items
                .iter()
                .map(expression)
                .collect::<Result<Vec<_>, String>>()?,
        ),
        other => return Err(format!("fact {other} has no Cedar form")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One source of truth: the facts' Cedar context is exactly the schema's `Facts`
    /// record (every attribute produced, nothing extra, the right types for every action).
    #[test]
    fn facts_agree_with_the_schema() {
        let pack = PolicyPack::default_pack();
        let schema = crate::schema::schema().unwrap();
        let impact = Impact::default();
        let author = Principal::Agent("fixbot".to_owned());
        for evidence in [None, Some(EvidenceFacts::default())] {
            let facts = Facts::derive(
                &impact,
                &author,
                &default_never_automate(),
                evidence.as_ref(),
                &crate::facts::SelfValidation::default(),
                None,
            );
            let context = facts.to_cedar_context();
            let (principal, _entities, context) = prepare(&pack, &author, &context).unwrap();
            for action in &pack.actions {
                // Validated against the schema: a missing, extra or mistyped attribute fails.
                Request::new(
                    principal.clone(),
                    action.clone(),
                    pack.resource.clone(),
                    context.clone(),
                    Some(&schema),
                )
                .unwrap();
            }
        }
        // The attribute names of the schema's `type Facts = { ... };` record.
        let text = crate::schema::schema_text();
        let record = &text[text.find("type Facts = {").unwrap()..];
        let record = &record[..record.find("};").unwrap()];
        let declared: BTreeSet<&str> = record
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("//"))
            .filter_map(|line| line.split_once(": ").map(|(name, _)| name))
            .collect();
        assert_eq!(declared, Facts::names());
    }
}
