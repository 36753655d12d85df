//! Who may authorize a change at its tier: how many humans, which ones, who is notified.
//!
//! Only the requirement; recording approvals and checking them against a head commit
//! belongs to the approval workflow, not here.

use std::collections::BTreeSet;

use countersign_graph::{EntityRef, Impact, Kind};

use crate::principal::Principal;
use crate::tier::Tier;

/// An owning group and its members, resolved from the graph by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerGroup {
    pub owner: EntityRef,
    pub members: Vec<EntityRef>,
}

/// What authorization the decided tier needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequirement {
    /// Distinct humans who must approve: 0, 1 (single_approver) or 2 (change_control).
    pub required: u32,
    /// Humans who may approve: users owning a touched node directly or through a group,
    /// never the author. Sorted.
    pub eligible: Vec<EntityRef>,
    /// Who is alerted when the change proceeds (notify_and_proceed): the owners. Sorted.
    pub notify: Vec<EntityRef>,
    /// How many more eligible humans are needed than exist; 0 when enough do.
    pub shortfall: u32,
}

pub(crate) fn requirement(
    tier: Tier,
    impact: &Impact,
    author: &Principal,
    pool: &[OwnerGroup],
) -> ApprovalRequirement {
    let owners: BTreeSet<&EntityRef> = impact.owners.iter().collect();
    let mut eligible: BTreeSet<EntityRef> = BTreeSet::new();
    for owner in &owners {
        if owner.kind == Kind::User {
            eligible.insert((*owner).clone());
        }
        for group in pool.iter().filter(|g| &&g.owner == owner) {
            // Only users are people; nested groups are the caller's to flatten.
            eligible.extend(
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
    eligible.retain(|user| !is_author(user, author));

    let required = tier.required_approvals();
    let available = u32::try_from(eligible.len()).unwrap_or(u32::MAX);
    ApprovalRequirement {
        required,
        eligible: eligible.into_iter().collect(),
        notify: if tier == Tier::NotifyAndProceed {
            owners.into_iter().cloned().collect()
        } else {
            Vec::new()
        },
        shortfall: required.saturating_sub(available),
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
