//! Who a change's commits say wrote them, and how far that is believed: each person a
//! commit names (as author or committer) is a `verified` author when the commit is signed
//! with one of the keys their catalog User lists, a `claimed` one otherwise (git metadata
//! anyone can write, or a signature that is not theirs), and `invalid` when the commit
//! carries a signature made with a key of a person it names that does not verify over it,
//! or that is not a signature at all (a red flag: altered after signing).
//!
//! Every author, whatever the status, is still kept from approving (the lifecycle's
//! `eligibility`): an unsigned commit may well be theirs, and an author never approves their
//! own change. What the status changes is what the decision says: [`explain`] names every
//! approver a claim took out of the pool, by which commits and who pushed them, and says
//! when the people left cannot meet the tier, so a proposer cannot silently disqualify the
//! approvers of their choice. Deciding nothing about approvals; verifying signatures is
//! the caller's (the result arrives as [`Signed`]).

use std::collections::{BTreeMap, BTreeSet};

use countersign_lifecycle::{DecidedRecord, Pool, Requirement};
use countersign_policy::Decision;
use serde::{Deserialize, Serialize};

use crate::people::{Directory, principal_of};

/// How far a person's authorship of a change is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A commit naming them is signed with a key their catalog User lists.
    Verified,
    /// Only named: unsigned, or signed by someone else, or they list no key to check.
    Claimed,
    /// A commit naming them is signed with a key of a person it names (or an SSH key it
    /// names itself), and the signature does not verify over it; or it is no signature.
    Invalid,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Claimed => "claimed",
            Status::Invalid => "invalid",
        }
    }
}

/// How a commit names a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Author,
    Committer,
}

/// What a commit's signature proves, as the caller verified it against the keys of the
/// people the commit names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    /// No signature.
    Unsigned,
    /// Verified with `key` (its fingerprint) of `principal`, one of the people named.
    By { principal: String, key: String },
    /// Signed, but not by a usable key of a person named (a key nobody named lists, an
    /// expired or revoked one, a format countersign does not verify, or nobody named lists a
    /// key): the authorship stays claimed, `why` says so.
    Unverifiable { why: String },
    /// Signed with a key of a person named, and the signature does not verify over the
    /// commit; or the signature is malformed: `why`.
    Invalid { why: String },
}

/// One commit of a change as authorship reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitFacts {
    pub id: String,
    /// Trimmed and lower-cased.
    pub author_email: String,
    pub committer_email: String,
    pub signed: Signed,
}

/// One commit that names a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub commit: String,
    /// How the commit names them.
    #[serde(rename = "as")]
    pub roles: Vec<Role>,
    pub status: Status,
    /// The key that verified it (`verified`), or why the signature did not (`invalid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A person the change's commits name, and how far that is believed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// `human:<user>`, `agent:<user>`, or `email:<addr>` for an email no catalog User has.
    pub principal: String,
    /// `invalid` if any commit naming them is, else `verified` if any is, else `claimed`.
    pub status: Status,
    pub commits: Vec<Named>,
}

/// The people `commits` name, mapped through `directory` (strictly, as
/// `people::authors`), each with the commits that name them. Sorted by principal.
pub fn authorship(directory: &Directory, commits: &[CommitFacts]) -> Vec<Author> {
    let principals = |email: &str| -> Vec<String> {
        directory
            .get(email)
            .cloned()
            .unwrap_or_else(|| vec![format!("email:{email}")])
    };
    let mut named: BTreeMap<String, Vec<Named>> = BTreeMap::new();
    for commit in commits {
        let mut roles: BTreeMap<String, BTreeSet<Role>> = BTreeMap::new();
        for (email, role) in [
            (&commit.author_email, Role::Author),
            (&commit.committer_email, Role::Committer),
        ] {
            for principal in principals(email) {
                roles.entry(principal).or_default().insert(role);
            }
        }
        for (principal, roles) in roles {
            let (status, detail) = match &commit.signed {
                Signed::Unsigned => (Status::Claimed, None),
                Signed::By { principal: by, key } if by.eq_ignore_ascii_case(&principal) => {
                    (Status::Verified, Some(format!("signed with {key}")))
                }
                // Signed by another person the commit names (a committer signing an
                // author's work): valid, but not this person's word.
                Signed::By { principal: by, .. } => (
                    Status::Claimed,
                    Some(format!("signed by {by}, not by them")),
                ),
                Signed::Unverifiable { why } => (Status::Claimed, Some(why.clone())),
                Signed::Invalid { why } => (Status::Invalid, Some(why.clone())),
            };
            named.entry(principal).or_default().push(Named {
                commit: commit.id.clone(),
                roles: roles.into_iter().collect(),
                status,
                detail,
            });
        }
    }
    named
        .into_iter()
        .map(|(principal, commits)| {
            let status = if commits.iter().any(|c| c.status == Status::Invalid) {
                Status::Invalid
            } else if commits.iter().any(|c| c.status == Status::Verified) {
                Status::Verified
            } else {
                Status::Claimed
            };
            Author {
                principal,
                status,
                commits,
            }
        })
        .collect()
}

/// The principals of `authors`: who may not approve.
pub fn principals(authors: &[Author]) -> Vec<String> {
    authors.iter().map(|a| a.principal.clone()).collect()
}

/// The approval part of `decision` as principals, as a decision records it: everyone who
/// may approve (`eligible_approvers`) and each part of the change with its own eligible
/// people (`requirements`). Both lists are the policy's, before the change's authors are
/// taken out (only the proposer is out already): [`approver_pool`] takes them out.
pub fn recorded_approvers(decision: &Decision) -> (Vec<String>, Vec<Requirement>) {
    let approvals = &decision.approvals;
    let eligible = approvals.eligible.iter().map(principal_of).collect();
    let requirements = approvals
        .requirements
        .iter()
        .map(|r| Requirement {
            subject: r.subject.clone(),
            reasons: r.reasons.clone(),
            eligible: r.eligible.iter().map(principal_of).collect(),
            min: r.min,
        })
        .collect();
    (eligible, requirements)
}

/// Who may approve `decision` of a change by `proposer` whose authors (commit authors and
/// committers, and the dispatcher: `countersign_lifecycle::authors`) are `authors`: the
/// lifecycle's [`countersign_lifecycle::pool`] over the decision as recorded, so
/// `countersign evaluate` shows the pool the server's proposal would count from.
pub fn approver_pool(decision: &Decision, proposer: &str, authors: &[String]) -> Pool {
    let (eligible_approvers, requirements) = recorded_approvers(decision);
    let record = DecidedRecord {
        tier: decision.tier,
        automated: decision.tier.is_automated(),
        approvals_required: decision.approvals.required,
        requirements,
        eligible_approvers,
        // The pool reads only who may approve and how many must; no suites.
        validation_plan: Vec::new(),
        required_suites: Vec::new(),
        missing_suites: Vec::new(),
        policy_version: decision.policy_version.clone(),
    };
    countersign_lifecycle::pool(&record, proposer, authors)
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn roles(roles: &[Role]) -> &'static str {
    match roles {
        [Role::Author] => "author",
        [Role::Committer] => "committer",
        _ => "author and committer",
    }
}

/// What the decision says about its authors: one line per author (how far their authorship
/// is believed, by which commits, pushed by `pushed_by`), one per approver the authorship
/// took out of `pool`, and, when the people left cannot meet the tier, that it cannot be
/// authorized and whether unverified claims are why (so an admin can act).
pub fn explain(authors: &[Author], pool: &Pool, pushed_by: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let list = |commits: &[&Named]| {
        commits
            .iter()
            .map(|c| format!("{} ({})", short(&c.commit), roles(&c.roles)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for author in authors {
        let by = |status: Status| -> Vec<&Named> {
            author
                .commits
                .iter()
                .filter(|c| c.status == status)
                .collect()
        };
        let (verified, claimed, invalid) = (
            by(Status::Verified),
            by(Status::Claimed),
            by(Status::Invalid),
        );
        if !verified.is_empty() {
            let keys: BTreeSet<&str> = verified
                .iter()
                .filter_map(|c| c.detail.as_deref())
                .collect();
            lines.push(format!(
                "{}: authorship verified: commit {}, {}",
                author.principal,
                list(&verified),
                keys.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        if !claimed.is_empty() {
            lines.push(format!(
                "{}: authorship claimed, not verified: named by commit {} without their signature, pushed by {pushed_by}",
                author.principal,
                list(&claimed)
            ));
        }
        for commit in invalid {
            lines.push(format!(
                "red flag: {}: commit {} names them as {} and is signed, but the signature does not hold ({})",
                author.principal,
                short(&commit.commit),
                roles(&commit.roles),
                commit.detail.as_deref().unwrap_or("unknown reason")
            ));
        }
    }
    let status_of = |principal: &str| {
        authors
            .iter()
            .find(|a| a.principal.eq_ignore_ascii_case(principal))
            .map_or(Status::Claimed, |a| a.status)
    };
    let unverified: Vec<&str> = pool
        .excluded
        .iter()
        .filter(|p| status_of(p) != Status::Verified)
        .map(String::as_str)
        .collect();
    for person in &pool.excluded {
        let why = if status_of(person) == Status::Verified {
            "they authored it (verified)".to_owned()
        } else {
            format!(
                "commits pushed by {pushed_by} name them as author or committer (authorship {}); an author never approves, so a claim is enough to exclude",
                status_of(person).as_str()
            )
        };
        lines.push(format!(
            "{person} is an eligible approver of this change but may not approve it: {why}"
        ));
    }
    if !pool.excluded.is_empty() {
        lines.push(format!(
            "{} of the decision's eligible approvers may approve: {}",
            pool.count(),
            if pool.eligible.is_empty() {
                "nobody".to_owned()
            } else {
                pool.eligible.join(", ")
            }
        ));
    }
    // Too few owners with nobody excluded is the decision's own shortfall, said there.
    if !pool.meetable() && !pool.excluded.is_empty() {
        let unmet = pool
            .unmet
            .iter()
            .map(|(subject, more)| format!("{subject} lacks {more}"))
            .collect::<Vec<_>>()
            .join(", ");
        let cause = if unverified.is_empty() {
            format!(
                "its verified authors ({}) may not approve",
                pool.excluded.join(", ")
            )
        } else {
            format!(
                "of unverified authorship claims naming {}",
                unverified.join(", ")
            )
        };
        lines.push(format!(
            "cannot be authorized: too few eligible approvers are left ({unmet}) because {cause}; an admin must act: close it, or have the commits made again without the claim (or signed by their authors), or add owners"
        ));
    }
    lines
}
