//! Who may authorize a change at its tier: how many humans, and for each part of the change
//! that keeps it from an automated route, which of its owners.
//!
//! Eligibility is per requirement, never the union of everyone the change touches: an agent
//! that adds a one-line docs edit to a payments change must not make the docs owners able to
//! authorize the payments part. Each touched node that by itself needs people (high or
//! critical, a data store, a never-automate surface) is a requirement its own owners must
//! satisfy; governance files and unmapped files are requirements of their CODEOWNERS owners.
//! The distinct humans a tier needs are counted among the people who can satisfy some
//! requirement. Only the requirement; recording verdicts and tallying them against a head is
//! countersign-lifecycle's.

use std::collections::BTreeSet;

use countersign_graph::{Criticality, EntityRef, Impact, Kind, Surface};

use crate::principal::Principal;
use crate::tier::Tier;

/// An owning group and its members, resolved from the graph by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerGroup {
    pub owner: EntityRef,
    pub members: Vec<EntityRef>,
}

/// One part of a change that its own owners must approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// What must be approved: a node (`component:default/payments-api`), `governance files`
    /// or `unmapped files`, or `the change` when no single part needs people by itself.
    pub subject: String,
    /// Why it needs its owners, e.g. `criticality critical`, `surface payments`.
    pub reasons: Vec<String>,
    /// Its owners (groups and users), sorted.
    pub owners: Vec<EntityRef>,
    /// The people who can satisfy it: users among the owners, never the author. Sorted.
    pub eligible: Vec<EntityRef>,
    /// How many of them must approve.
    pub min: u32,
}

/// What authorization the decided tier needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequirement {
    /// Distinct humans who must approve: 0, 1 (single_approver) or 2 (change_control).
    pub required: u32,
    /// Each must be satisfied by its own eligible people; empty for an automated tier.
    pub requirements: Vec<Requirement>,
    /// Everyone who may approve: the union of the requirements' eligible people (for an
    /// automated tier, the owners of what the change touches, who may still reject it).
    /// Never the author. Sorted.
    pub eligible: Vec<EntityRef>,
    /// Who is alerted when the change proceeds (notify_and_proceed): the owners. Sorted.
    pub notify: Vec<EntityRef>,
    /// How many more eligible humans are needed than exist (overall, or for the requirement
    /// that lacks the most); 0 when enough do.
    pub shortfall: u32,
}

/// How approvals are required beyond the tier's count, from the repository's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalRules {
    /// For change_control, how many owners of each node that needs people must approve: 1
    /// (the default: one owner of each, two distinct humans in all) or 2 (two from the owning
    /// team).
    pub change_control_owners: u32,
    /// How many more distinct humans than the tier's count an agent's change needs, when
    /// its tier needs people at all (`[approval] agent_extra`, 0 by default).
    pub agent_extra: u32,
}

impl Default for ApprovalRules {
    fn default() -> Self {
        ApprovalRules {
            change_control_owners: 1,
            agent_extra: 0,
        }
    }
}

/// The users among `owners`, directly or as members of an owning group, never the author.
fn people(owners: &[EntityRef], pool: &[OwnerGroup], author: &Principal) -> Vec<EntityRef> {
    let mut people: BTreeSet<EntityRef> = BTreeSet::new();
    for owner in owners {
        if owner.kind == Kind::User {
            people.insert(owner.clone());
        }
        for group in pool.iter().filter(|g| &g.owner == owner) {
            // Only users are people; nested groups are the caller's to flatten.
            people.extend(
                group
                    .members
                    .iter()
                    .filter(|m| m.kind == Kind::User)
                    .cloned(),
            );
        }
    }
    // The catalog cannot tell a bot account from a person, so a user whose name is the
    // author's is excluded whatever kind of principal the author is: an author never
    // approves its own change, and an agent registered as a user never approves at all.
    people.retain(|user| !is_author(user, author));
    people.into_iter().collect()
}

/// Why a touched node needs people by itself, whatever else the change touches.
fn reasons_of(
    criticality: Criticality,
    kind: Kind,
    surfaces: &BTreeSet<Surface>,
    never_automate: &BTreeSet<Surface>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if criticality >= Criticality::High {
        reasons.push(format!("criticality {}", criticality.as_str()));
    }
    if kind == Kind::Resource {
        reasons.push("data store".to_owned());
    }
    for surface in surfaces.intersection(never_automate) {
        reasons.push(format!("surface {}", surface.as_str()));
    }
    reasons
}

pub(crate) fn requirement(
    tier: Tier,
    impact: &Impact,
    author: &Principal,
    pool: &[OwnerGroup],
    never_automate: &BTreeSet<Surface>,
    rules: ApprovalRules,
) -> ApprovalRequirement {
    // An agent's change that needs people at all needs `agent_extra` more of them; an
    // automated tier stays automated (the extra is approvals, not a tier).
    let required = match (tier.required_approvals(), author) {
        (0, _) => 0,
        (n, Principal::Agent(_)) => n.saturating_add(rules.agent_extra),
        (n, _) => n,
    };
    let all_owners: Vec<EntityRef> = impact.owners.clone();
    let notify = if tier == Tier::NotifyAndProceed {
        all_owners.clone()
    } else {
        Vec::new()
    };
    if required == 0 {
        let eligible = people(&all_owners, pool, author);
        return ApprovalRequirement {
            required,
            requirements: Vec::new(),
            eligible,
            notify,
            shortfall: 0,
        };
    }
    let per_node = if tier == Tier::ChangeControl {
        rules.change_control_owners.clamp(1, 2)
    } else {
        1
    };
    let mut requirements = Vec::new();
    for touched in &impact.touched {
        let reasons = reasons_of(
            touched.criticality,
            touched.entity.kind,
            &touched.surfaces,
            never_automate,
        );
        if reasons.is_empty() {
            continue;
        }
        requirements.push(Requirement {
            subject: touched.entity.to_string(),
            reasons,
            owners: touched.owners.clone(),
            eligible: people(&touched.owners, pool, author),
            min: per_node,
        });
    }
    if !impact.governance_paths.is_empty() {
        requirements.push(Requirement {
            subject: "governance files".to_owned(),
            reasons: vec![format!(
                "the rules themselves: {}",
                impact.governance_paths.join(", ")
            )],
            owners: impact.governance_owners.clone(),
            eligible: people(&impact.governance_owners, pool, author),
            min: 1,
        });
    }
    if !impact.unmapped.is_empty() {
        requirements.push(Requirement {
            subject: "unmapped files".to_owned(),
            reasons: vec![format!("no node claims {}", impact.unmapped.join(", "))],
            owners: impact.unmapped_owners.clone(),
            eligible: people(&impact.unmapped_owners, pool, author),
            min: 1,
        });
    }
    if requirements.is_empty() {
        // No single part needs people by itself (the tier comes from what the change
        // reaches, or from its evidence): the owners of what it touches answer for it.
        requirements.push(Requirement {
            subject: "the change".to_owned(),
            reasons: vec![format!("tier {tier}")],
            owners: all_owners.clone(),
            eligible: people(&all_owners, pool, author),
            min: 1,
        });
    }
    let eligible: BTreeSet<EntityRef> = requirements
        .iter()
        .flat_map(|r| r.eligible.iter().cloned())
        .collect();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let shortfall = requirements
        .iter()
        .map(|r| r.min.saturating_sub(count(r.eligible.len())))
        .chain([required.saturating_sub(count(eligible.len()))])
        .max()
        .unwrap_or(0);
    ApprovalRequirement {
        required,
        requirements,
        eligible: eligible.into_iter().collect(),
        notify,
        shortfall,
    }
}

/// Whether a catalog user is the author: the author's name may be written as `name`,
/// `namespace/name` or `user:namespace/name`, compared case-insensitively like refs.
fn is_author(user: &EntityRef, author: &Principal) -> bool {
    let name = author.name().to_lowercase();
    let user_name = user.name.to_lowercase();
    let namespaced = format!("{}/{}", user.namespace.to_lowercase(), user_name);
    name == user_name || name == namespaced || name == format!("user:{namespaced}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[approval] agent_extra`: an agent's change needs that many more humans when its tier
    /// needs any; a person's change and an automated tier are unchanged.
    #[test]
    fn agent_extra_adds_humans_to_an_agents_change_only() {
        let impact = Impact::default();
        let rules = ApprovalRules {
            agent_extra: 1,
            ..ApprovalRules::default()
        };
        let none = BTreeSet::new();
        let required = |tier: Tier, author: &str, rules: ApprovalRules| {
            let author: Principal = author.parse().unwrap();
            requirement(tier, &impact, &author, &[], &none, rules).required
        };
        assert_eq!(required(Tier::ChangeControl, "agent:fixbot", rules), 3);
        assert_eq!(required(Tier::SingleApprover, "agent:fixbot", rules), 2);
        assert_eq!(required(Tier::NotifyAndProceed, "agent:fixbot", rules), 0);
        assert_eq!(required(Tier::AutoMerge, "agent:fixbot", rules), 0);
        assert_eq!(required(Tier::ChangeControl, "human:alice", rules), 2);
        assert_eq!(required(Tier::SingleApprover, "human:alice", rules), 1);
        let default = ApprovalRules::default();
        assert_eq!(required(Tier::ChangeControl, "agent:fixbot", default), 2);
    }
}
